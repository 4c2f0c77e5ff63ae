//! Alertmanager's own shapes: the webhook payload (version 4) and `POST /api/v2/alerts`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::alert::{Alert, LabelSet};
use crate::dispatch::Notification;

/// Go's JSON time: RFC 3339 with the fraction it has; the zero time for "none".
pub fn go_time(t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => "0001-01-01T00:00:00Z".into(),
    }
}

fn kv(l: &LabelSet) -> Value {
    json!(l)
}

pub(super) fn alert_status(a: &Alert, at: DateTime<Utc>) -> &'static str {
    if a.resolved(at) {
        "resolved"
    } else {
        "firing"
    }
}

/// Alertmanager's webhook payload (`version: "4"`), fields in its order.
pub fn webhook_payload(n: &Notification, receiver: &str, external_url: &str, max_alerts: usize) -> Value {
    let shown = if max_alerts > 0 {
        &n.alerts[..n.alerts.len().min(max_alerts)]
    } else {
        &n.alerts[..]
    };
    let alerts: Vec<Value> = shown
        .iter()
        .map(|a| {
            json!({
                "status": alert_status(a, n.at),
                "labels": kv(&a.labels),
                "annotations": kv(&a.annotations),
                "startsAt": go_time(Some(a.starts_at)),
                "endsAt": go_time(a.ends_at.filter(|_| a.resolved(n.at))),
                "generatorURL": a.generator_url,
                "fingerprint": a.fingerprint().to_string(),
            })
        })
        .collect();
    json!({
        "receiver": receiver,
        "status": n.status(),
        "alerts": alerts,
        "groupLabels": kv(&n.group_labels),
        "commonLabels": kv(&n.common_labels()),
        "commonAnnotations": kv(&n.common_annotations()),
        "externalURL": external_url,
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": n.alerts.len() - shown.len(),
    })
}

/// The alerts as Alertmanager's `POST /api/v2/alerts` takes them.
pub fn alertmanager_alerts(n: &Notification) -> Value {
    Value::Array(
        n.alerts
            .iter()
            .map(|a| {
                let mut v = json!({
                    "labels": kv(&a.labels),
                    "annotations": kv(&a.annotations),
                    "startsAt": go_time(Some(a.starts_at)),
                    "generatorURL": a.generator_url,
                });
                if let Some(e) = a.ends_at {
                    v["endsAt"] = json!(go_time(Some(e)));
                }
                v
            })
            .collect(),
    )
}
