//! `obs rules test` and Prometheus 2.42's `promtool test rules` (Debian) reach the same
//! verdict on the same files: Prometheus's own promtool test files that 2.42 can read (see
//! `../shared/conformance/promtool/README.md`), and test files of ours that pass and fail.

use std::path::{Path, PathBuf};

use obs_e2e::{obs_bin, which, Proc};

/// The files of Prometheus's suite that promtool 2.42 reads (it predates fields used by
/// unittest.yml, no-test-group-interval.yml and start-time-test.yml).
const READABLE_BY_2_42: &[&str] = &[
    "long-period.yml",
    "at-modifier-test.yml",
    "negative-offset-test.yml",
    "failing.yml",
    "bad-input-series.yml",
    "bad-promql.yml",
    "bad-rules-syntax-test.yml",
    "bad-rules-error-test.yml",
];

const RULES: &str = r#"groups:
  - name: node
    rules:
      - record: instance:up:avg
        expr: avg by (instance) (up)
      - alert: InstanceDown
        expr: up == 0
        for: 2m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.instance }} down, value {{ $value | humanize }}"
"#;

fn test_file(expect_summary: &str, expect_avg: &str) -> String {
    format!(
        r#"rule_files: [rules.yml]
evaluation_interval: 30s
tests:
  - interval: 30s
    input_series:
      - series: 'up{{instance="a", job="n"}}'
        values: 1 1 0 0 0 0 0 0 0
      - series: 'up{{instance="b", job="n"}}'
        values: 1+0x8
    alert_rule_test:
      - eval_time: 2m
        alertname: InstanceDown
        exp_alerts: []
      - eval_time: 3m
        alertname: InstanceDown
        exp_alerts:
          - exp_labels: {{instance: a, job: n, severity: page}}
            exp_annotations: {{summary: "{expect_summary}"}}
    promql_expr_test:
      - expr: instance:up:avg
        eval_time: 4m
        exp_samples:
          - labels: 'instance:up:avg{{instance="a"}}'
            value: {expect_avg}
          - labels: 'instance:up:avg{{instance="b"}}'
            value: 1
      - expr: count(ALERTS{{alertstate="firing"}})
        eval_time: 4m
        exp_samples:
          - value: 1
"#
    )
}

fn verdict(program: &Path, args: &[&str], dir: &Path) -> (i32, String) {
    let (code, out, err) = Proc::run(program, args, dir);
    (code, format!("{out}{err}"))
}

#[test]
fn obs_and_promtool_2_42_agree_on_every_test_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("rules.yml"), RULES).unwrap();
    std::fs::write(dir.join("passing.yml"), test_file("a down, value 0", "0")).unwrap();
    std::fs::write(dir.join("wrong-annotation.yml"), test_file("a is down", "0")).unwrap();
    std::fs::write(dir.join("wrong-value.yml"), test_file("a down, value 0", "0.5")).unwrap();
    let mut files: Vec<PathBuf> = ["passing.yml", "wrong-annotation.yml", "wrong-value.yml"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/promtool");
    if suite.exists() {
        files.extend(READABLE_BY_2_42.iter().map(|f| suite.join(f)));
    } else {
        eprintln!("SKIPPED Prometheus's files: {} is not there", suite.display());
    }
    let promtool = which("promtool");
    let mut differ = Vec::new();
    for f in &files {
        let f = f.to_str().unwrap();
        let ours = verdict(obs_bin(), &["rules", "test", f], dir);
        let theirs = verdict(&promtool, &["test", "rules", f], dir);
        if ours.0 != theirs.0 {
            differ.push(format!(
                "{f}: obs exit {} / promtool exit {}\n--- obs\n{}--- promtool\n{}",
                ours.0, theirs.0, ours.1, theirs.1
            ));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    // Our own files: one passes, the others fail, in both.
    let (code, _) = verdict(
        obs_bin(),
        &["rules", "test", dir.join("passing.yml").to_str().unwrap()],
        dir,
    );
    assert_eq!(code, 0);
    let (code, out) = verdict(
        obs_bin(),
        &["rules", "test", dir.join("wrong-value.yml").to_str().unwrap()],
        dir,
    );
    assert_eq!(code, 1, "{out}");
}
