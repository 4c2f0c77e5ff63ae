//! `obs-notify`: alerts in, messages out, to the people who must act on them. It knows
//! nothing of the store or the collector; both hand it alerts.
//!
//! ```text
//! Notifier::insert(alerts, now)   alerts from rules (firing, or resolved with their end)
//!   -> dispatch.rs: route.rs picks the routes (label matchers), alerts join the
//!      aggregation group of their group_by labels
//! Notifier::flush(now)            groups whose group_wait / group_interval came
//!   -> inhibit.rs, silence.rs mute alerts -> the notification log (dispatch.rs) says
//!      whether the receiver must hear of it (new, resolved, or repeat_interval passed)
//!   -> queue.rs: the notification is a file on disk before any attempt
//! Notifier::deliver(now)          due queue entries -> receiver/ (webhook, alertmanager,
//!   ntfy, gotify, telegram, discord, slack, email) -> done, or retried with backoff
//!   (counted per receiver)
//! ```
//!
//! On disk, in the notifier's directory: `queue/` (one JSON file per pending notification),
//! `nflog.json` (what each receiver was told, per group: a restart does not repeat it) and
//! `silences.json`.

mod alert;
mod dispatch;
mod heartbeat;
mod inhibit;
mod matcher;
mod queue;
mod receiver;
mod route;
mod silence;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Deserialize;

pub use alert::{fingerprint, Alert, Fingerprint, LabelSet};
pub use dispatch::Notification;
pub use heartbeat::{Heartbeat, HeartbeatConfig};
pub use inhibit::InhibitRule;
pub use matcher::{parse_list as parse_matchers, Matcher, Op};
pub use receiver::{alertmanager_alerts, go_time, webhook_payload, Kind, ReceiverConfig, SmtpTls};
pub use route::RouteConfig;
pub use silence::Silence;

/// `[store.alerting]` (and `[collector.alerting]`): receivers, the route tree, inhibition.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Links in messages point here (the store's URL as people reach it).
    #[serde(default)]
    pub external_url: String,
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    pub route: Option<RouteConfig>,
    #[serde(default)]
    pub inhibit: Vec<InhibitRule>,
    /// A URL called while rule evaluation is healthy (a dead man's switch).
    pub heartbeat: Option<HeartbeatConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid alerting config: {0}")]
    Config(String),
    #[error("{0}")]
    Storage(String),
}

/// Counters per receiver, for `/metrics`.
#[derive(Debug, Default)]
pub struct ReceiverStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
}

struct Inner {
    dispatcher: dispatch::Dispatcher,
    silences: silence::Silences,
}

/// The notifier: routing and grouping state, silences, the queue and the receivers.
pub struct Notifier {
    inner: Mutex<Inner>,
    inhibitor: inhibit::Inhibitor,
    queue: Mutex<queue::Queue>,
    receivers: BTreeMap<String, receiver::Receiver>,
    stats: BTreeMap<String, ReceiverStats>,
    external_url: String,
    log_path: PathBuf,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("receivers", &self.receivers.keys())
            .finish_non_exhaustive()
    }
}

/// Checks an alerting config as the store would load it (receivers with their secrets,
/// the route tree, the heartbeat) without touching any state.
pub fn validate(cfg: &NotifyConfig) -> Result<(), Error> {
    if let Some(h) = &cfg.heartbeat {
        Heartbeat::new(h)?;
    }
    let mut names = Vec::new();
    for r in &cfg.receivers {
        receiver::Receiver::new(r).map_err(Error::Config)?;
        names.push(r.name.clone());
    }
    match &cfg.route {
        Some(route) => route::Route::new(route, &names)
            .map(|_| ())
            .map_err(Error::Config),
        None if names.is_empty() => Ok(()),
        None => Err(Error::Config(
            "receivers are defined but no route sends to them: add a route with a receiver".into(),
        )),
    }
}

impl Notifier {
    /// Builds the notifier from its config, keeping its state in `dir`. `None` when no
    /// route is configured (notifications are off).
    pub fn open(cfg: &NotifyConfig, dir: &Path) -> Result<Option<Notifier>, Error> {
        let Some(route_cfg) = &cfg.route else {
            // Nothing to send to; still refuse receivers that no route uses.
            validate(cfg)?;
            return Ok(None);
        };
        let mut receivers = BTreeMap::new();
        for r in &cfg.receivers {
            if receivers.contains_key(&r.name) {
                return Err(Error::Config(format!("two receivers are named {:?}", r.name)));
            }
            receivers.insert(r.name.clone(), receiver::Receiver::new(r).map_err(Error::Config)?);
        }
        let names: Vec<String> = receivers.keys().cloned().collect();
        let route = route::Route::new(route_cfg, &names).map_err(Error::Config)?;
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Storage(format!("cannot create {}: {e}", dir.display())))?;
        let log_path = dir.join("nflog.json");
        let mut dispatcher = dispatch::Dispatcher::new(route);
        if let Ok(b) = std::fs::read(&log_path) {
            dispatcher.log = serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "notification log unreadable; starting a new one");
                BTreeMap::new()
            });
        }
        let silences = silence::Silences::open(&dir.join("silences.json")).map_err(Error::Storage)?;
        let queue = queue::Queue::open(&dir.join("queue")).map_err(Error::Storage)?;
        Ok(Some(Notifier {
            inner: Mutex::new(Inner { dispatcher, silences }),
            inhibitor: inhibit::Inhibitor {
                rules: cfg.inhibit.clone(),
            },
            queue: Mutex::new(queue),
            stats: names
                .iter()
                .map(|n| (n.clone(), ReceiverStats::default()))
                .collect(),
            receivers,
            external_url: cfg.external_url.clone(),
            log_path,
        }))
    }

    /// Hands over alerts (firing, or resolved with their end time).
    pub fn insert(&self, alerts: Vec<Alert>, now: DateTime<Utc>) {
        let mut inner = self.inner.lock().expect("notifier lock");
        for a in alerts {
            inner.dispatcher.insert(a, now);
        }
    }

    /// Queues the notifications due at `now`; returns how many.
    pub fn flush(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        let mut inner = self.inner.lock().expect("notifier lock");
        let inner = &mut *inner;
        let due = inner.dispatcher.due(now, &self.inhibitor, &inner.silences);
        if due.is_empty() {
            return Ok(0);
        }
        let mut queue = self.queue.lock().expect("queue lock");
        for n in &due {
            queue.push(n.clone()).map_err(Error::Storage)?;
        }
        let log = serde_json::to_vec(&inner.dispatcher.log).map_err(|e| Error::Storage(e.to_string()))?;
        queue::write_atomic(&self.log_path, &log).map_err(Error::Storage)?;
        Ok(due.len())
    }

    /// Attempts every queued notification that is due (blocking: HTTP requests); returns
    /// how many were delivered.
    pub fn deliver(&self, now: DateTime<Utc>) -> usize {
        let due = self.queue.lock().expect("queue lock").due(now);
        let mut delivered = 0;
        for (id, p) in due {
            let result = match self.receivers.get(&p.notification.receiver) {
                Some(r) => r.send(&p.notification, &self.external_url).map(|_| ()),
                None => Err(format!(
                    "receiver {:?} is no longer configured",
                    p.notification.receiver
                )),
            };
            let queue = self.queue.lock().expect("queue lock");
            let stats = self.stats.get(&p.notification.receiver);
            match result {
                Ok(()) => {
                    delivered += 1;
                    if let Some(s) = stats {
                        s.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Err(e) = queue.done(id) {
                        tracing::error!(error = %e, "delivered notification could not be removed from the queue");
                    }
                }
                Err(e) => {
                    if let Some(s) = stats {
                        s.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::warn!(receiver = %p.notification.receiver, attempt = p.attempts + 1, error = %e, "notification not delivered; will retry");
                    if let Err(e) = queue.failed(id, p, now, &e) {
                        tracing::error!(error = %e, "could not record the failed attempt");
                    }
                }
            }
        }
        delivered
    }

    /// Sends a test message to one receiver now and returns its answer.
    pub fn test(&self, receiver: &str, now: DateTime<Utc>) -> Result<(u16, String), String> {
        let r = self
            .receivers
            .get(receiver)
            .ok_or_else(|| format!("no receiver named {receiver:?}"))?;
        let labels: LabelSet = [("alertname".to_string(), "ObsTestNotification".to_string())].into();
        let n = Notification {
            receiver: receiver.to_string(),
            group_key: "{}:{alertname=\"ObsTestNotification\"}".into(),
            group_labels: labels.clone(),
            alerts: vec![Alert {
                labels,
                annotations: [("summary".to_string(), "A test notification from obs".to_string())].into(),
                starts_at: now,
                ends_at: None,
                generator_url: self.external_url.clone(),
            }],
            at: now,
        };
        r.send(&n, &self.external_url)
    }

    /// Notifications waiting to be delivered.
    pub fn queued(&self) -> usize {
        self.queue.lock().expect("queue lock").len()
    }

    pub fn stats(&self) -> &BTreeMap<String, ReceiverStats> {
        &self.stats
    }

    /// The silences, in Alertmanager's v2 shape.
    pub fn silences(&self, now: DateTime<Utc>) -> Vec<serde_json::Value> {
        let inner = self.inner.lock().expect("notifier lock");
        inner.silences.list().iter().map(|s| s.to_api(now)).collect()
    }

    pub fn add_silence(&self, s: Silence) -> Result<String, String> {
        self.inner.lock().expect("notifier lock").silences.add(s)
    }

    pub fn expire_silence(&self, id: &str, now: DateTime<Utc>) -> Result<bool, String> {
        self.inner.lock().expect("notifier lock").silences.expire(id, now)
    }
}
