//! The built-in rule pack (`defaults.yml`), loaded when `[store.rules] defaults = true` and
//! written out by `obs rules defaults --out FILE`.

/// The pack's text, in Prometheus's rule-file format.
pub const PACK: &str = include_str!("defaults.yml");

#[cfg(test)]
mod tests {
    use super::super::file::{parse, Lang};

    #[test]
    fn the_pack_loads_and_every_alert_says_what_to_do() {
        let groups = parse("defaults.yml", super::PACK, Lang::PromQL).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
            )
        });
        let rules: Vec<_> = groups.iter().flat_map(|g| &g.rules).collect();
        assert!(rules.len() >= 15, "{} rules", rules.len());
        for r in rules {
            let get =
                |k: &str, l: &[(String, String)]| l.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            assert!(
                get("severity", &r.labels).is_some(),
                "{} has a severity",
                r.name()
            );
            assert!(
                get("summary", &r.annotations).is_some(),
                "{} has a summary",
                r.name()
            );
            assert!(
                get("description", &r.annotations).is_some_and(|d| d.len() > 40),
                "{} has a description",
                r.name()
            );
        }
    }

    /// Runs a promtool unit-test file against the pack.
    fn promtool_test(test: &str) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("defaults.yml"), super::PACK).unwrap();
        std::fs::write(dir.path().join("t.yml"), test).unwrap();
        let report = super::super::unittest::run_test_file(&dir.path().join("t.yml"));
        assert!(report.passed(), "{}", report.render());
    }

    /// The uptime rules, run as promtool runs rule unit tests.
    #[test]
    fn uptime_rules_fire_on_late_heartbeats_and_probes_down_everywhere() {
        promtool_test(
            r#"
rule_files: [defaults.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'obs_push_last_seen_timestamp_seconds{job="obs-push",name="db"}'
        values: '0x15'
      - series: 'obs_push_deadline_seconds{job="obs-push",name="db"}'
        values: '600x15'
      - series: 'probe_success{job="obs-probe",probe="web",instance="http://web",host_name="a"}'
        values: '1 0 0 0 0 0'
      - series: 'probe_success{job="obs-probe",probe="web",instance="http://web",host_name="b"}'
        values: '0 0 0 0 0 0'
      - series: 'probe_success{job="obs-probe",probe="nas",instance="http://nas",host_name="a"}'
        values: '1 1 1 1 1 1'
      - series: 'probe_success{job="obs-probe",probe="nas",instance="http://nas",host_name="b"}'
        values: '0 0 0 0 0 0'
    alert_rule_test:
      - eval_time: 5m
        alertname: HeartbeatMissing
        exp_alerts: []
      - eval_time: 11m
        alertname: HeartbeatMissing
        exp_alerts:
          - exp_labels: {severity: critical, job: obs-push, name: db}
            exp_annotations:
              summary: "db has not reported for 11m 0s"
              description: "The heartbeat db ([[store.heartbeats]]) has not pushed within its period and grace. Check the job that pushes it (its cron entry, its log) and the machine it runs on."
      - eval_time: 4m
        alertname: ProbeDown
        exp_alerts:
          - exp_labels: {severity: critical, probe: web, instance: "http://web"}
            exp_annotations:
              summary: "web is down from every vantage point"
              description: "No collector can reach http://web. The failure of each check is a log line: {service_name=\"obs-probe\", probe=\"web\"}; `obs probe run web` runs it by hand."
      - eval_time: 4m
        alertname: ProbeDegraded
        exp_alerts: []
"#,
        );
    }

    /// The error-tracking rules: one alert per new or regressed issue, for ten minutes.
    #[test]
    fn error_rules_alert_once_per_new_or_regressed_issue() {
        promtool_test(
            r#"
rule_files: [defaults.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'obs_error_issue_noticed_timestamp_seconds{job="obs-store",instance="s:9700",service_name="shop",issue="3d38f2db31c5",title="panic: boom",reason="new"}'
        values: '_ _ 120x30'
      - series: 'obs_error_issue_noticed_timestamp_seconds{job="obs-store",instance="s:9700",service_name="shop",issue="95c16d8d368b",title="KeyError: <quoted_str>",reason="regression"}'
        values: '_ _ _ 180x30'
    alert_rule_test:
      - eval_time: 1m
        alertname: NewErrorIssue
        exp_alerts: []
      - eval_time: 5m
        alertname: NewErrorIssue
        exp_alerts:
          - exp_labels: {severity: warning, service_name: shop, issue: 3d38f2db31c5, title: "panic: boom"}
            exp_annotations:
              summary: "New error in shop: panic: boom"
              description: "An error not seen before. `obs errors show 3d38f2db31c5` shows its stack and last occurrences with their logs and traces; `obs errors resolve 3d38f2db31c5` once fixed (it alerts again if it comes back), `obs errors ignore 3d38f2db31c5` to stop hearing about it."
      - eval_time: 13m
        alertname: NewErrorIssue
        exp_alerts: []
      - eval_time: 5m
        alertname: ErrorIssueRegressed
        exp_alerts:
          - exp_labels: {severity: warning, service_name: shop, issue: 95c16d8d368b, title: "KeyError: <quoted_str>"}
            exp_annotations:
              summary: "Resolved error is back in shop: KeyError: <quoted_str>"
              description: "An issue marked resolved happened again after the resolve. `obs errors show 95c16d8d368b` shows the new occurrences (their release and host say which deploy brought it back)."
"#,
        );
    }
}
