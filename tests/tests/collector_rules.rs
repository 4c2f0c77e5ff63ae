//! Drop, keep and relabel rules of a file source, end to end: labels derived from the file
//! name arrive as stream labels in the store, a file a rule drops is never read, filtered
//! lines never arrive and are counted on the collector's `/metrics`.

use std::io::Write;

use obs_e2e::{free_port, http_get, Proc, StoreProc};

#[test]
fn relabel_rules_and_line_filters_shape_what_arrives() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let store = StoreProc::start(dir);
    for app in ["shop", "billing", "scratch"] {
        std::fs::create_dir_all(dir.join("apps").join(app)).unwrap();
        let lines: String = (0..10)
            .map(|i| {
                let level = if i % 2 == 0 { "debug" } else { "info" };
                format!("level={level} app={app} n={i}\n")
            })
            .collect();
        std::fs::write(dir.join("apps").join(app).join("app.log"), lines).unwrap();
    }
    let http = free_port();
    std::fs::write(
        dir.join("collector.toml"),
        format!(
            r#"version = 1
[collector]
store = "http://{grpc}"
host_metrics = false
otlp_grpc_addr = "127.0.0.1:{otlp}"
otlp_http_addr = "127.0.0.1:{http}"

[[collector.files]]
paths = ["{root}/apps/*/app.log"]
labels = {{ job = "apps", team = "core" }}
drop_lines = ['level=debug']

[[collector.files.relabel]]
source_labels = ["filename"]
regex = '.*/apps/([a-z]+)/app\.log'
target_label = "app"
[[collector.files.relabel]]
source_labels = ["app"]
regex = "scratch"
action = "drop"
[[collector.files.relabel]]
regex = "team"
action = "labeldrop"
"#,
            grpc = store.grpc_addr(),
            otlp = free_port(),
            root = dir.display(),
        ),
    )
    .unwrap();
    let mut collector = Proc::obs(
        "collector",
        &["collector", "--config", "collector.toml", "--data-dir", "cdata"],
        dir,
    );
    store.wait_log_lines(r#"{job="apps"}"#, 10, &mut collector);
    // A last line in each file read: a line a filter or a dropped file let through would have
    // arrived before these (files are read in order, and read in the same passes).
    for app in ["shop", "billing"] {
        let path = dir.join("apps").join(app).join("app.log");
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        writeln!(f, "level=info app={app} n=last").unwrap();
    }
    let got = store.wait_log_lines(r#"{job="apps"}"#, 12, &mut collector);
    assert_eq!(got.len(), 12, "only the info lines of shop and billing: {got:?}");
    for (stream, line) in &got {
        let app = stream["app"]
            .as_str()
            .unwrap_or_else(|| panic!("no app label: {stream}"));
        assert!(["shop", "billing"].contains(&app), "{stream}");
        assert!(
            line.contains(&format!("app={app}")) && line.starts_with("level=info"),
            "{line}"
        );
        assert!(stream.get("team").is_none(), "labeldrop: {stream}");
        assert!(
            stream["filename"].as_str().unwrap().ends_with("/app.log"),
            "{stream}"
        );
    }
    assert_eq!(store.log_lines(r#"{app="shop"}"#).len(), 6);
    assert!(store.log_lines(r#"{job="apps"} |= "scratch""#).is_empty());

    let (status, metrics) = http_get(&format!("http://127.0.0.1:{http}/metrics")).unwrap();
    assert_eq!(status, 200);
    let filtered = metrics
        .lines()
        .find_map(|l| l.strip_prefix("obs_collector_lines_filtered_total "))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert_eq!(
        filtered.trim(),
        "10",
        "5 debug lines in each of the two files read"
    );
    drop(collector);
}
