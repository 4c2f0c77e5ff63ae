//! Receivers: where notifications go, and what each service is sent.
//!
//! - `webhook`: Alertmanager's webhook payload (version 4), so existing bridges work;
//! - `alertmanager`: `POST <url>/api/v2/alerts` to an Alertmanager that does the routing;
//! - `ntfy`, `gotify`, `telegram`, `discord`, `slack`: a message for a person (chat.rs),
//!   within each service's size limits;
//! - `email`: SMTP with STARTTLS or TLS and authentication (email.rs);
//! - `none`: sends nothing (Alertmanager's null receiver), for alerts such as the
//!   always-firing `Watchdog` when nothing outside watches them.
//!
//! Secrets come from a file (`*_file`) or an environment variable (`*_env`), never from the
//! config itself: tokens, passwords, and the webhook URLs of discord and slack (the URL is
//! the secret there).

mod alertmanager;
mod chat;
mod email;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use alertmanager::{alertmanager_alerts, go_time, webhook_payload};
pub(crate) use chat::Text;
pub use email::SmtpTls;

use crate::dispatch::Notification;

/// `[[store.alerting.receivers]]` (and `[[collector.alerting.receivers]]`). Which keys
/// apply depends on `type`; a key the type does not use is an error.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The endpoint: webhook URL, Alertmanager, ntfy topic, gotify server, telegram API.
    pub url: Option<String>,
    /// A file, or an environment variable, holding the URL (discord and slack: required).
    pub url_file: Option<PathBuf>,
    pub url_env: Option<String>,
    /// A bearer token (webhook, alertmanager, ntfy), gotify's application token or
    /// telegram's bot token.
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    /// Most alerts in one webhook payload (0: all); the rest are counted in `truncatedAlerts`.
    #[serde(default)]
    pub max_alerts: usize,
    /// telegram: the chat (a number, or `@channel`).
    pub chat_id: Option<String>,
    /// email: `host:port` of the SMTP server.
    pub smarthost: Option<String>,
    /// email: `starttls` (default), `tls` or `none`.
    pub tls: Option<SmtpTls>,
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// email: a PEM certificate to trust besides the usual roots (a private CA).
    pub ca_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Webhook,
    Alertmanager,
    Ntfy,
    Gotify,
    Telegram,
    Discord,
    Slack,
    Email,
    None,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Alertmanager => "alertmanager",
            Kind::Ntfy => "ntfy",
            Kind::Gotify => "gotify",
            Kind::Telegram => "telegram",
            Kind::Discord => "discord",
            Kind::Slack => "slack",
            Kind::Email => "email",
            Kind::None => "none",
        }
    }

    /// The optional keys this type reads.
    fn keys(self) -> &'static [&'static str] {
        const HTTP: &[&str] = &["url", "url_file", "url_env", "token_file", "token_env"];
        match self {
            Kind::Webhook => &[
                "url",
                "url_file",
                "url_env",
                "token_file",
                "token_env",
                "max_alerts",
            ],
            Kind::Alertmanager | Kind::Ntfy | Kind::Gotify => HTTP,
            Kind::Telegram => &["url", "token_file", "token_env", "chat_id"],
            Kind::Discord | Kind::Slack => &["url_file", "url_env"],
            Kind::None => &[],
            Kind::Email => &[
                "smarthost",
                "tls",
                "from",
                "to",
                "username",
                "password_file",
                "password_env",
                "ca_file",
            ],
        }
    }
}

/// One HTTP request to a receiver.
#[derive(Debug)]
pub(crate) struct HttpRequest {
    pub url: String,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug)]
enum Target {
    Webhook { max_alerts: usize },
    Alertmanager,
    Ntfy,
    Gotify { token: String },
    Telegram { token: String, chat_id: String },
    Discord,
    Slack,
    Email(Box<email::Email>),
    Discard,
}

/// A receiver ready to send.
#[derive(Debug)]
pub(crate) struct Receiver {
    pub name: String,
    target: Target,
    url: String,
    /// A bearer token (webhook, alertmanager, ntfy).
    token: Option<String>,
    agent: ureq_tls::Agent,
}

/// The secret in `file` or the environment variable `env`, if either is set.
pub(crate) fn secret(
    file: &Option<PathBuf>,
    env: &Option<String>,
    key: &str,
) -> Result<Option<String>, String> {
    match (file, env) {
        (Some(f), None) => std::fs::read_to_string(f)
            .map(|s| Some(s.trim().to_string()))
            .map_err(|e| format!("cannot read {key}_file {}: {e}", f.display())),
        (None, Some(v)) => std::env::var(v)
            .map(|s| Some(s.trim().to_string()))
            .map_err(|_| format!("environment variable {v} ({key}_env) is not set")),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(format!("set {key}_file or {key}_env, not both")),
    }
    .map(|s| s.filter(|s| !s.is_empty()))
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {key} {}: {e}", path.display()))
}

impl ReceiverConfig {
    /// Keys set in this config that its type does not read.
    fn stray_keys(&self) -> Vec<&'static str> {
        let set = [
            ("url", self.url.is_some()),
            ("url_file", self.url_file.is_some()),
            ("url_env", self.url_env.is_some()),
            ("token_file", self.token_file.is_some()),
            ("token_env", self.token_env.is_some()),
            ("max_alerts", self.max_alerts != 0),
            ("chat_id", self.chat_id.is_some()),
            ("smarthost", self.smarthost.is_some()),
            ("tls", self.tls.is_some()),
            ("from", self.from.is_some()),
            ("to", !self.to.is_empty()),
            ("username", self.username.is_some()),
            ("password_file", self.password_file.is_some()),
            ("password_env", self.password_env.is_some()),
            ("ca_file", self.ca_file.is_some()),
        ];
        let keys = self.kind.keys();
        set.into_iter()
            .filter(|(k, on)| *on && !keys.contains(k))
            .map(|(k, _)| k)
            .collect()
    }

    /// The endpoint URL from `url`, `url_file` or `url_env` (exactly one).
    fn url(&self) -> Result<Option<String>, String> {
        let from_secret = secret(&self.url_file, &self.url_env, "url")?;
        match (&self.url, from_secret) {
            (Some(_), Some(_)) => Err("set url, url_file or url_env, only one".into()),
            (Some(u), None) => Ok(Some(u.clone())),
            (None, s) => Ok(s),
        }
    }
}

pub(crate) fn check_url(url: &str) -> Result<String, String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.trim_end_matches('/').to_string())
    } else {
        Err(format!("url {url:?} must start with http:// or https://"))
    }
}

impl Receiver {
    pub(crate) fn new(cfg: &ReceiverConfig) -> Result<Receiver, String> {
        Receiver::build(cfg).map_err(|e| format!("receiver {:?} ({}): {e}", cfg.name, cfg.kind.name()))
    }

    fn build(cfg: &ReceiverConfig) -> Result<Receiver, String> {
        if matches!(cfg.kind, Kind::Discord | Kind::Slack) && cfg.url.is_some() {
            return Err("the webhook URL is a secret: put it in url_file or url_env, not url".into());
        }
        let stray = cfg.stray_keys();
        if !stray.is_empty() {
            return Err(format!(
                "{} not used by this type (it reads: name, type, {})",
                stray.join(", "),
                cfg.kind.keys().join(", ")
            ));
        }
        let token = secret(&cfg.token_file, &cfg.token_env, "token")?;
        let url = cfg.url()?;
        let need_url = || {
            url.clone()
                .ok_or("needs url".to_string())
                .and_then(|u| check_url(&u))
        };
        let need_token = || token.clone().ok_or("needs token_file or token_env".to_string());
        let (target, url) = match cfg.kind {
            Kind::Webhook => (
                Target::Webhook {
                    max_alerts: cfg.max_alerts,
                },
                need_url()?,
            ),
            Kind::Alertmanager => (Target::Alertmanager, need_url()?),
            Kind::Ntfy => (Target::Ntfy, need_url()?),
            Kind::Gotify => (Target::Gotify { token: need_token()? }, need_url()?),
            Kind::Telegram => (
                Target::Telegram {
                    token: need_token()?,
                    chat_id: cfg.chat_id.clone().ok_or("needs chat_id")?,
                },
                check_url(url.as_deref().unwrap_or("https://api.telegram.org"))?,
            ),
            Kind::Discord => (Target::Discord, need_url()?),
            Kind::Slack => (Target::Slack, need_url()?),
            Kind::Email => {
                let password = secret(&cfg.password_file, &cfg.password_env, "password")?;
                let credentials = match (&cfg.username, password) {
                    (Some(u), Some(p)) => Some((u.clone(), p)),
                    (None, None) => None,
                    _ => return Err("username and password_file (or password_env) go together".into()),
                };
                let e = email::Email::new(email::Settings {
                    smarthost: cfg.smarthost.as_deref().ok_or("needs smarthost (host:port)")?,
                    tls: cfg.tls.unwrap_or_default(),
                    from: cfg.from.as_deref().ok_or("needs from")?,
                    to: &cfg.to,
                    credentials,
                    ca_pem: cfg.ca_file.as_deref().map(|p| read(p, "ca_file")).transpose()?,
                })?;
                (Target::Email(Box::new(e)), String::new())
            }
            Kind::None => (Target::Discard, String::new()),
        };
        let agent: ureq_tls::Agent = ureq_tls::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(15)))
            .build()
            .into();
        Ok(Receiver {
            name: cfg.name.clone(),
            target,
            url,
            token,
            agent,
        })
    }

    /// The HTTP request for `n` (`None` for email and `none`).
    pub(crate) fn request(&self, n: &Notification, external_url: &str) -> Option<HttpRequest> {
        let text = || Text::new(n, external_url);
        let token = self.token.as_deref();
        let mut req = match &self.target {
            Target::Webhook { max_alerts } => chat::json_request(
                self.url.clone(),
                Vec::new(),
                &webhook_payload(n, &self.name, external_url, *max_alerts),
            ),
            Target::Alertmanager => chat::json_request(
                format!("{}/api/v2/alerts", self.url),
                Vec::new(),
                &alertmanager_alerts(n),
            ),
            Target::Ntfy => chat::ntfy(&text(), &self.url),
            Target::Gotify { token } => return Some(chat::gotify(&text(), &self.url, token)),
            Target::Telegram { token, chat_id } => {
                return Some(chat::telegram(&text(), &self.url, token, chat_id))
            }
            Target::Discord => chat::discord(&text(), &self.url),
            Target::Slack => chat::slack(&text(), &self.url),
            Target::Email(_) | Target::Discard => return None,
        };
        if let Some(t) = token {
            req.headers
                .push(("Authorization".to_string(), format!("Bearer {t}")));
        }
        Some(req)
    }

    /// Sends `n`; the receiver's answer (status and body) or why it failed.
    pub(crate) fn send(&self, n: &Notification, external_url: &str) -> Result<(u16, String), String> {
        let Some(r) = self.request(n, external_url) else {
            return match &self.target {
                Target::Email(e) => e.send(n, external_url),
                _ => Ok((0, "nothing sent (a `none` receiver)".into())),
            };
        };
        let mut req = self.agent.post(&r.url).header("content-type", r.content_type);
        for (k, v) in &r.headers {
            req = req.header(k, v);
        }
        // The telegram token is in the path: never in an error message.
        let shown = match &self.target {
            Target::Telegram { token, .. } => r.url.replace(token, "<token>"),
            Target::Discord | Target::Slack => "the webhook".to_string(),
            _ => r.url.clone(),
        };
        let mut resp = req.send(&r.body[..]).map_err(|e| format!("{shown}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        if (200..300).contains(&status) {
            Ok((status, text))
        } else {
            Err(format!("{shown} answered {status}: {}", text.trim()))
        }
    }
}
