//! Runs Prometheus's own PromQL engine tests (`*.test`, format in FORMAT.md beside them)
//! against our engine, in process, and prints the pass rate per file.
//!
//! The files live outside the repository, in `../shared/conformance/promql` beside the
//! checkout (read from there by default; `PROMQL_TESTDATA` names another directory). Where
//! neither exists the harness says loudly that it was skipped, and checks nothing. `promql_baseline.txt` records how many evals of each file passed when it
//! was last raised; a file that drops below its line fails the test, so progress only goes
//! one way. Raise the baseline with `OBS_PROMQL_BASELINE=write`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use obs_store::promql::{self, notation, Options, QueryValue};
use obs_store::tsdb::{Labels, RawSeries, SeriesList};

/// Series loaded by `load` commands, by label set; each eval queries a snapshot of them.
type Loaded = BTreeMap<Labels, Vec<(i64, f64)>>;

fn snapshot(loaded: &Loaded) -> SeriesList {
    SeriesList(
        loaded
            .iter()
            .map(|(l, s)| RawSeries {
                labels: Arc::new(l.clone()),
                samples: s.clone(),
            })
            .collect(),
    )
}

/// Per-file tally: evals passed, run, and failed while native histogram data (out of
/// scope) was loaded.
#[derive(Default)]
struct Tally {
    passed: usize,
    total: usize,
    native: usize,
    failures: Vec<String>,
}

fn parse_duration_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<f64>() {
        return Some((n * 1000.0).round() as i64);
    }
    let mut total = 0i64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().ok()?;
        num.clear();
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            1
        } else {
            match c {
                's' => 1000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                'w' => 7 * 86_400_000,
                'y' => 365 * 86_400_000,
                _ => return None,
            }
        };
        total += n * unit;
    }
    if !num.is_empty() {
        return None;
    }
    Some(total)
}

/// Splits `name{a="b"} 1 2 3` into the series text and the rest.
fn split_series(line: &str) -> (&str, &str) {
    let line = line.trim();
    let mut in_quotes = false;
    let mut depth = 0;
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if in_quotes {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_quotes = false;
            }
        } else if c == b'"' {
            in_quotes = true;
        } else if c == b'{' {
            depth += 1;
        } else if c == b'}' {
            depth -= 1;
            if depth == 0 {
                return (&line[..=i], line[i + 1..].trim());
            }
        } else if depth == 0 && c.is_ascii_whitespace() {
            return (&line[..i], line[i..].trim());
        }
        i += 1;
    }
    (line, "")
}

/// Replaces each `{{…}}` native histogram (and its `xN` repeat) with gaps.
fn strip_histograms(points: &str) -> String {
    let mut out = String::new();
    let mut rest = points;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find("}}") else { break };
        rest = &rest[i + j + 2..];
        let reps: String = rest
            .strip_prefix('x')
            .map(|r| r.chars().take_while(char::is_ascii_digit).collect())
            .unwrap_or_default();
        if reps.is_empty() {
            out.push_str(" _ ");
        } else {
            out.push_str(&format!(" _x{} ", reps.parse::<usize>().unwrap_or(0) + 1));
            rest = &rest[1 + reps.len()..];
        }
    }
    out.push_str(rest);
    out
}

#[derive(Debug, Default)]
struct Expect {
    fail: Option<Option<String>>,
    warn: Option<Option<String>>,
    info: Option<Option<String>>,
    no_warn: bool,
    no_info: bool,
    ordered: bool,
    string: Option<String>,
    range_vector: Option<(i64, i64, i64)>,
    scalar: Option<f64>,
    series: Vec<(Labels, Vec<Option<f64>>)>,
    unsupported: Option<String>,
}

struct Eval {
    line: usize,
    query: String,
    range: Option<(i64, i64, i64)>,
    at: i64,
    expect: Expect,
}

fn strip_position(msg: &str) -> &str {
    // Prometheus appends the expression's position, e.g. " (1:23)".
    match msg.rfind(" (") {
        Some(i) if msg.ends_with(')') && msg[i + 2..msg.len() - 1].contains(':') => &msg[..i],
        _ => msg,
    }
}

fn message_ok(expected: &Option<String>, got: &[String]) -> bool {
    match expected {
        None => !got.is_empty(),
        Some(m) => match m.strip_prefix("regex:") {
            // Our annotations carry no expression positions: drop that part of the pattern.
            Some(re) => {
                let re = re.replace(r" \([0-9]+:[0-9]+\)", "");
                let re = regex::Regex::new(&format!("^(?:{re})$")).expect("valid regex in test file");
                got.iter().any(|g| re.is_match(strip_position(g)))
            }
            None => got.iter().any(|g| strip_position(g) == strip_position(m)),
        },
    }
}

fn points_equal(expected: &[Option<f64>], got: &[(i64, f64)], times: &[i64]) -> bool {
    let want: Vec<(i64, f64)> = times
        .iter()
        .zip(expected)
        .filter_map(|(t, v)| v.map(|v| (*t, v)))
        .collect();
    want.len() == got.len()
        && want
            .iter()
            .zip(got)
            .all(|(a, b)| a.0 == b.0 && almost_equal(a.1, b.1))
}

fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() || a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < 1e-6 * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < 1e-6
}

fn check(storage: &SeriesList, e: &Eval) -> Result<(), String> {
    if let Some(why) = &e.expect.unsupported {
        return Err(format!("out of scope: {why}"));
    }
    let opts = Options::default();
    let result = promql::parse(&e.query).and_then(|expr| match e.range {
        Some((start, end, step)) => promql::range(storage, &expr, start, end, step, &opts),
        None => promql::instant(storage, &expr, e.at, &opts),
    });
    let out = match (result, &e.expect.fail) {
        (Err(err), Some(msg)) => {
            return match msg {
                Some(m) if !err.to_string().contains(m.trim()) => {
                    Err(format!("failed as expected but with {err:?}, want {m:?}"))
                }
                _ => Ok(()),
            }
        }
        (Err(err), None) => return Err(format!("unexpected error: {err}")),
        (Ok(_), Some(_)) => return Err("expected an error, got a result".into()),
        (Ok(out), None) => out,
    };
    let ex = &e.expect;
    let ann = &out.annotations;
    if let Some(w) = &ex.warn {
        if !message_ok(w, &ann.warnings) {
            return Err(format!("expected warning {w:?}, got {:?}", ann.warnings));
        }
    }
    if let Some(i) = &ex.info {
        if !message_ok(i, &ann.infos) {
            return Err(format!("expected info {i:?}, got {:?}", ann.infos));
        }
    }
    if ex.no_warn && !ann.warnings.is_empty() {
        return Err(format!("unexpected warnings {:?}", ann.warnings));
    }
    if ex.no_info && !ann.infos.is_empty() {
        return Err(format!("unexpected infos {:?}", ann.infos));
    }
    match out.value {
        QueryValue::String(_, s) => match &ex.string {
            Some(want) if *want == s => Ok(()),
            want => Err(format!("string {s:?}, want {want:?}")),
        },
        QueryValue::Scalar(_, v) => match ex.scalar {
            Some(want) if almost_equal(want, v) => Ok(()),
            want => Err(format!("scalar {v}, want {want:?}")),
        },
        QueryValue::Vector(got) => {
            if ex.scalar.is_some() || ex.string.is_some() || ex.range_vector.is_some() {
                return Err("got an instant vector".into());
            }
            if got.len() != ex.series.len() {
                let g: Vec<String> = got.iter().map(|s| format!("{} {}", s.metric, s.v)).collect();
                return Err(format!(
                    "got {} samples, want {}: {g:?}",
                    got.len(),
                    ex.series.len()
                ));
            }
            for (i, (labels, vals)) in ex.series.iter().enumerate() {
                let want = vals.first().copied().flatten();
                let found = if ex.ordered {
                    (*got[i].metric == *labels).then_some(&got[i])
                } else {
                    got.iter().find(|s| *s.metric == *labels)
                };
                match (found, want) {
                    (Some(s), Some(w)) if almost_equal(s.v, w) => {}
                    (found, _) => {
                        return Err(format!("{labels}: got {:?}, want {want:?}", found.map(|s| s.v)));
                    }
                }
            }
            Ok(())
        }
        QueryValue::Matrix(got) => {
            let times: Vec<i64> = match (e.range, ex.range_vector) {
                (Some((s, end, step)), _) | (None, Some((s, end, step))) => {
                    (0..).map(|k| s + k * step).take_while(|t| *t <= end).collect()
                }
                (None, None) => return Err("got a range vector".into()),
            };
            let want: Vec<_> = ex
                .series
                .iter()
                .filter(|(_, v)| v.iter().any(|x| x.is_some()))
                .collect();
            if got.len() != want.len() {
                let g: Vec<String> = got
                    .iter()
                    .map(|s| format!("{} {:?}", s.metric, s.points))
                    .collect();
                return Err(format!("got {} series, want {}: {g:?}", got.len(), want.len()));
            }
            for (labels, vals) in want {
                let Some(s) = got.iter().find(|s| *s.metric == *labels) else {
                    return Err(format!("missing series {labels}"));
                };
                if !points_equal(vals, &s.points, &times) {
                    return Err(format!("{labels}: got {:?}, want {vals:?}", s.points));
                }
            }
            Ok(())
        }
    }
}

fn parse_expect_line(ex: &mut Expect, rest: &str) {
    let (kind, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    let tail = tail.trim();
    let msg = || {
        if let Some(m) = tail.strip_prefix("msg:") {
            Some(m.trim().to_string())
        } else {
            tail.strip_prefix("regex:").map(|r| format!("regex:{}", r.trim()))
        }
    };
    match kind {
        "fail" => ex.fail = Some(msg()),
        "warn" => ex.warn = Some(msg()),
        "info" => ex.info = Some(msg()),
        "no_warn" => ex.no_warn = true,
        "no_info" => ex.no_info = true,
        "ordered" => ex.ordered = true,
        "string" => {
            let s = tail.trim();
            ex.string = Some(s[1..s.len() - 1].to_string());
        }
        "range" => {
            // range vector from S to E step D
            let w: Vec<&str> = tail.split_whitespace().collect();
            if let (Some(s), Some(e), Some(d)) = (
                w.get(2).and_then(|x| parse_duration_ms(x)),
                w.get(4).and_then(|x| parse_duration_ms(x)),
                w.get(6).and_then(|x| parse_duration_ms(x)),
            ) {
                ex.range_vector = Some((s, e, d));
            }
        }
        _ => ex.unsupported = Some(format!("expect {kind}")),
    }
}

/// Runs one file.
fn run_file(text: &str) -> Tally {
    let mut loaded = Loaded::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut tally = Tally::default();
    let mut native_loaded = false;
    let mut i = 0;
    let indented = |l: &str| l.starts_with(' ') || l.starts_with('\t');
    while i < lines.len() {
        let line = lines[i].trim();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "clear" {
            loaded.clear();
            native_loaded = false;
            continue;
        }
        if let Some(rest) = line.strip_prefix("load") {
            // `load_with_nhcb` also loads the classic series as floats; only its native
            // histogram conversion is out of scope.
            let interval = rest.strip_prefix("_with_nhcb").unwrap_or(rest);
            let interval = parse_duration_ms(interval.trim()).unwrap_or(0);
            while i < lines.len() && indented(lines[i]) && !lines[i].trim().is_empty() {
                let (desc, points) = split_series(lines[i]);
                i += 1;
                // Native histogram points are out of scope: they load as gaps.
                native_loaded |= points.contains("{{") || line.contains("nhcb");
                let points = strip_histograms(points);
                let Ok(labels) = notation::metric(desc) else {
                    continue;
                };
                let mut vals = Vec::new();
                for tok in points.split_whitespace() {
                    vals.extend(notation::expand(tok).unwrap_or_default());
                }
                if vals.is_empty() {
                    continue;
                }
                let entry = loaded.entry(labels).or_default();
                for (k, v) in vals.into_iter().enumerate() {
                    if let Some(v) = v {
                        let t = k as i64 * interval;
                        match entry.binary_search_by_key(&t, |p| p.0) {
                            Ok(j) => entry[j].1 = v,
                            Err(j) => entry.insert(j, (t, v)),
                        }
                    }
                }
            }
            continue;
        }
        if !line.starts_with("eval") {
            continue;
        }
        let start_line = i;
        let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
        let mut expect = Expect::default();
        match cmd {
            "eval_fail" => expect.fail = Some(None),
            "eval_warn" => expect.warn = Some(None),
            "eval_info" => expect.info = Some(None),
            "eval_ordered" => expect.ordered = true,
            _ => {}
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        let (range, at, query) = if words.first() == Some(&"instant") {
            let at = parse_duration_ms(words[2]).unwrap_or(0);
            let q = rest.splitn(4, char::is_whitespace).nth(3).unwrap_or("").trim();
            (None, at, q.to_string())
        } else {
            let s = parse_duration_ms(words[2]).unwrap_or(0);
            let e = parse_duration_ms(words[4]).unwrap_or(0);
            let d = parse_duration_ms(words[6]).unwrap_or(1);
            let q = rest.splitn(8, char::is_whitespace).nth(7).unwrap_or("").trim();
            (Some((s, e, d)), 0, q.to_string())
        };
        while i < lines.len() && indented(lines[i]) && !lines[i].trim().is_empty() {
            let l = lines[i].trim();
            i += 1;
            if l.starts_with('#') {
                continue;
            }
            if let Some(r) = l.strip_prefix("expect ") {
                parse_expect_line(&mut expect, r.trim());
                continue;
            }
            if l.contains("{{") {
                expect.unsupported = Some("native histogram result".into());
                continue;
            }
            let (desc, points) = split_series(l);
            if points.is_empty() {
                if let Some(v) = notation::value(desc) {
                    expect.scalar = Some(v);
                    continue;
                }
            }
            let Ok(labels) = notation::metric(desc) else {
                expect.unsupported = Some(format!("result line {l:?}"));
                continue;
            };
            let mut vals = Vec::new();
            for tok in points.split_whitespace() {
                vals.extend(notation::expand(tok).unwrap_or_default());
            }
            expect.series.push((labels, vals));
        }
        if expect
            .fail
            .as_ref()
            .is_some_and(|m| m.as_ref().is_some_and(|m| m.starts_with("regex:")))
        {
            expect.fail = Some(None);
        }
        tally.total += 1;
        let ev = Eval {
            line: start_line,
            query,
            range,
            at,
            expect,
        };
        match check(&snapshot(&loaded), &ev) {
            Ok(()) => tally.passed += 1,
            Err(why) => {
                if native_loaded || why.starts_with("out of scope") {
                    tally.native += 1;
                }
                tally
                    .failures
                    .push(format!("line {}: {}: {why}", ev.line, ev.query));
            }
        }
    }
    tally
}

const BASELINE: &str = "tests/promql_baseline.txt";

#[test]
fn promql_conformance() {
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/promql");
    let dir = match std::env::var("PROMQL_TESTDATA") {
        Ok(dir) => dir,
        Err(_) if beside.is_dir() => beside.to_string_lossy().into_owned(),
        Err(_) => {
            eprintln!(
                "SKIPPED: the PromQL conformance harness did NOT run: no {} and PROMQL_TESTDATA is not set",
                beside.display()
            );
            return;
        }
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("PROMQL_TESTDATA={dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let baseline_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(BASELINE);
    let baseline: HashMap<String, usize> = std::fs::read_to_string(&baseline_path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect();
    let verbose = std::env::var("OBS_PROMQL_VERBOSE").ok();
    let (mut all_pass, mut all_total) = (0, 0);
    let mut regressions = Vec::new();
    let mut report = String::from("# file passed total (raise with OBS_PROMQL_BASELINE=write)\n");
    eprintln!(
        "{:<28} {:>7} {:>6} {:>7} {:>8}",
        "file", "passed", "total", "rate", "native*"
    );
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(f).unwrap();
        let Tally {
            passed,
            total,
            native,
            failures,
        } = run_file(&text);
        all_pass += passed;
        all_total += total;
        let rate = if total == 0 {
            100.0
        } else {
            passed as f64 * 100.0 / total as f64
        };
        eprintln!("{name:<28} {passed:>7} {total:>6} {rate:>6.1}% {native:>8}");
        if verbose
            .as_deref()
            .is_some_and(|v| v == "all" || name.starts_with(v))
        {
            for fl in &failures {
                eprintln!("    {fl}");
            }
        }
        if let Some(&want) = baseline.get(&name) {
            if passed < want {
                regressions.push(format!(
                    "{name}: {passed} passed, baseline {want}\n  {}",
                    failures.join("\n  ")
                ));
            }
        }
        report.push_str(&format!("{name} {passed} {total}\n"));
    }
    eprintln!(
        "{:<28} {all_pass:>7} {all_total:>6} {:>6.1}%",
        "TOTAL",
        all_pass as f64 * 100.0 / all_total as f64
    );
    eprintln!("* native: failures while native histogram data was loaded (out of scope)");
    if std::env::var("OBS_PROMQL_BASELINE").is_ok_and(|v| v == "write") {
        std::fs::write(&baseline_path, report).unwrap();
    }
    assert!(
        regressions.is_empty(),
        "PromQL conformance regressed:\n{}",
        regressions.join("\n")
    );
}
