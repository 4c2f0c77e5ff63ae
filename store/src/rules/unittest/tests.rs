use super::*;

/// Prometheus's own rule unit-test files and the verdict its test suite expects for each
/// (`../shared/conformance/promtool/README.md`).
const VERDICTS: &[(&str, bool)] = &[
    ("unittest.yml", true),
    ("long-period.yml", true),
    ("no-test-group-interval.yml", true),
    ("start-time-test.yml", true),
    ("at-modifier-test.yml", true),
    ("negative-offset-test.yml", true),
    ("failing.yml", false),
    ("bad-input-series.yml", false),
    ("bad-promql.yml", false),
    ("bad-rules-syntax-test.yml", false),
    ("bad-rules-error-test.yml", false),
];

#[test]
fn prometheus_rule_unit_tests_get_promtools_verdicts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/promtool");
    if !dir.exists() {
        eprintln!("SKIPPED: {} is not there", dir.display());
        return;
    }
    let mut wrong = Vec::new();
    for (file, pass) in VERDICTS {
        let report = run_test_file(&dir.join(file));
        if report.passed() != *pass {
            wrong.push(report.render());
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn failures_say_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: Down\n        expr: up == 0\n        for: 2m\n        labels: {severity: page}\n        annotations: {summary: '{{ $labels.instance }} is down'}\n      - record: up:sum\n        expr: sum(up)\n",
    )
    .unwrap();
    let test = dir.path().join("t.yml");
    std::fs::write(
        &test,
        r#"rule_files: [r.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{instance="a"}'
        values: 0x10
      - series: 'up{instance="b"}'
        values: 1x10
    alert_rule_test:
      - eval_time: 1m
        alertname: Down
        exp_alerts: []
      - eval_time: 2m
        alertname: Down
        exp_alerts:
          - exp_labels: {severity: page, instance: a}
            exp_annotations: {summary: a is down}
    promql_expr_test:
      - expr: up:sum
        eval_time: 5m
        exp_samples:
          - labels: up:sum
            value: 1
"#,
    )
    .unwrap();
    let r = run_test_file(&test);
    assert!(r.passed(), "{}", r.render());
    assert!(r.render().ends_with("  SUCCESS\n"));

    let wrong = std::fs::read_to_string(&test)
        .unwrap()
        .replace("value: 1\n", "value: 2\n")
        .replace("summary: a is down", "summary: b");
    std::fs::write(&test, wrong).unwrap();
    let r = run_test_file(&test);
    let text = r.render();
    assert_eq!(r.failures.len(), 2, "{text}");
    assert!(text.contains("alertname: Down, time: 2m0s"), "{text}");
    assert!(text.contains("expr: \"up:sum\", time: 5m0s,\n        exp: [{__name__=\"up:sum\"} 2]\n        got: [{__name__=\"up:sum\"} 1]"), "{text}");
}

#[test]
fn go_durations() {
    assert_eq!(go_duration(0), "0s");
    assert_eq!(go_duration(60_000), "1m0s");
    assert_eq!(go_duration(179_999), "2m59.999s");
    assert_eq!(go_duration(86_400_000), "24h0m0s");
    assert_eq!(go_duration(10), "10ms");
}
