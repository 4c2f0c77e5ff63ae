use super::*;

fn errors(text: &str) -> Vec<String> {
    match parse("r.yml", text, Lang::PromQL) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn a_prometheus_rule_file_loads() {
    let text = r#"
groups:
  - name: example
    interval: 30s
    query_offset: 1m
    limit: 10
    labels:
      team: infra
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: InstanceDown
        expr: up == 0
        for: 5m
        keep_firing_for: 10m
        labels:
          severity: page
          team: ops
        annotations:
          summary: "Instance {{ $labels.instance }} down"
  - name: second
    rules:
      - alert: Always
        expr: 1
        for: 0
"#;
    let groups = parse("r.yml", text, Lang::PromQL).unwrap();
    assert_eq!(groups.len(), 2);
    let g = &groups[0];
    assert_eq!(
        (g.name.as_str(), g.interval, g.query_offset, g.limit),
        (
            "example",
            Some(Duration::from_secs(30)),
            Duration::from_secs(60),
            10
        )
    );
    assert_eq!(g.rules[0].kind, Kind::Record("job:up:sum".into()));
    assert_eq!(g.rules[0].labels, [("team".to_string(), "infra".to_string())]);
    let alert = &g.rules[1];
    assert_eq!(alert.kind, Kind::Alert("InstanceDown".into()));
    assert_eq!(
        (alert.hold, alert.keep_firing_for),
        (Duration::from_secs(300), Duration::from_secs(600))
    );
    // The rule's own labels win over the group's.
    assert_eq!(
        alert.labels,
        [
            ("severity".to_string(), "page".to_string()),
            ("team".to_string(), "ops".to_string())
        ]
    );
    assert_eq!(alert.query_text(), "up == 0");
    assert_eq!(groups[1].interval, None);
    assert_eq!(groups[1].rules[0].expr, "1");
    assert!(parse("empty.yml", "", Lang::PromQL).unwrap().is_empty());
}

#[test]
fn problems_are_reported_with_their_position() {
    let e = errors("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(up\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("r.yml:5:15: group \"g\", rule 1, \"A\": could not parse expression: "),
        "{e:?}"
    );

    let e = errors("groups:\n  - name: g\n    rules:\n      - record: x\n        expr: up\n      - record: 'bad name'\n        expr: up\n");
    assert_eq!(
        e,
        ["r.yml:6:9: group \"g\", rule 2, \"bad name\": invalid recording rule name: bad name"]
    );

    let e =
        errors("groups:\n  - name: g\n    rules:\n      - record: x\n        alert: y\n        expr: up\n");
    assert!(
        e[0].ends_with("only one of 'record' and 'alert' must be set"),
        "{e:?}"
    );
    let e = errors("groups:\n  - name: g\n    rules:\n      - expr: up\n");
    assert!(e[0].ends_with("one of 'record' or 'alert' must be set"), "{e:?}");
    let e = errors("groups:\n  - name: g\n    rules:\n      - alert: A\n");
    assert!(e[0].ends_with("field 'expr' must be set in rule"), "{e:?}");
    let e =
        errors("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n        for: 5m\n");
    assert!(e[0].ends_with("invalid field 'for' in recording rule"), "{e:?}");
    let e = errors("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n        annotations:\n          a: b\n");
    assert!(
        e[0].ends_with("invalid field 'annotations' in recording rule"),
        "{e:?}"
    );
    let e = errors(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        for: 5 minutes\n",
    );
    assert!(e[0].contains("for: not a valid duration string"), "{e:?}");
    let e = errors("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        labels:\n          'a-b': x\n");
    assert!(e[0].ends_with("invalid label name: a-b"), "{e:?}");
    let e = errors("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        annotations:\n          s: '{{ if }}'\n");
    assert!(e[0].contains("template parse error in annotation \"s\""), "{e:?}");
    let e = errors("groups:\n  - name: g\n    rules: []\n  - name: g\n    rules: []\n");
    assert_eq!(e, ["r.yml:4:5: groupname: \"g\" is repeated in the same file"]);
    let e = errors("groups:\n  - name: g\n    rulez: []\n");
    assert!(e[0].starts_with("r.yml:3:5: ") && e[0].contains("rulez"), "{e:?}");
    let e = errors("groups: [\n");
    assert!(e[0].starts_with("r.yml:"), "{e:?}");
}

#[test]
fn logql_rules_need_metric_queries() {
    let ok = "groups:\n  - name: logs\n    rules:\n      - alert: Errors\n        expr: sum by (app) (rate({app=\"web\"} |= \"error\" [5m])) > 1\n";
    let g = parse("l.yml", ok, Lang::LogQL).unwrap();
    assert!(matches!(g[0].rules[0].query, Query::Log(_)));
    let bad = "groups:\n  - name: logs\n    rules:\n      - alert: Lines\n        expr: '{app=\"web\"}'\n";
    let e = parse("l.yml", bad, Lang::LogQL).unwrap_err();
    assert!(e[0].message.contains("a rule needs a metric query"), "{e:?}");
}

#[test]
fn the_community_packs_load_unchanged() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/rules");
    let files: Vec<_> = ["community-node-exporter.yml", "community-blackbox-exporter.yml"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    if !files[0].exists() {
        eprintln!("SKIPPED: {} is not there", dir.display());
        return;
    }
    let errors = check_files(&files, Lang::PromQL);
    assert!(
        errors.is_empty(),
        "{}",
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let rules: usize = files
        .iter()
        .map(|f| {
            load_file(f, Lang::PromQL)
                .unwrap()
                .iter()
                .map(|g| g.rules.len())
                .sum::<usize>()
        })
        .sum();
    assert!(rules > 30, "{rules} rules");
}

#[test]
fn durations_are_prometheus_durations() {
    let d = |s| parse_duration("for", s);
    assert_eq!(d("0"), Ok(Duration::ZERO));
    assert_eq!(d("0m"), Ok(Duration::ZERO));
    assert_eq!(d("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(d("1d2h"), Ok(Duration::from_secs(93_600)));
    assert_eq!(d("1s500ms"), Ok(Duration::from_millis(1500)));
    assert_eq!(d("2w"), Ok(Duration::from_secs(14 * 86_400)));
    for bad in [
        "",
        "m",
        "5",
        "1m1h",
        "1m1m",
        "1.5h",
        "-1m",
        "5 m",
        "99999999999999999999y",
    ] {
        assert!(d(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn hostile_rule_files_get_errors_not_crashes() {
    // Nested 100,000 deep, a huge expression, and a template nested past its limit.
    let deep = format!("groups: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(!errors(&deep).is_empty());
    let huge = format!(
        "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: '{}'\n",
        "1+".repeat(100_000) + "1"
    );
    assert!(
        errors(&huge)[0].contains("could not parse expression"),
        "{:?}",
        &errors(&huge)[0][..200]
    );
    let tmpl = format!(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        annotations:\n          s: '{}'\n",
        "{{ if true }}".repeat(500)
    );
    assert!(
        errors(&tmpl)[0].contains("template parse error"),
        "{:?}",
        errors(&tmpl)
    );
}
