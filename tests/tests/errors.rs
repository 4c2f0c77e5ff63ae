//! Error tracking end to end: the official Python `sentry-sdk` with its DSN on the store, the
//! OpenTelemetry Python SDK recording exceptions on spans and in logs, and a collector tailing
//! log files with real tracebacks of five languages. Read back with `obs errors`, the Loki and
//! Tempo APIs, the store's own metrics and the provisioned errors dashboard; a kill -9 loses
//! and doubles nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use obs_e2e::{free_port, obs_bin, Proc, StoreProc};
use serde_json::Value;

const INGEST: &str = "ingest-secret-e2e";
const QUERY: &str = "query-secret-e2e";
const ADMIN: &str = "admin-secret-e2e";

fn python(dir: &Path, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/errors_send.py");
    let mut all = vec![script.to_str().unwrap()];
    all.extend_from_slice(args);
    let (code, out, err) = Proc::run(Path::new("python3"), &all, dir);
    assert_eq!(code, 0, "errors_send.py failed\nstdout: {out}\nstderr: {err}");
    serde_json::from_str(out.trim().lines().last().expect("a JSON line")).expect("JSON")
}

/// `obs ARGS --store URL --token-file FILE` in `dir`: (exit code, stdout, stderr).
fn obs_run(dir: &Path, store: &StoreProc, token: &str, args: &[&str]) -> (i32, String, String) {
    let file = dir.join(format!("{token}.token"));
    std::fs::write(&file, token).unwrap();
    let mut all = args.to_vec();
    let url = store.url("");
    all.extend_from_slice(&["--store", &url, "--token-file", file.to_str().unwrap()]);
    Proc::run(obs_bin(), &all, dir)
}

/// [`obs_run`]'s stdout, or a panic with the output.
fn obs(dir: &Path, store: &StoreProc, token: &str, args: &[&str]) -> String {
    let (code, out, err) = obs_run(dir, store, token, args);
    assert_eq!(code, 0, "obs {args:?}: {out}{err}");
    out
}

fn issues(dir: &Path, store: &StoreProc) -> Vec<Value> {
    let out = obs(
        dir,
        store,
        QUERY,
        &["errors", "--since", "all", "--status", "all", "--output", "json"],
    );
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Polls `obs errors` until `ok` holds (ingest is acknowledged before the list is read, but
/// an OTLP exporter's batches arrive when it shuts down).
fn wait_issues(dir: &Path, store: &StoreProc, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = issues(dir, store);
        if ok(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "issues never settled: {list:#?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Each issue's count and status, by id.
fn counts(list: &[Value]) -> BTreeMap<String, (u64, String)> {
    list.iter()
        .map(|i| {
            let status = i["status"].as_str().unwrap().to_string();
            (
                i["id"].as_str().unwrap().to_string(),
                (i["count"].as_u64().unwrap(), status),
            )
        })
        .collect()
}

fn by_title<'a>(list: &'a [Value], service: &str, title: &str) -> &'a Value {
    list.iter()
        .find(|i| i["service"] == service && i["title"] == title)
        .unwrap_or_else(|| panic!("no issue {title:?} of {service}: {list:#?}"))
}

#[test]
fn sentry_sdk_and_opentelemetry_errors_become_issues_that_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let config = format!(
        r#"[[store.tokens]]
name = "app"
role = "ingest"
token = "{INGEST}"
[[store.tokens]]
name = "grafana"
role = "query"
token = "{QUERY}"
[[store.tokens]]
name = "ops"
role = "admin"
token = "{ADMIN}"
[store.errors]
sentry_projects = {{ "1" = "shop" }}
"#
    );
    let store = StoreProc::start_with_config(dir, &config);

    // The Sentry SDK, pointed at the store by its DSN alone.
    let dsn = format!("http://{INGEST}@127.0.0.1:{}/1", store.port);
    let sent = python(dir, &["sentry", "--dsn", &dsn]);
    let statuses = sent["statuses"].as_array().unwrap();
    assert_eq!(
        statuses.len(),
        8,
        "3 + 2 exceptions, 2 messages, 1 transaction: {sent}"
    );
    assert!(statuses.iter().all(|s| s["status"] == 200), "{sent}");

    // The OpenTelemetry SDK: a span that records the exception and a log of it.
    let otel = python(
        dir,
        &[
            "otel",
            "--endpoint",
            &store.url(""),
            "--service",
            "otel-shop",
            "--token",
            INGEST,
        ],
    );
    let trace_ids: Vec<&str> = otel["trace_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();

    let list = wait_issues(dir, &store, |l| {
        l.iter()
            .find(|i| i["service"] == "otel-shop")
            .is_some_and(|i| i["count"] == 4)
    });
    let value_error = by_title(
        &list,
        "shop",
        "ValueError: invalid literal for int() with base <num>: <quoted_str>",
    );
    assert_eq!(value_error["count"], 3, "{value_error}");
    assert_eq!(value_error["culprit"], "__main__ in parse_amount");
    assert_eq!(value_error["users"], 1);
    let key_error = by_title(&list, "shop", "KeyError: <quoted_str>");
    assert_eq!(
        (key_error["count"].as_u64(), key_error["culprit"].as_str()),
        (Some(2), Some("__main__ in tax_rate"))
    );
    let message = by_title(&list, "shop", "payment <num> declined by the bank");
    assert_eq!(message["count"], 2);
    assert_eq!(
        list.iter().filter(|i| i["service"] == "shop").count(),
        3,
        "{list:#?}"
    );
    // The span's exception event and the log record group as one issue.
    let otel_issues: Vec<&Value> = list.iter().filter(|i| i["service"] == "otel-shop").collect();
    assert_eq!(otel_issues.len(), 1, "{otel_issues:#?}");
    let zero = otel_issues[0];
    assert_eq!(zero["title"], "ZeroDivisionError: division by zero");
    assert!(
        zero["culprit"]
            .as_str()
            .unwrap()
            .ends_with("errors_send.py in ratio"),
        "{zero}"
    );

    // Each occurrence links to its trace (which the Tempo API has) and, for logs, its lines.
    let id = zero["id"].as_str().unwrap();
    let shown: Value = serde_json::from_str(&obs(
        dir,
        &store,
        QUERY,
        &["errors", "show", id, "--output", "json"],
    ))
    .unwrap();
    let occurrences = shown["occurrences"].as_array().unwrap();
    assert_eq!(occurrences.len(), 4, "{shown:#}");
    let sources: Vec<&str> = occurrences
        .iter()
        .map(|o| o["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources.iter().filter(|s| **s == "span").count(), 2, "{sources:?}");
    for o in occurrences {
        assert!(trace_ids.contains(&o["trace_id"].as_str().unwrap()), "{o}");
        assert_eq!(o["release"], "2.0.1");
    }
    // (Traces become searchable at the next commit, within a second.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let trace = loop {
        let (code, out, err) = obs_run(
            dir,
            &store,
            QUERY,
            &["query", "traces", trace_ids[0], "--output", "json"],
        );
        if code == 0 || Instant::now() > deadline {
            assert_eq!(code, 0, "{out}{err}");
            break out;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(trace.contains("charge"), "{trace}");
    let log_query = occurrences.iter().find_map(|o| o["logs"].as_str()).unwrap();
    let lines = obs(
        dir,
        &store,
        QUERY,
        &["query", "logs", log_query, "--output", "json"],
    );
    assert!(lines.contains("charge of 0 failed"), "{lines}");

    // A Sentry event keeps its breadcrumbs, release and environment, in a log line tagged with
    // its issue.
    let vid = value_error["id"].as_str().unwrap();
    let query = format!(r#"{{service_name="shop", source="sentry"}} | error_issue="{vid}""#);
    let lines = obs(dir, &store, QUERY, &["query", "logs", &query, "--output", "json"]);
    assert!(lines.matches("parse_amount").count() >= 3, "{lines}");
    for needle in [
        "parsing amount abc",
        "shop@1.4.2",
        "\\\"environment\\\":\\\"test\\\"",
    ] {
        assert!(lines.contains(needle), "{needle}: {lines}");
    }

    // The human table, and a resolve with the admin token.
    let table = obs(dir, &store, QUERY, &["errors", "--service", "shop"]);
    assert!(
        table.contains("KeyError: <quoted_str>") && table.contains("EVENTS"),
        "{table}"
    );
    let resolved = obs(dir, &store, ADMIN, &["errors", "resolve", &vid[..8]]);
    assert!(resolved.contains("is now resolved"), "{resolved}");

    errors_dashboard(dir, &store);

    // kill -9: every issue comes back with the same count, none twice.
    let before = counts(&issues(dir, &store));
    let store = store.kill_and_restart();
    let after = counts(&issues(dir, &store));
    assert_eq!(before, after);
}

/// Every panel of the provisioned errors dashboard answers with data.
fn errors_dashboard(dir: &Path, store: &StoreProc) {
    // The store records its own metrics every 15 s: wait for two samples of the counters (an
    // increase needs two).
    let deadline = Instant::now() + Duration::from_secs(50);
    let twice = r#"count_over_time(obs_error_events_total{service_name="otel-shop"}[1h]) > 1"#;
    while !obs(
        dir,
        store,
        QUERY,
        &["query", "metrics", twice, "--output", "json"],
    )
    .contains("otel-shop")
    {
        assert!(
            Instant::now() < deadline,
            "the store did not record obs_error_events_total twice"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let url = store.url("");
    let (code, out, err) = Proc::run(
        obs_bin(),
        &["grafana", "provision", "--out", "grafana", "--store", &url],
        dir,
    );
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(dir.join("grafana/dashboards/obs-errors.json")).unwrap();
    let d: Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for panel in d["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$service", ".+")
                .replace("$__range", "1h")
                .replace("$__rate_interval", "1m");
            let (kind, range) = if t["datasource"]["uid"] == "obs-loki" {
                ("logs", vec!["--since", "1h"])
            } else {
                ("metrics", vec![])
            };
            let mut args = vec!["query", kind, expr.as_str(), "--output", "json"];
            args.extend(range);
            let out = obs(dir, store, QUERY, &args);
            let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
            let rows = v["result"].as_array().map_or(0, Vec::len);
            assert!(rows > 0, "{}: {expr}: {out}", panel["title"]);
            checked += 1;
        }
        if panel["type"] == "table" {
            let links = panel["fieldConfig"]["defaults"]["links"].as_array().unwrap();
            let urls: Vec<&str> = links.iter().map(|l| l["url"].as_str().unwrap()).collect();
            assert!(
                urls.iter()
                    .any(|u| u.contains("obs-loki") && u.contains("${__data.fields.issue:percentencode}")),
                "{urls:?}"
            );
            assert!(urls.iter().any(|u| u.contains("obs-tempo")), "{urls:?}");
        }
    }
    assert!(checked >= 7, "{checked} queries");
}

/// The fixtures the store's grouping is pinned with, written by a program's logger.
fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../store/src/errors/fixtures/{name}.txt"));
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn a_collector_tailing_tracebacks_of_five_languages_groups_them() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = StoreProc::start(dir);
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    // Where each runtime's event starts, as an operator writes the multiline rule.
    let languages = [
        ("python", r"^\d{4}-"),
        ("java", r"^(\d{4}-|Exception in thread)"),
        ("go", r"^panic: "),
        ("node", r"^[A-Za-z]*Error: "),
        ("rust", r"^thread "),
    ];
    let mut config = format!(
        "version = 1\n[collector]\nstore = \"http://{}\"\nhost_name = \"node-a\"\nhost_metrics = false\notlp_grpc_addr = \"127.0.0.1:{}\"\notlp_http_addr = \"127.0.0.1:{}\"\n",
        store.grpc_addr(),
        free_port(),
        free_port()
    );
    for (lang, start) in languages {
        config.push_str(&format!(
            "[[collector.files]]\npaths = [\"{}/{lang}.log\"]\nlabels = {{ service_name = \"{lang}-app\" }}\nmultiline = {{ start = '{start}', timeout_ms = 500 }}\n",
            logs.display()
        ));
        // The same stack twice (other line numbers and values), then another top frame.
        let text: String = ["a1", "a2", "b"]
            .iter()
            .map(|v| fixture(&format!("{lang}-{v}")))
            .collect();
        std::fs::write(logs.join(format!("{lang}.log")), text).unwrap();
    }
    let file = dir.join("collector.toml");
    std::fs::write(&file, config).unwrap();
    let data = dir.join("collector-data");
    let mut collector = Proc::obs(
        "collector",
        &[
            "collector",
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        dir,
    );
    let deadline = Instant::now() + Duration::from_secs(40);
    let list = loop {
        let list = store.get_json("/api/v1/errors?limit=1000")["data"]
            .as_array()
            .cloned()
            .unwrap();
        let events: u64 = list.iter().map(|i| i["count"].as_u64().unwrap()).sum();
        if events >= 15 || Instant::now() > deadline {
            break list;
        }
        assert!(
            collector.wait_timeout(Duration::ZERO).is_none(),
            "{}",
            collector.describe()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    for (lang, _) in languages {
        let service = format!("{lang}-app");
        let mut counts: Vec<u64> = list
            .iter()
            .filter(|i| i["service"] == service.as_str())
            .map(|i| i["count"].as_u64().unwrap())
            .collect();
        counts.sort();
        assert_eq!(
            counts,
            [1, 2],
            "{lang}: one issue of two events, one of one: {list:#?}"
        );
    }
    let java = list
        .iter()
        .find(|i| i["service"] == "java-app" && i["count"] == 2)
        .unwrap();
    assert_eq!(
        java["culprit"], "com.acme.billing.OrderService in charge",
        "{java}"
    );
    assert_eq!(
        java["title"],
        "java.lang.IllegalStateException: order <num> is in state PAID"
    );
}
