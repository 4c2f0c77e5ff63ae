//! Receivers: where notifications go, and what each service is sent.
//!
//! - `webhook`: Alertmanager's webhook payload (version 4), so existing bridges work;
//! - `alertmanager`: `POST <url>/api/v2/alerts` to an Alertmanager that does the routing;
//! - `ntfy`: a push to a topic URL, title and priority from the alerts, a click link.
//!
//! Secrets come from a file (`token_file`) or an environment variable (`token_env`), never
//! from the config itself.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::alert::{Alert, LabelSet};
use crate::dispatch::Notification;

/// `[[store.alerting.receivers]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub url: String,
    /// A file holding a bearer token.
    pub token_file: Option<PathBuf>,
    /// An environment variable holding a bearer token.
    pub token_env: Option<String>,
    /// Most alerts in one message (0: all); the rest are counted in `truncatedAlerts`.
    #[serde(default)]
    pub max_alerts: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Webhook,
    Alertmanager,
    Ntfy,
}

/// A receiver ready to send.
#[derive(Debug)]
pub(crate) struct Receiver {
    pub name: String,
    kind: Kind,
    url: String,
    token: Option<String>,
    max_alerts: usize,
    agent: ureq_tls::Agent,
}

/// Go's JSON time: RFC 3339 with the fraction it has; the zero time for "none".
pub(crate) fn go_time(t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => "0001-01-01T00:00:00Z".into(),
    }
}

fn kv(l: &LabelSet) -> Value {
    json!(l)
}

impl Receiver {
    pub(crate) fn new(cfg: &ReceiverConfig) -> Result<Receiver, String> {
        let token = match (&cfg.token_file, &cfg.token_env) {
            (Some(f), None) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| {
                        format!(
                            "receiver {:?}: cannot read token_file {}: {e}",
                            cfg.name,
                            f.display()
                        )
                    })?
                    .trim()
                    .to_string(),
            ),
            (None, Some(v)) => Some(std::env::var(v).map_err(|_| {
                format!(
                    "receiver {:?}: environment variable {v} (token_env) is not set",
                    cfg.name
                )
            })?),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(format!(
                    "receiver {:?}: set token_file or token_env, not both",
                    cfg.name
                ))
            }
        };
        if !(cfg.url.starts_with("http://") || cfg.url.starts_with("https://")) {
            return Err(format!(
                "receiver {:?}: url must start with http:// or https://",
                cfg.name
            ));
        }
        let agent: ureq_tls::Agent = ureq_tls::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(15)))
            .build()
            .into();
        Ok(Receiver {
            name: cfg.name.clone(),
            kind: cfg.kind,
            url: cfg.url.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()),
            max_alerts: cfg.max_alerts,
            agent,
        })
    }

    /// The request for `n`: (URL, content type, extra headers, body).
    pub(crate) fn request(
        &self,
        n: &Notification,
        external_url: &str,
    ) -> (String, &'static str, Vec<(String, String)>, Vec<u8>) {
        match self.kind {
            Kind::Webhook => {
                let body = webhook_payload(n, &self.name, external_url, self.max_alerts);
                (
                    self.url.clone(),
                    "application/json",
                    Vec::new(),
                    body.to_string().into_bytes(),
                )
            }
            Kind::Alertmanager => {
                let body = alertmanager_alerts(n);
                (
                    format!("{}/api/v2/alerts", self.url),
                    "application/json",
                    Vec::new(),
                    body.to_string().into_bytes(),
                )
            }
            Kind::Ntfy => ntfy(n, &self.url, external_url),
        }
    }

    /// Sends `n`; the receiver's answer (status and body) or why it failed.
    pub(crate) fn send(&self, n: &Notification, external_url: &str) -> Result<(u16, String), String> {
        let (url, ctype, headers, body) = self.request(n, external_url);
        let mut req = self.agent.post(&url).header("content-type", ctype);
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let mut resp = req.send(&body[..]).map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        if (200..300).contains(&status) {
            Ok((status, text))
        } else {
            Err(format!("{url} answered {status}: {}", text.trim()))
        }
    }
}

fn alert_status(a: &Alert, at: DateTime<Utc>) -> &'static str {
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

/// ntfy's publish: the message body, with title, priority (from `severity`), tags and a
/// click link in headers.
fn ntfy(
    n: &Notification,
    url: &str,
    external_url: &str,
) -> (String, &'static str, Vec<(String, String)>, Vec<u8>) {
    let status = n.status();
    let name = n
        .common_labels()
        .get("alertname")
        .cloned()
        .unwrap_or_else(|| "alerts".into());
    let firing = n.alerts.iter().filter(|a| !a.resolved(n.at)).count();
    let title = if status == "firing" {
        format!("[FIRING:{firing}] {name}")
    } else {
        format!("[RESOLVED] {name}")
    };
    let severity = n.common_labels().get("severity").cloned().unwrap_or_default();
    let priority = match (status, severity.as_str()) {
        ("resolved", _) => "low",
        (_, "critical") => "urgent",
        (_, "warning") => "high",
        _ => "default",
    };
    let tags = if status == "firing" {
        "rotating_light"
    } else {
        "white_check_mark"
    };
    let mut body = String::new();
    for a in &n.alerts {
        let summary = a
            .annotations
            .get("summary")
            .cloned()
            .unwrap_or_else(|| crate::alert::label_text(&a.labels));
        body.push_str(&format!("{}: {summary}\n", alert_status(a, n.at)));
        if let Some(d) = a.annotations.get("description") {
            body.push_str(&format!("  {d}\n"));
        }
    }
    let mut headers = vec![
        ("X-Title".to_string(), title),
        ("X-Priority".to_string(), priority.to_string()),
        ("X-Tags".to_string(), tags.to_string()),
    ];
    if !external_url.is_empty() {
        headers.push((
            "X-Click".to_string(),
            format!("{}/api/v1/alerts", external_url.trim_end_matches('/')),
        ));
    }
    (
        url.to_string(),
        "text/plain; charset=utf-8",
        headers,
        body.into_bytes(),
    )
}
