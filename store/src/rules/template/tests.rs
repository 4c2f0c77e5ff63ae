//! Expected texts are what Prometheus 2.42's template engine produces for the same input.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;

fn labels() -> Vec<(String, String)> {
    vec![
        ("alertname".into(), "HostDown".into()),
        ("instance".into(), "nas.home:9100".into()),
        ("job".into(), "node".into()),
    ]
}

fn no_query(_: &str) -> Result<Vec<Sample>, String> {
    Err("no queries here".into())
}

fn run_with(text: &str, value: f64, query: &dyn Fn(&str) -> Result<Vec<Sample>, String>) -> String {
    let l = labels();
    let ext = vec![("cluster".to_string(), "home".to_string())];
    expand(
        text,
        &Context {
            labels: &l,
            external_labels: &ext,
            external_url: "http://store.mesh:9700/obs",
            value,
            query,
        },
    )
}

fn run(text: &str, value: f64) -> String {
    run_with(text, value, &no_query)
}

#[test]
fn variables_fields_and_pipelines() {
    assert_eq!(
        run("{{ $labels.instance }} is down", 1.0),
        "nas.home:9100 is down"
    );
    assert_eq!(
        run("{{ .Labels.job }}/{{ $externalLabels.cluster }}", 1.0),
        "node/home"
    );
    assert_eq!(run("[{{ $labels.missing }}]", 1.0), "[]");
    assert_eq!(run("{{ $value }}", 0.5), "0.5");
    assert_eq!(run("{{ $value }}", 1234567.0), "1.234567e+06");
    assert_eq!(run("{{ .Value }}", 3.0), "3");
    assert_eq!(run("{{ $value | humanize }}", 1234567.0), "1.235M");
    assert_eq!(run("{{ printf \"%.2f\" $value }}%", 12.3456), "12.35%");
    assert_eq!(run("{{ $externalURL }}", 0.0), "http://store.mesh:9700/obs");
    assert_eq!(
        run("{{ $labels.instance | stripPort | toUpper }}", 0.0),
        "NAS.HOME"
    );
    assert_eq!(run("{{ $x := 5 }}{{ $x }}{{ $x = 6 }}{{ $x }}", 0.0), "56");
    assert_eq!(run("{{ (index .Labels \"job\") }}", 0.0), "node");
    assert_eq!(run("{{- \"  a  \" -}}  b", 0.0), "  a  b");
    assert_eq!(run("a  {{- /* note */ -}}  b", 0.0), "ab");
    assert_eq!(run("no actions: {", 0.0), "no actions: {");
}

#[test]
fn blocks() {
    assert_eq!(
        run("{{ if gt $value 80.0 }}high{{ else }}ok{{ end }}", 90.0),
        "high"
    );
    assert_eq!(
        run("{{ if gt $value 80.0 }}high{{ else }}ok{{ end }}", 10.0),
        "ok"
    );
    assert_eq!(
        run(
            "{{ if lt $value 1.0 }}a{{ else if lt $value 2.0 }}b{{ else }}c{{ end }}",
            1.5
        ),
        "b"
    );
    assert_eq!(run("{{ with $labels.job }}job={{ . }}{{ end }}", 0.0), "job=node");
    assert_eq!(
        run("{{ with $labels.nope }}x{{ else }}none{{ end }}", 0.0),
        "none"
    );
    assert_eq!(
        run("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}", 0.0),
        "alertname=HostDown;instance=nas.home:9100;job=node;"
    );
    assert_eq!(
        run("{{ if and (eq $labels.job \"node\") (ne 1 2) }}y{{ end }}", 0.0),
        "y"
    );
    assert_eq!(run("{{ if or false \"\" 0 }}y{{ else }}n{{ end }}", 0.0), "n");
    assert_eq!(run("{{ if not false }}y{{ end }}", 0.0), "y");
    assert_eq!(run("{{ len $labels }}", 0.0), "3");
}

#[test]
fn humanize_functions() {
    let each = |f: &str, vs: &[f64]| {
        vs.iter()
            .map(|v| run(&format!("{{{{ {f} $value }}}}"), *v))
            .collect::<Vec<_>>()
            .join(":")
    };
    assert_eq!(
        each("humanize", &[0.0, 1.0, 1234567.0, 0.12, 0.0001]),
        "0:1:1.235M:120m:100u"
    );
    assert_eq!(
        each("humanize1024", &[0.0, 1.0, 1048576.0, 0.12, 1536.0]),
        "0:1:1Mi:0.12:1.5ki"
    );
    assert_eq!(
        each(
            "humanizeDuration",
            &[
                0.0,
                1.0,
                60.0,
                3600.0,
                86400.0,
                90000.0,
                -(86400.0 * 2.0 + 3600.0 * 3.0 + 60.0 * 4.0 + 5.0),
                899.99
            ]
        ),
        "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:1d 1h 0m 0s:-2d 3h 4m 5s:14m 59s"
    );
    assert_eq!(
        each("humanizeDuration", &[0.1, 0.0001, 0.12345, 60.1, 1.2345, 12.345]),
        "100ms:100us:123.5ms:1m 0s:1.234s:12.35s"
    );
    assert_eq!(
        each("humanizePercentage", &[0.0, 0.1234567, 0.5, 1.0, 1.5]),
        "0%:12.35%:50%:100%:150%"
    );
    assert_eq!(
        each("humanizeTimestamp", &[1435065584.128]),
        "2015-06-23 13:19:44.128 +0000 UTC"
    );
    assert_eq!(run("{{ humanize \"1234\" }}", 0.0), "1.234k");
    assert_eq!(run("{{ humanize $value }}", f64::INFINITY), "+Inf");
}

#[test]
fn string_functions() {
    assert_eq!(run("{{ title \"aa bb CC\" }}", 0.0), "Aa Bb CC");
    assert_eq!(run("{{ toLower \"AbC\" }}", 0.0), "abc");
    assert_eq!(run("{{ stripPort \"[2001:db8::1]:80\" }}", 0.0), "2001:db8::1");
    assert_eq!(run("{{ stripPort \"foo.com\" }}", 0.0), "foo.com");
    assert_eq!(run("{{ stripDomain \"foo.example.com:9100\" }}", 0.0), "foo:9100");
    assert_eq!(run("{{ reReplaceAll \"(a)b\" \"x$1\" \"abab\" }}", 0.0), "xaxa");
    assert_eq!(run("{{ match \"^nas\" $labels.instance }}", 0.0), "true");
    assert_eq!(
        run(
            "{{ printf \"%s=%d %5.1f|%-4s|%e|%q\" \"a\" 3 2.25 \"b\" 1.5 \"q\" }}",
            0.0
        ),
        "a=3   2.2|b   |1.500000e+00|\"q\""
    );
    assert_eq!(run("{{ printf \"%d\" \"x\" }}", 0.0), "%!d(string=x)");
    assert_eq!(run("{{ printf \"%d %d\" 1 }}", 0.0), "1 %!d(MISSING)");
    assert_eq!(run("{{ print 1 2 \"a\" \"b\" }}", 0.0), "1 2ab");
    assert_eq!(
        run("{{ pathPrefix }}|{{ externalURL }}", 0.0),
        "/obs|http://store.mesh:9700/obs"
    );
    assert_eq!(run("{{ parseDuration \"1h30m\" }}", 0.0), "5400");
    assert_eq!(run("{{ with args 1 \"x\" }}{{ .arg1 }}{{ end }}", 0.0), "x");
}

#[test]
fn query_first_label_value() {
    let q = |expr: &str| -> Result<Vec<Sample>, String> {
        assert_eq!(expr, "up{job=\"node\"}");
        let l = |i: &str| Arc::new(BTreeMap::from([("instance".to_string(), i.to_string())]));
        Ok(vec![
            Sample {
                labels: l("b"),
                value: 0.0,
            },
            Sample {
                labels: l("a"),
                value: 1.0,
            },
        ])
    };
    assert_eq!(
        run_with(
            "{{ with query \"up{job=\\\"node\\\"}\" }}{{ . | first | value }} of {{ len . }}{{ end }}",
            0.0,
            &q
        ),
        "0 of 2"
    );
    assert_eq!(
        run_with("{{ range query `up{job=\"node\"}` | sortByLabel \"instance\" }}{{ .Labels.instance }}={{ .Value }} {{ end }}", 0.0, &q),
        "a=1 b=0 "
    );
    assert_eq!(
        run_with(
            "{{ query \"up{job=\\\"node\\\"}\" | first | label \"instance\" }}",
            0.0,
            &q
        ),
        "b"
    );
}

#[test]
fn failures_expand_to_the_prometheus_error_text() {
    // An int and a float do not compare in Go's templates.
    let out = run("{{ if gt $value 80 }}x{{ end }}", 90.0);
    assert!(out.starts_with("<error expanding template: "), "{out}");
    assert!(out.contains("incompatible types for comparison"), "{out}");
    let out = run("{{ nosuchfunc }}", 0.0);
    assert!(
        out.starts_with("<error expanding template: ") && out.contains("not defined"),
        "{out}"
    );
    let out = run("{{ if true }}unclosed", 0.0);
    assert!(out.contains("unexpected EOF"), "{out}");
    let out = run("{{ humanize \"abc\" }}", 0.0);
    assert!(out.contains("error calling humanize"), "{out}");
    let out = run("{{ first (query \"x\") }}", 0.0);
    assert!(out.contains("no queries here"), "{out}");
    assert!(check("{{ $labels.x }}").is_ok());
    assert!(check("{{ end }}").is_err());
    assert!(check(&"{{ if true }}".repeat(200)).is_err());
}
