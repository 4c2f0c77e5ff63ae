//! `[collector.alerting]`: the collector tells the operator when it cannot reach the store.
//!
//! The store notifies about everything else, but a store that is down (or a node whose
//! uplink is down) cannot say so. Every second this task looks at the shipper's
//! `failing_since` (the first failed delivery since the last success): once it is older
//! than `store_down_notify_after`, one `ObsStoreUnreachable` alert fires through the
//! configured receiver; when a delivery succeeds again, its resolution says how much the
//! spool held meanwhile. Both go through `obs-notify` (its notification log and durable
//! queue live in `<data_dir>/notify/`), so a restart neither repeats nor loses them, and
//! a message that cannot be sent yet (the uplink is down too) is retried.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use obs_notify::{Alert, NotifyConfig, RouteConfig};
use tokio::sync::watch;

use crate::config::Alerting;
use crate::export::ExportStats;
use crate::spool::Spool;

/// The notifier config for `cfg`: one route to the chosen receiver, one message per outage.
fn notify_config(cfg: &Alerting) -> Result<NotifyConfig, String> {
    let receiver = match (&cfg.receiver, cfg.receivers.as_slice()) {
        (Some(r), _) => r.clone(),
        (None, [one]) => one.name.clone(),
        (None, []) => return Err("[collector.alerting] needs a [[collector.alerting.receivers]]".into()),
        (None, _) => {
            return Err(
                "[collector.alerting] has several receivers: say which with receiver = \"NAME\"".into(),
            )
        }
    };
    Ok(NotifyConfig {
        receivers: cfg.receivers.clone(),
        route: Some(RouteConfig {
            receiver: Some(receiver),
            group_by: Some(vec!["alertname".into(), "host_name".into()]),
            group_wait: Some(Duration::ZERO),
            group_interval: Some(Duration::from_secs(1)),
            // One message per outage, however long it lasts.
            repeat_interval: Some(Duration::from_secs(10 * 365 * 86400)),
            send_resolved: Some(true),
            ..RouteConfig::default()
        }),
        ..NotifyConfig::default()
    })
}

/// Checks `[collector.alerting]` (receivers, their secrets) before the collector starts.
pub fn check(cfg: &Alerting) -> Result<(), String> {
    obs_notify::validate(&notify_config(cfg)?).map_err(|e| format!("[collector.alerting]: {e}"))
}

fn size_text(bytes: u64) -> String {
    if bytes < 1 << 20 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    }
}

fn human(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, s % 3600 / 60),
    }
}

/// What the watcher knows of the current outage.
struct Outage {
    /// Whether an alert may be firing (true at start: a previous run may have sent one).
    alerted: bool,
    down_since: Option<DateTime<Utc>>,
    /// The most the spool held during the outage.
    peak: u64,
}

/// The alert for `host` at `now`, or `None` when there is nothing to say.
fn observe(
    o: &mut Outage,
    stats: &ExportStats,
    spool: &Spool,
    after: Duration,
    (host, store): (&str, &str),
    now: DateTime<Utc>,
) -> Option<Alert> {
    let labels = [
        ("alertname".to_string(), "ObsStoreUnreachable".to_string()),
        ("host_name".to_string(), host.to_string()),
        ("severity".to_string(), "critical".to_string()),
    ]
    .into();
    let size = spool.size();
    let since = stats.failing_since.load(Ordering::Relaxed);
    if since != 0 {
        let since = DateTime::from_timestamp(since as i64, 0).unwrap_or(now);
        o.peak = o.peak.max(size);
        o.down_since = Some(since);
        if now - since < chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX) {
            return None;
        }
        o.alerted = true;
        return Some(Alert {
            labels,
            annotations: [
                ("summary".to_string(), format!("{host} cannot reach the store")),
                (
                    "description".to_string(),
                    format!(
                        "Nothing delivered to {store} for {}. Everything is kept in the spool on disk ({} so far) and sent when the store is back.",
                        human(now - since),
                        size_text(size)
                    ),
                ),
            ]
            .into(),
            starts_at: since,
            ends_at: None,
            generator_url: String::new(),
        });
    }
    if !o.alerted || stats.last_success.load(Ordering::Relaxed) == 0 {
        return None;
    }
    o.alerted = false;
    let down = o.down_since.take();
    let held = std::mem::take(&mut o.peak);
    let description = match down {
        Some(d) => format!(
            "{store} was unreachable for {}; the spool held up to {} meanwhile and is being sent ({} left).",
            human(now - d),
            size_text(held),
            size_text(size)
        ),
        None => format!(
            "{store} takes deliveries again ({} left in the spool).",
            size_text(size)
        ),
    };
    Some(Alert {
        labels,
        annotations: [
            ("summary".to_string(), format!("{host} reaches the store again")),
            ("description".to_string(), description),
        ]
        .into(),
        starts_at: down.unwrap_or(now),
        ends_at: Some(now),
        generator_url: String::new(),
    })
}

/// Watches the store's reachability until shutdown.
pub(crate) async fn run(
    cfg: Alerting,
    (host, store): (String, String),
    stats: Arc<ExportStats>,
    spool: Arc<Spool>,
    dir: &Path,
    mut shutdown: watch::Receiver<bool>,
) {
    let notifier = match notify_config(&cfg)
        .and_then(|c| obs_notify::Notifier::open(&c, &dir.join("notify")).map_err(|e| e.to_string()))
    {
        Ok(Some(n)) => Arc::new(n),
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "store-down notifications are off");
            return;
        }
    };
    let mut outage = Outage {
        alerted: true,
        down_since: None,
        peak: 0,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let now = Utc::now();
        let alert = observe(
            &mut outage,
            &stats,
            &spool,
            cfg.store_down_notify_after,
            (&host, &store),
            now,
        );
        let n = notifier.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(a) = alert {
                n.insert(vec![a], now);
            }
            if let Err(e) = n.flush(now) {
                tracing::error!(error = %e, "store-down notification could not be queued");
            }
            n.deliver(now);
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{MemFs, SpoolConfig};

    #[test]
    fn one_alert_per_outage_then_its_resolution_with_what_the_spool_held() {
        let spool = Spool::open(Arc::new(MemFs::default()), SpoolConfig::default()).unwrap();
        let stats = ExportStats::default();
        let mut o = Outage {
            alerted: true,
            down_since: None,
            peak: 0,
        };
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let after = Duration::from_secs(600);
        let names = ("nas", "https://store.mesh:9701");
        let see = |o: &mut Outage, at: DateTime<Utc>| observe(o, &stats, &spool, after, names, at);
        // At start nothing was delivered yet: nothing to say.
        assert!(see(&mut o, t0).is_none());
        stats
            .failing_since
            .store(t0.timestamp() as u64, Ordering::Relaxed);
        assert!(see(&mut o, t0 + chrono::Duration::minutes(9)).is_none());
        spool.append(crate::spool::Kind::Logs, &[7; 3000]).unwrap();
        let a = see(&mut o, t0 + chrono::Duration::minutes(11)).unwrap();
        assert_eq!(a.labels["alertname"], "ObsStoreUnreachable");
        assert_eq!(a.labels["host_name"], "nas");
        assert_eq!((a.starts_at, a.ends_at), (t0, None));
        let d = &a.annotations["description"];
        assert!(d.contains("https://store.mesh:9701 for 11m0s"), "{d}");
        // Back: resolved, saying how long and how much was held.
        stats.failing_since.store(0, Ordering::Relaxed);
        stats
            .last_success
            .store(t0.timestamp() as u64 + 3600, Ordering::Relaxed);
        let back = t0 + chrono::Duration::minutes(61);
        let r = see(&mut o, back).unwrap();
        assert_eq!((r.starts_at, r.ends_at), (t0, Some(back)));
        let d = &r.annotations["description"];
        assert!(
            d.contains("unreachable for 1h1m") && d.contains("held up to 2.9 KiB"),
            "{d}"
        );
        assert!(see(&mut o, back).is_none(), "one resolution");
        // A short outage says nothing.
        stats
            .failing_since
            .store(back.timestamp() as u64, Ordering::Relaxed);
        assert!(see(&mut o, back + chrono::Duration::minutes(2)).is_none());
        stats.failing_since.store(0, Ordering::Relaxed);
        assert!(see(&mut o, back + chrono::Duration::minutes(3)).is_none());
    }

    #[test]
    fn the_receiver_must_be_named_when_there_are_several() {
        let r = |name: &str| obs_notify::ReceiverConfig {
            name: name.into(),
            url: Some("http://127.0.0.1:1/hook".into()),
            ..Default::default()
        };
        let mut cfg = Alerting {
            store_down_notify_after: Duration::from_secs(600),
            receiver: None,
            receivers: vec![r("a"), r("b")],
        };
        assert!(check(&cfg).unwrap_err().contains("say which"));
        cfg.receiver = Some("b".into());
        assert_eq!(check(&cfg), Ok(()));
        cfg.receiver = Some("c".into());
        assert!(check(&cfg).is_err());
    }
}
