//! The rules and alerts APIs in Prometheus's shapes: `/api/v1/rules` and `/api/v1/alerts`
//! for PromQL rules, `/prometheus/api/v1/rules` and `/prometheus/api/v1/alerts` for LogQL
//! rules (where Grafana's Loki data source asks the ruler), and `POST /-/reload`.
//!
//! Filters of `/rules` are Prometheus's: `type=alert|record`, `rule_name[]`, `rule_group[]`,
//! `file[]`, `match[]` (label selectors on the rules' labels) and `exclude_alerts=true`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::params::Params;
use super::AppState;
use crate::rules::alert::{Alert, State as AlertState};
use crate::rules::file::Kind;
use crate::rules::group::RuleState;
use crate::rules::Lang;
use crate::tsdb::{matches_all, Labels, Matcher};

pub(crate) fn query_router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/rules", get(prom_rules))
        .route("/api/v1/alerts", get(prom_alerts))
        .route("/prometheus/api/v1/rules", get(loki_rules))
        .route("/prometheus/api/v1/alerts", get(loki_alerts))
}

pub(crate) fn admin_router() -> Router<AppState> {
    Router::new().route("/-/reload", post(reload))
}

type Answer = (StatusCode, Json<Value>);

fn bad(msg: String) -> Answer {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"status": "error", "errorType": "bad_data", "error": msg})),
    )
}

fn success(data: Value) -> Answer {
    (StatusCode::OK, Json(json!({"status": "success", "data": data})))
}

async fn prom_rules(State(st): State<AppState>, p: Params) -> Answer {
    rules(&st, &p, Lang::PromQL)
}

async fn loki_rules(State(st): State<AppState>, p: Params) -> Answer {
    rules(&st, &p, Lang::LogQL)
}

async fn prom_alerts(State(st): State<AppState>) -> Answer {
    alerts(&st, Lang::PromQL)
}

async fn loki_alerts(State(st): State<AppState>) -> Answer {
    alerts(&st, Lang::LogQL)
}

/// `POST /-/reload`: reads the rule files again; answers what failed to load.
async fn reload(State(st): State<AppState>) -> Answer {
    let rules = st.rules.clone();
    let errors = match tokio::task::spawn_blocking(move || rules.reload()).await {
        Ok(e) => e,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"status": "error", "error": e.to_string()})),
            )
        }
    };
    if errors.is_empty() {
        return success(json!({}));
    }
    let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "status": "error",
            "errorType": "bad_data",
            "error": format!("rule files with errors keep their previous rules: {}", list.join("; ")),
        })),
    )
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: `1e+00`, `1.5e+03`, `NaN`, `+Inf`.
pub(crate) fn go_exp(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = format!("{v:e}");
    let (mant, exp) = s.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent digits");
    format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

/// Seconds as Go's JSON writes a float64: `60`, `0.5`.
fn go_seconds(ms: i64) -> Value {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

/// Go's `time.Time` in JSON for a time in milliseconds; the zero time for "never".
fn go_time(ms: Option<i64>) -> String {
    obs_notify::go_time(ms.and_then(chrono::DateTime::from_timestamp_millis))
}

fn object(pairs: impl IntoIterator<Item = (String, String)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect::<Map<_, _>>(),
    )
}

fn alert_json(a: &Alert) -> Value {
    let mut v = json!({
        "labels": object(a.labels.iter().map(|(k, v)| (k.to_string(), v.to_string()))),
        "annotations": object(a.annotations.clone()),
        "state": a.state.as_str(),
        "activeAt": go_time(Some(a.active_at)),
        "value": go_exp(a.value),
    });
    if let Some(since) = a.keep_firing_since {
        v["keepFiringSince"] = json!(go_time(Some(since)));
    }
    v
}

/// The alerts of a rule Prometheus reports: pending and firing ones, oldest first.
fn active(r: &RuleState) -> Vec<&Alert> {
    let mut v: Vec<&Alert> = r
        .alerts
        .values()
        .filter(|a| a.state != AlertState::Inactive)
        .collect();
    v.sort_by(|a, b| (a.active_at, &a.labels).cmp(&(b.active_at, &b.labels)));
    v
}

fn rule_json(r: &RuleState, with_alerts: bool) -> Value {
    let rule = &r.rule;
    let mut v = match &rule.kind {
        Kind::Alert(name) => {
            let alerts = active(r);
            let state = alerts
                .iter()
                .map(|a| a.state)
                .max()
                .unwrap_or(AlertState::Inactive);
            let mut v = json!({
                "state": state.as_str(),
                "name": name,
                "query": rule.query_text(),
                "duration": rule.hold.as_secs(),
                "keepFiringFor": rule.keep_firing_for.as_secs(),
                "labels": object(rule.labels.clone()),
                "annotations": object(rule.annotations.clone()),
                "type": "alerting",
            });
            if with_alerts {
                v["alerts"] = Value::Array(alerts.into_iter().map(alert_json).collect());
            }
            v
        }
        Kind::Record(name) => {
            let mut v = json!({"name": name, "query": rule.query_text(), "type": "recording"});
            // Go's `omitempty`: a recording rule without labels has no `labels` key.
            if !rule.labels.is_empty() {
                v["labels"] = object(rule.labels.clone());
            }
            v
        }
    };
    v["health"] = json!(r.health.as_str());
    if !r.last_error.is_empty() {
        v["lastError"] = json!(r.last_error);
    }
    v["evaluationTime"] = json!(r.eval_seconds);
    v["lastEvaluation"] = json!(go_time(r.last_eval));
    v
}

fn rules(st: &AppState, p: &Params, lang: Lang) -> Answer {
    let kind = match p.get("type") {
        None => None,
        Some(t @ ("alert" | "record")) => Some(t == "alert"),
        Some(other) => return bad(format!("invalid parameter \"type\": unsupported type {other:?}")),
    };
    let exclude_alerts = match p.get("exclude_alerts") {
        None => false,
        Some(v) => match v.parse::<bool>() {
            Ok(b) => b,
            Err(_) => {
                return bad(format!(
                    "invalid parameter \"exclude_alerts\": not a boolean: {v:?}"
                ))
            }
        },
    };
    let names = p.all("rule_name[]");
    let group_names = p.all("rule_group[]");
    let files = p.all("file[]");
    let mut selectors: Vec<Vec<Matcher>> = Vec::new();
    for m in p.all("match[]") {
        match crate::promql::selector_matchers(m) {
            Ok(sets) => selectors.extend(sets),
            Err(e) => return bad(e.to_string()),
        }
    }
    let mut groups = Vec::new();
    for g in st.rules.snapshot().into_iter().filter(|g| g.group.lang == lang) {
        if !group_names.is_empty() && !group_names.contains(&g.group.name.as_str()) {
            continue;
        }
        if !files.is_empty() && !files.contains(&g.group.file.as_str()) {
            continue;
        }
        let rules: Vec<Value> = g
            .rules
            .iter()
            .filter(|r| kind.is_none_or(|alert| matches!(r.rule.kind, Kind::Alert(_)) == alert))
            .filter(|r| names.is_empty() || names.contains(&r.rule.name()))
            .filter(|r| {
                let labels = Labels::new(r.rule.labels.clone());
                selectors.is_empty() || selectors.iter().any(|m| matches_all(&labels, m))
            })
            .map(|r| rule_json(r, !exclude_alerts))
            .collect();
        let filtered = kind.is_some() || !names.is_empty() || !selectors.is_empty();
        if rules.is_empty() && filtered {
            continue;
        }
        groups.push(json!({
            "name": g.group.name,
            "file": g.group.file,
            "rules": rules,
            "interval": go_seconds(g.interval_ms),
            "limit": g.group.limit,
            "evaluationTime": g.eval_seconds,
            "lastEvaluation": go_time(g.last_eval),
        }));
    }
    success(json!({"groups": groups}))
}

fn alerts(st: &AppState, lang: Lang) -> Answer {
    let groups = st.rules.snapshot();
    let list: Vec<Value> = groups
        .iter()
        .filter(|g| g.group.lang == lang)
        .flat_map(|g| g.rules.iter())
        .flat_map(active)
        .map(alert_json)
        .collect();
    success(json!({"alerts": list}))
}

#[cfg(test)]
mod tests {
    use super::go_exp;
    use crate::api::tests::TestStore;
    use crate::rules::{Rules, RulesSettings};

    const PROM: &str = "groups:\n  - name: a\n    rules:\n      - alert: Down\n        expr: up == 0\n        for: 5m\n        labels: {severity: page}\n      - record: job:up:sum\n        expr: sum by (job) (up)\n  - name: b\n    interval: 30s\n    rules:\n      - alert: Other\n        expr: vector(1)\n        labels: {severity: info}\n";
    const LOKI: &str = "groups:\n  - name: logs\n    rules:\n      - alert: Errors\n        expr: sum(rate({app=\"x\"}[1m])) > 0\n";

    async fn store_with_rules() -> (TestStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.yml"), PROM).unwrap();
        std::fs::write(dir.path().join("l.yml"), LOKI).unwrap();
        let mut store = TestStore::new(&[]);
        let settings = RulesSettings {
            files: vec![format!("{}/p.yml", dir.path().display())],
            loki_files: vec![format!("{}/l.yml", dir.path().display())],
            ..RulesSettings::none()
        };
        store.state.rules = Rules::new(settings, store.state.engine.clone(), None);
        assert!(store.state.rules.reload().is_empty());
        (store, dir)
    }

    fn names(v: &serde_json::Value) -> Vec<String> {
        v["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| {
                g["rules"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["name"].as_str().unwrap().to_string())
            })
            .collect()
    }

    #[tokio::test]
    async fn evaluation_is_healthy_until_a_group_lags() {
        let (store, _dir) = store_with_rules().await;
        let now = chrono::Utc::now().timestamp_millis();
        assert_eq!(store.state.rules.healthy(now), Ok(()));
        // Ten minutes without an evaluation: the first group lags.
        let err = store.state.rules.healthy(now + 10 * 60_000).unwrap_err();
        assert!(err.contains("rule group \"a\""), "{err}");
        assert!(err.contains("interval 60 s"), "{err}");
    }

    #[tokio::test]
    async fn rules_filters_and_shapes() {
        let (store, _dir) = store_with_rules().await;
        let all = store.get_json("/api/v1/rules").await;
        assert_eq!(names(&all), ["Down", "job:up:sum", "Other"]);
        let g = &all["data"]["groups"][0];
        assert_eq!(
            (g["name"].as_str(), g["interval"].as_i64(), g["limit"].as_i64()),
            (Some("a"), Some(60), Some(0))
        );
        assert_eq!(all["data"]["groups"][1]["interval"], 30);
        let down = &g["rules"][0];
        assert_eq!(down["type"], "alerting");
        assert_eq!(down["duration"], 300);
        assert_eq!(down["health"], "unknown");
        assert_eq!(down["lastEvaluation"], "0001-01-01T00:00:00Z");
        assert_eq!(down["alerts"], serde_json::json!([]));
        assert!(
            g["rules"][1].get("labels").is_none(),
            "a recording rule without labels has none"
        );

        let get = |uri: String| {
            let store = &store;
            async move { names(&store.get_json(&uri).await) }
        };
        assert_eq!(get("/api/v1/rules?type=alert".into()).await, ["Down", "Other"]);
        assert_eq!(get("/api/v1/rules?type=record".into()).await, ["job:up:sum"]);
        assert_eq!(
            get("/api/v1/rules?rule_name[]=Other&rule_name[]=Down".into()).await,
            ["Down", "Other"]
        );
        assert_eq!(get("/api/v1/rules?rule_group[]=b".into()).await, ["Other"]);
        assert_eq!(
            get(format!("/api/v1/rules?match[]={}", "%7Bseverity%3D%22page%22%7D")).await,
            ["Down"]
        );
        assert_eq!(
            get("/api/v1/rules?file[]=/nope.yml".into()).await,
            Vec::<String>::new()
        );
        let no_alerts = store.get_json("/api/v1/rules?exclude_alerts=true").await;
        assert!(no_alerts["data"]["groups"][0]["rules"][0].get("alerts").is_none());
        let (status, body) = store.get("/api/v1/rules?type=nope").await;
        assert_eq!(status, axum::http::StatusCode::BAD_REQUEST, "{body}");
        // LogQL rules are where Grafana's Loki data source looks, and only there.
        assert_eq!(get("/prometheus/api/v1/rules".into()).await, ["Errors"]);
        let alerts = store.get_json("/prometheus/api/v1/alerts").await;
        assert_eq!(alerts["data"]["alerts"], serde_json::json!([]));
    }

    #[test]
    fn values_are_formatted_as_go_formats_them() {
        assert_eq!(go_exp(1.0), "1e+00");
        assert_eq!(go_exp(1500.0), "1.5e+03");
        assert_eq!(go_exp(0.000123), "1.23e-04");
        assert_eq!(go_exp(-2.5), "-2.5e+00");
        assert_eq!(go_exp(f64::INFINITY), "+Inf");
        assert_eq!(go_exp(f64::NAN), "NaN");
        assert_eq!(go_exp(1e100), "1e+100");
    }
}
