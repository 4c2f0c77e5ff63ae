//! `obs grafana provision --out DIR`: Grafana provisioning files for a store.
//!
//! Written tree (mount DIR as Grafana's `provisioning/` directory, or copy its parts there):
//!
//! ```text
//! DIR/datasources/obs.yaml       Prometheus, Loki and Tempo data sources on the store, with
//!                                logs → trace (Loki derived field on `trace_id`) and
//!                                trace → logs (Tempo tracesToLogsV2 filtered by trace id)
//! DIR/dashboards/obs.yaml        a file provider loading the dashboards below
//! DIR/dashboards/obs-node.json   node overview: the collector's node_exporter-named metrics
//!                                and the collector's own health
//! DIR/dashboards/obs-logs.json   logs overview: volume by level, errors, top services, lines
//! DIR/dashboards/obs-backup.json backup health: the scheduler's `obs_backup_*` gauges and logs
//! DIR/dashboards/obs-uptime.json uptime: probes (blackbox_exporter's names) and heartbeats
//! DIR/dashboards/obs-errors.json errors: new and top issues, errors by service, error lines,
//!                                each issue linking to its logs and its service's traces
//! ```
//!
//! Data sources have fixed uids (`obs-prometheus`, `obs-loki`, `obs-tempo`) so the
//! dashboards and the cross-links find them. The dashboards are built here with a few panel
//! helpers instead of kept as exported JSON: the queries stay readable and the tests read
//! them back from the written files.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{json, Value};

use crate::cli::GrafanaProvisionArgs;

const PROMETHEUS: &str = "obs-prometheus";
const LOKI: &str = "obs-loki";
const TEMPO: &str = "obs-tempo";

pub(crate) fn provision(args: GrafanaProvisionArgs) -> anyhow::Result<()> {
    let out = &args.out;
    let dashboards_dir = match &args.dashboards_path {
        Some(p) => p.clone(),
        None => std::path::absolute(out.join("dashboards"))?,
    };
    let files: Vec<(PathBuf, String)> = [
        (
            out.join("datasources/obs.yaml"),
            datasources(&args.store, args.token_env.as_deref()),
        ),
        (
            out.join("dashboards/obs.yaml"),
            dashboard_provider(&dashboards_dir),
        ),
    ]
    .into_iter()
    .chain(dashboards().into_iter().map(|(name, d)| {
        let text = serde_json::to_string_pretty(&d).expect("dashboard JSON");
        (out.join("dashboards").join(name), text + "\n")
    }))
    .collect();
    for (path, text) in &files {
        write(path, text)?;
        println!("wrote {}", path.display());
    }
    println!(
        "\nPoint Grafana's provisioning directory at {} (or copy datasources/ and dashboards/ \
         into /etc/grafana/provisioning/) and restart Grafana.",
        out.display()
    );
    if let Some(var) = &args.token_env {
        println!("Grafana must be started with {var} set to a store token of role query.");
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The data sources file. Grafana expands `${VAR}` in provisioning files, so a token is
/// referenced by environment variable and never written to disk here.
fn datasources(store: &str, token_env: Option<&str>) -> String {
    let store = store.trim_end_matches('/');
    let auth = match token_env {
        Some(var) => format!(
            "\n      httpHeaderName1: Authorization\n    secureJsonData:\n      httpHeaderValue1: Bearer ${{{var}}}"
        ),
        None => String::new(),
    };
    format!(
        r#"# Written by `obs grafana provision`: the obs store as Prometheus, Loki and Tempo.
apiVersion: 1
datasources:
  - name: obs Prometheus
    type: prometheus
    uid: {PROMETHEUS}
    access: proxy
    url: {store}
    isDefault: true
    jsonData:
      httpMethod: POST
      timeInterval: 15s{auth}
  - name: obs Loki
    type: loki
    uid: {LOKI}
    access: proxy
    url: {store}
    jsonData:
      maxLines: 1000
      derivedFields:
        - name: trace_id
          matcherType: label
          matcherRegex: trace_id
          datasourceUid: {TEMPO}
          url: "$${{__value.raw}}"
          urlDisplayLabel: View trace{auth}
  - name: obs Tempo
    type: tempo
    uid: {TEMPO}
    access: proxy
    url: {store}
    jsonData:
      nodeGraph:
        enabled: true
      lokiSearch:
        datasourceUid: {LOKI}
      tracesToLogsV2:
        datasourceUid: {LOKI}
        filterByTraceID: true
        spanStartTimeShift: "-5m"
        spanEndTimeShift: "5m"
        tags:
          - key: service.name
            value: service_name{auth}
"#
    )
}

fn dashboard_provider(dir: &Path) -> String {
    format!(
        r#"# Written by `obs grafana provision`: loads the obs dashboards from this directory.
apiVersion: 1
providers:
  - name: obs
    folder: obs
    type: file
    disableDeletion: false
    updateIntervalSeconds: 60
    allowUiUpdates: true
    options:
      path: {}
"#,
        dir.display()
    )
}

/// Every dashboard by file name.
pub(crate) fn dashboards() -> Vec<(&'static str, Value)> {
    vec![
        ("obs-node.json", node_overview()),
        ("obs-logs.json", logs_overview()),
        ("obs-backup.json", backup_health()),
        ("obs-uptime.json", uptime()),
        ("obs-errors.json", errors()),
    ]
}

/// One query of a panel: data source uid, expression, legend.
struct Q(&'static str, String, &'static str);

/// A panel: kind (timeseries, stat, logs, table), title, unit, width, height, queries.
struct P(&'static str, &'static str, &'static str, u32, u32, Vec<Q>);

fn datasource(uid: &str) -> Value {
    let kind = match uid {
        PROMETHEUS => "prometheus",
        LOKI => "loki",
        _ => "tempo",
    };
    json!({"type": kind, "uid": uid})
}

/// A dashboard of panels laid out left to right, wrapping at Grafana's 24 columns.
fn dashboard(uid: &str, title: &str, variables: Vec<Value>, panels: Vec<P>) -> Value {
    let (mut x, mut y, mut row_h) = (0, 0, 0);
    let panels: Vec<Value> = panels
        .into_iter()
        .enumerate()
        .map(|(i, P(kind, title, unit, w, h, queries))| {
            if x + w > 24 {
                (x, y, row_h) = (0, y + row_h, 0);
            }
            let pos = json!({"x": x, "y": y, "w": w, "h": h});
            x += w;
            row_h = row_h.max(h);
            let first = queries.first().map_or(PROMETHEUS, |q| q.0);
            let targets: Vec<Value> = queries
                .iter()
                .zip('A'..)
                .map(|(Q(ds, expr, legend), ref_id)| {
                    let mut t = json!({
                        "datasource": datasource(ds),
                        "refId": ref_id.to_string(),
                        "expr": expr,
                        "legendFormat": legend,
                    });
                    if kind == "table" || kind == "stat" && *ds == LOKI {
                        t["instant"] = json!(true);
                        t["queryType"] = json!("instant");
                    } else {
                        t["range"] = json!(true);
                    }
                    t
                })
                .collect();
            let mut panel = json!({
                "id": i + 1,
                "type": kind,
                "title": title,
                "gridPos": pos,
                "datasource": datasource(first),
                "targets": targets,
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {},
            });
            match kind {
                "stat" => panel["options"] = json!({"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}),
                "logs" => panel["options"] = json!({"showTime": true, "wrapLogMessage": true, "sortOrder": "Descending", "enableLogDetails": true}),
                "timeseries" => panel["options"] = json!({"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}),
                _ => {}
            }
            panel
        })
        .collect();
    json!({
        "uid": uid,
        "title": title,
        "tags": ["obs"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "panels": panels,
    })
}

/// A multi-value template variable filled from a data source query, "All" by default.
fn variable(name: &str, label: &str, uid: &str, query: Value) -> Value {
    json!({
        "name": name,
        "label": label,
        "type": "query",
        "datasource": datasource(uid),
        "query": query,
        "definition": query.get("query").or(query.get("label")).cloned().unwrap_or(query.clone()),
        "refresh": 2,
        "includeAll": true,
        "multi": true,
        "allValue": ".+",
        "current": {"selected": true, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    })
}

fn prom(expr: &str, legend: &'static str) -> Q {
    Q(PROMETHEUS, expr.to_string(), legend)
}

fn loki(expr: &str, legend: &'static str) -> Q {
    Q(LOKI, expr.to_string(), legend)
}

fn node_overview() -> Value {
    let i = r#"instance=~"$instance""#;
    let var = variable(
        "instance",
        "Host",
        PROMETHEUS,
        json!({"query": "label_values(node_boot_time_seconds, instance)", "refId": "instance"}),
    );
    let f = |s: &str| s.replace("$I", i);
    dashboard(
        "obs-node",
        "obs / Node overview",
        vec![var],
        vec![
            P(
                "stat",
                "Uptime",
                "s",
                6,
                4,
                vec![prom(&f("time() - node_boot_time_seconds{$I}"), "{{instance}}")],
            ),
            P(
                "stat",
                "CPU cores",
                "short",
                6,
                4,
                vec![prom(
                    &f(r#"count by (instance) (node_cpu_seconds_total{$I, mode="idle"})"#),
                    "{{instance}}",
                )],
            ),
            P(
                "stat",
                "Memory",
                "bytes",
                6,
                4,
                vec![prom(&f("node_memory_MemTotal_bytes{$I}"), "{{instance}}")],
            ),
            P(
                "stat",
                "Root filesystem used",
                "percent",
                6,
                4,
                vec![prom(
                    &f(
                        r#"100 * (1 - node_filesystem_avail_bytes{$I, mountpoint="/"} / node_filesystem_size_bytes{$I, mountpoint="/"})"#,
                    ),
                    "{{instance}}",
                )],
            ),
            P(
                "timeseries",
                "CPU busy",
                "percent",
                12,
                8,
                vec![prom(
                    &f(
                        r#"100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{$I, mode="idle"}[$__rate_interval])))"#,
                    ),
                    "{{instance}}",
                )],
            ),
            P(
                "timeseries",
                "Load (1m)",
                "short",
                12,
                8,
                vec![prom(&f("node_load1{$I}"), "{{instance}}")],
            ),
            P(
                "timeseries",
                "Memory used",
                "bytes",
                12,
                8,
                vec![prom(
                    &f("node_memory_MemTotal_bytes{$I} - node_memory_MemAvailable_bytes{$I}"),
                    "{{instance}}",
                )],
            ),
            P(
                "timeseries",
                "Filesystem used",
                "percent",
                12,
                8,
                vec![prom(
                    &f(
                        r#"100 * (1 - node_filesystem_avail_bytes{$I, fstype!~"tmpfs|overlay"} / node_filesystem_size_bytes{$I, fstype!~"tmpfs|overlay"})"#,
                    ),
                    "{{instance}} {{mountpoint}}",
                )],
            ),
            P(
                "timeseries",
                "Disk I/O",
                "Bps",
                12,
                8,
                vec![
                    prom(
                        &f("sum by (instance) (rate(node_disk_read_bytes_total{$I}[$__rate_interval]))"),
                        "{{instance}} read",
                    ),
                    prom(
                        &f("sum by (instance) (rate(node_disk_written_bytes_total{$I}[$__rate_interval]))"),
                        "{{instance}} written",
                    ),
                ],
            ),
            P(
                "timeseries",
                "Network",
                "Bps",
                12,
                8,
                vec![
                    prom(
                        &f(
                            r#"sum by (instance) (rate(node_network_receive_bytes_total{$I, device!="lo"}[$__rate_interval]))"#,
                        ),
                        "{{instance}} in",
                    ),
                    prom(
                        &f(
                            r#"sum by (instance) (rate(node_network_transmit_bytes_total{$I, device!="lo"}[$__rate_interval]))"#,
                        ),
                        "{{instance}} out",
                    ),
                ],
            ),
            P(
                "timeseries",
                "Collector: shipped",
                "Bps",
                8,
                8,
                vec![prom(
                    &f(
                        r#"rate(obs_collector_shipped_bytes_total{job="obs-collector", $I}[$__rate_interval])"#,
                    ),
                    "{{instance}}",
                )],
            ),
            P(
                "timeseries",
                "Collector: spool",
                "bytes",
                8,
                8,
                vec![prom(
                    &f(r#"obs_collector_spool_bytes{job="obs-collector", $I}"#),
                    "{{instance}}",
                )],
            ),
            P(
                "timeseries",
                "Collector: dropped records (1h)",
                "short",
                8,
                8,
                vec![prom(
                    &f(r#"increase(obs_collector_spool_dropped_records_total{job="obs-collector", $I}[1h])"#),
                    "{{instance}}",
                )],
            ),
        ],
    )
}

fn logs_overview() -> Value {
    let sel = r#"{host_name=~"$host", service_name=~"$service"}"#;
    let vars = vec![
        variable(
            "host",
            "Host",
            LOKI,
            json!({"type": 1, "label": "host_name", "refId": "host"}),
        ),
        variable(
            "service",
            "Service",
            LOKI,
            json!({"type": 1, "label": "service_name", "refId": "service"}),
        ),
        json!({"name": "search", "label": "Line contains", "type": "textbox", "query": "", "current": {"value": "", "text": ""}}),
    ];
    let f = |s: &str| s.replace("$S", sel);
    dashboard(
        "obs-logs",
        "obs / Logs overview",
        vars,
        vec![
            P(
                "timeseries",
                "Log volume by level",
                "short",
                16,
                8,
                vec![loki(
                    &f("sum by (level) (count_over_time($S [$__interval]))"),
                    "{{level}}",
                )],
            ),
            P(
                "table",
                "Top services",
                "short",
                8,
                8,
                vec![loki(
                    &f("topk(10, sum by (service_name) (count_over_time($S [$__range])))"),
                    "{{service_name}}",
                )],
            ),
            P(
                "timeseries",
                "Errors by service",
                "short",
                24,
                8,
                vec![loki(
                    &f(
                        r#"sum by (service_name) (count_over_time($S | level=~"error|critical|fatal" [$__interval]))"#,
                    ),
                    "{{service_name}}",
                )],
            ),
            P(
                "logs",
                "Lines",
                "",
                24,
                14,
                vec![loki(&f(r#"$S |= "$search""#), "")],
            ),
        ],
    )
}

fn backup_health() -> Value {
    let j = r#"job=~"$job""#;
    let var = variable(
        "job",
        "Backup job",
        PROMETHEUS,
        json!({"query": "label_values(obs_backup_last_run_success, job)", "refId": "job"}),
    );
    let f = |s: &str| s.replace("$J", j);
    dashboard(
        "obs-backup",
        "obs / Backup health",
        vec![var],
        vec![
            P(
                "stat",
                "Last run succeeded",
                "bool_yes_no",
                6,
                4,
                vec![prom(&f("obs_backup_last_run_success{$J}"), "{{job}}")],
            ),
            P(
                "stat",
                "Since last success",
                "s",
                6,
                4,
                vec![prom(
                    &f("time() - obs_backup_last_success_timestamp_seconds{$J}"),
                    "{{job}}",
                )],
            ),
            P(
                "stat",
                "Last drill succeeded",
                "bool_yes_no",
                6,
                4,
                vec![prom(&f("obs_backup_drill_success{$J}"), "{{job}}")],
            ),
            P(
                "stat",
                "Since last drill",
                "s",
                6,
                4,
                vec![prom(
                    &f("time() - obs_backup_drill_last_timestamp_seconds{$J}"),
                    "{{job}}",
                )],
            ),
            P(
                "timeseries",
                "Newest snapshot age",
                "s",
                12,
                8,
                vec![prom(
                    &f("obs_backup_snapshot_age_seconds{$J}"),
                    "{{job}} {{repo}}",
                )],
            ),
            P(
                "timeseries",
                "Backup duration",
                "s",
                12,
                8,
                vec![prom(&f("obs_backup_duration_seconds{$J}"), "{{job}}")],
            ),
            P(
                "timeseries",
                "Bytes added per run",
                "bytes",
                12,
                8,
                vec![prom(&f("obs_backup_bytes_added{$J}"), "{{job}}")],
            ),
            P(
                "timeseries",
                "Drill duration",
                "s",
                12,
                8,
                vec![prom(&f("obs_backup_drill_duration_seconds{$J}"), "{{job}}")],
            ),
            P(
                "logs",
                "Backup and drill log",
                "",
                24,
                10,
                vec![loki(r#"{service_name="obs-backup", job=~"$job"}"#, "")],
            ),
        ],
    )
}

fn uptime() -> Value {
    let var = variable(
        "probe",
        "Probe",
        PROMETHEUS,
        json!({"query": "label_values(probe_success{job=\"obs-probe\"}, probe)", "refId": "probe"}),
    );
    let f = |s: &str| s.replace("$P", r#"job="obs-probe", probe=~"$probe""#);
    dashboard(
        "obs-uptime",
        "obs / Uptime",
        vec![var],
        vec![
            P(
                "stat",
                "Up from any vantage point",
                "bool_yes_no",
                8,
                4,
                vec![prom(&f("max by (probe) (probe_success{$P})"), "{{probe}}")],
            ),
            P(
                "stat",
                "Uptime, 24 h",
                "percentunit",
                8,
                4,
                vec![prom(
                    &f("max by (probe) (avg_over_time(probe_success{$P}[24h]))"),
                    "{{probe}}",
                )],
            ),
            P(
                "stat",
                "Certificate expires in",
                "s",
                8,
                4,
                vec![prom(
                    &f("min by (probe) (probe_ssl_earliest_cert_expiry{$P}) - time()"),
                    "{{probe}}",
                )],
            ),
            P(
                "timeseries",
                "Success by vantage point",
                "bool_yes_no",
                12,
                8,
                vec![prom(&f("probe_success{$P}"), "{{probe}} from {{host_name}}")],
            ),
            P(
                "timeseries",
                "Probe duration",
                "s",
                12,
                8,
                vec![prom(
                    &f("probe_duration_seconds{$P}"),
                    "{{probe}} from {{host_name}}",
                )],
            ),
            P(
                "timeseries",
                "HTTP phases",
                "s",
                12,
                8,
                vec![prom(
                    &f("avg by (phase) (probe_http_duration_seconds{$P})"),
                    "{{phase}}",
                )],
            ),
            P(
                "timeseries",
                "HTTP status",
                "none",
                12,
                8,
                vec![prom(
                    &f("probe_http_status_code{$P}"),
                    "{{probe}} from {{host_name}}",
                )],
            ),
            P(
                "stat",
                "Heartbeats up",
                "bool_yes_no",
                12,
                4,
                vec![prom(r#"obs_push_up{job="obs-push"}"#, "{{name}}")],
            ),
            P(
                "stat",
                "Since last heartbeat",
                "s",
                12,
                4,
                vec![prom(
                    r#"time() - obs_push_last_seen_timestamp_seconds{job="obs-push"}"#,
                    "{{name}}",
                )],
            ),
            P(
                "logs",
                "Probe failures",
                "",
                24,
                10,
                vec![loki(r#"{service_name="obs-probe"} | probe=~"$probe""#, "")],
            ),
        ],
    )
}

/// A Grafana Explore link on data source `uid` running `query` (`${...}` placeholders are
/// left for Grafana to fill in from the clicked value).
fn explore(title: &str, uid: &str, kind: &str, query: &str) -> Value {
    let query_type = if kind == "tempo" { "traceql" } else { "range" };
    let panes = json!({"a": {
        "datasource": uid,
        "queries": [{"refId": "A", "datasource": {"type": kind, "uid": uid}, "expr": query, "query": query, "queryType": query_type}],
        "range": {"from": "now-24h", "to": "now"},
    }});
    // Percent-encode all but the placeholders, which Grafana fills in percent-encoded.
    let text = panes.to_string();
    let mut url = String::from("/explore?schemaVersion=1&orgId=1&panes=");
    let mut rest = text.as_str();
    while let Some(at) = rest.find("${") {
        url.extend(form_urlencoded::byte_serialize(&rest.as_bytes()[..at]));
        let end = rest[at..].find('}').map_or(rest.len(), |e| at + e + 1);
        url.push_str(&rest[at..end].replace('}', ":percentencode}"));
        rest = &rest[end..];
    }
    url.extend(form_urlencoded::byte_serialize(rest.as_bytes()));
    json!({"title": title, "url": url})
}

/// Error tracking: `obs_error_*` from the store's own metrics, and the error lines. Tables
/// link each issue to its log lines and to its service's error traces.
fn errors() -> Value {
    let var = variable(
        "service",
        "Service",
        PROMETHEUS,
        json!({"query": "label_values(obs_error_events_total, service_name)", "refId": "service"}),
    );
    let f = |s: &str| s.replace("$S", r#"service_name=~"$service""#);
    let titled = |inner: &str| {
        f(&format!(
            "sum by (service_name, issue, title) ({inner} * on (service_name, issue) group_left(title) max by (service_name, issue, title) (obs_error_issue_info{{$S}}))"
        ))
    };
    let service_traces = |by: &str| {
        explore(
            "Error traces of this service",
            TEMPO,
            "tempo",
            &format!(r#"{{ resource.service.name = "${{{by}service_name}}" && status = error }}"#),
        )
    };
    let per_issue = |inner: &str| {
        titled(&format!(
            "increase(obs_error_events_total{{$S, issue!=\"other\"}}[$__range]){inner}"
        ))
    };
    let mut d = dashboard(
        "obs-errors",
        "obs / Errors",
        vec![var],
        vec![
            P(
                "stat",
                "Unresolved issues",
                "none",
                8,
                4,
                vec![prom(
                    &f(r#"sum(max by (service_name) (obs_error_issues{$S, status="unresolved"}))"#),
                    "",
                )],
            ),
            P(
                "stat",
                "Error events in range",
                "none",
                8,
                4,
                vec![prom(
                    &f("sum(increase(obs_error_events_total{$S}[$__range]))"),
                    "",
                )],
            ),
            P(
                "stat",
                "New or regressed in the last hour",
                "none",
                8,
                4,
                vec![prom(
                    &f("count(max by (service_name, issue) (obs_error_issue_noticed_timestamp_seconds{$S}))"),
                    "",
                )],
            ),
            P(
                "table",
                "New issues (first seen in this range)",
                "none",
                12,
                9,
                vec![prom(
                    &format!(
                        "{} unless on (service_name, issue) (obs_error_events_total offset $__range)",
                        per_issue("")
                    ),
                    "",
                )],
            ),
            P(
                "table",
                "Top issues by events in this range",
                "none",
                12,
                9,
                vec![prom(&format!("topk(20, {})", per_issue("")), "")],
            ),
            P(
                "timeseries",
                "Errors by service",
                "ops",
                24,
                8,
                vec![prom(
                    &f("sum by (service_name) (rate(obs_error_events_total{$S}[$__rate_interval]))"),
                    "{{service_name}}",
                )],
            ),
            P(
                "logs",
                "Error lines",
                "",
                24,
                10,
                vec![loki(r#"{service_name=~"$service"} | error_issue != """#, "")],
            ),
        ],
    );
    for panel in d["panels"].as_array_mut().expect("panels") {
        let links = match panel["type"].as_str() {
            Some("table") => vec![
                explore(
                    "Logs of this issue",
                    LOKI,
                    "loki",
                    r#"{service_name="${__data.fields.service_name}"} | error_issue="${__data.fields.issue}""#,
                ),
                service_traces("__data.fields."),
            ],
            Some("timeseries") => vec![
                explore(
                    "Error lines of this service",
                    LOKI,
                    "loki",
                    r#"{service_name="${__field.labels.service_name}"} | error_issue != """#,
                ),
                service_traces("__field.labels."),
            ],
            _ => continue,
        };
        panel["fieldConfig"]["defaults"]["links"] = json!(links);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_panel_has_a_unique_id_a_query_and_a_known_data_source() {
        for (name, d) in dashboards() {
            let panels = d["panels"].as_array().unwrap();
            let mut ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
            ids.dedup();
            assert_eq!(ids.len(), panels.len(), "{name}");
            for p in panels {
                let pos = &p["gridPos"];
                assert!(
                    pos["x"].as_u64().unwrap() + pos["w"].as_u64().unwrap() <= 24,
                    "{name}: {p}"
                );
                for t in p["targets"].as_array().unwrap() {
                    assert!(!t["expr"].as_str().unwrap().is_empty(), "{name}: {p}");
                    assert!([PROMETHEUS, LOKI].contains(&t["datasource"]["uid"].as_str().unwrap()));
                }
            }
        }
    }

    #[test]
    fn the_token_is_referenced_by_variable_on_every_data_source() {
        let text = datasources("http://store:9700/", Some("OBS_GRAFANA_TOKEN"));
        assert_eq!(text.matches("Bearer ${OBS_GRAFANA_TOKEN}").count(), 3, "{text}");
        assert_eq!(text.matches("url: http://store:9700\n").count(), 3, "{text}");
        assert!(!datasources("http://s", None).contains("Authorization"));
    }
}
