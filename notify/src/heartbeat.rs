//! The dead man's switch: while the store's rule evaluation is healthy it calls a URL every
//! `interval` (healthchecks.io, Uptime Kuma's push monitor, a ntfy topic the operator
//! watches...). When the store dies, or its rules stop running, the calls stop and that
//! service tells the operator: the watcher is watched from outside.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::receiver::{check_url, secret};

/// `[store.alerting.heartbeat]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    /// The URL to call (POST; the body says what is healthy). Or from a file or variable,
    /// when the URL itself is the secret (a healthchecks.io check).
    pub url: Option<String>,
    pub url_file: Option<PathBuf>,
    pub url_env: Option<String>,
    /// A bearer token (a protected ntfy topic).
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    /// How often to call it (default 1m); set the watching service's period to match.
    #[serde(default = "minute", with = "interval")]
    pub interval: Duration,
}

fn minute() -> Duration {
    Duration::from_secs(60)
}

mod interval {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        match humantime::parse_duration(&s) {
            Ok(d) if d >= Duration::from_secs(1) => Ok(d),
            Ok(_) => Err(serde::de::Error::custom("interval must be at least 1s")),
            Err(e) => Err(serde::de::Error::custom(format!(
                "invalid duration {s:?}: {e} (try \"1m\")"
            ))),
        }
    }
}

/// A configured heartbeat, ready to call.
pub struct Heartbeat {
    url: String,
    token: Option<String>,
    pub interval: Duration,
    agent: ureq_tls::Agent,
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeat")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Heartbeat {
    pub fn new(cfg: &HeartbeatConfig) -> Result<Heartbeat, crate::Error> {
        let err = |e: String| crate::Error::Config(format!("[store.alerting.heartbeat]: {e}"));
        let from_secret = secret(&cfg.url_file, &cfg.url_env, "url").map_err(err)?;
        let url = match (&cfg.url, from_secret) {
            (Some(u), None) => u.clone(),
            (None, Some(u)) => u,
            (None, None) => return Err(err("needs url, url_file or url_env".into())),
            (Some(_), Some(_)) => return Err(err("set url, url_file or url_env, only one".into())),
        };
        Ok(Heartbeat {
            url: check_url(&url).map_err(err)?,
            token: secret(&cfg.token_file, &cfg.token_env, "token").map_err(err)?,
            interval: cfg.interval,
            agent: ureq_tls::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .into(),
        })
    }

    /// Calls the URL once with `message` as the body (blocking); the status, or why not.
    pub fn ping(&self, message: &str) -> Result<u16, String> {
        let mut req = self
            .agent
            .post(&self.url)
            .header("content-type", "text/plain; charset=utf-8");
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let status = req
            .send(message)
            .map_err(|e| format!("heartbeat: {e}"))?
            .status()
            .as_u16();
        if (200..300).contains(&status) {
            Ok(status)
        } else {
            Err(format!("heartbeat: the URL answered {status}"))
        }
    }
}
