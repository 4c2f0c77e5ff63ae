//! From alerts to notifications, as Alertmanager's dispatcher does it, at explicit times:
//!
//! ```text
//! insert(alert, now) -> every matching route -> the aggregation group of its group labels
//! due(now): each group whose time has come (group_wait after it was made, then every
//!   group_interval) -> drop inhibited and silenced alerts -> notify if the notification
//!   log says the receiver has not seen this state (new firing alerts; resolved ones if
//!   send_resolved; everything again after repeat_interval) -> a Notification
//! ```
//!
//! Resolved alerts leave their group once a notification carried them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::{label_text, Alert, Fingerprint, LabelSet};
use crate::inhibit::Inhibitor;
use crate::route::Route;
use crate::silence::Silences;

/// One message for one receiver: a group's alerts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub receiver: String,
    /// Alertmanager's group key: `<route key>:<group labels>`.
    pub group_key: String,
    pub group_labels: LabelSet,
    /// Firing and (if the route sends them) resolved alerts, firing first.
    pub alerts: Vec<Alert>,
    /// When the notification was made: firing/resolved is judged at this time.
    pub at: DateTime<Utc>,
}

impl Notification {
    /// `firing` while any alert fires, else `resolved`.
    pub fn status(&self) -> &'static str {
        if self.alerts.iter().any(|a| !a.resolved(self.at)) {
            "firing"
        } else {
            "resolved"
        }
    }

    /// Labels every alert shares.
    pub fn common_labels(&self) -> LabelSet {
        common(self.alerts.iter().map(|a| &a.labels))
    }

    pub fn common_annotations(&self) -> LabelSet {
        common(self.alerts.iter().map(|a| &a.annotations))
    }
}

fn common<'a>(mut sets: impl Iterator<Item = &'a LabelSet>) -> LabelSet {
    let Some(first) = sets.next() else {
        return LabelSet::new();
    };
    let mut out = first.clone();
    for s in sets {
        out.retain(|k, v| s.get(k) == Some(v));
    }
    out
}

/// What a receiver was last told about a group (Alertmanager's notification log).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LogEntry {
    pub firing: BTreeSet<Fingerprint>,
    pub resolved: BTreeSet<Fingerprint>,
    pub at: Option<DateTime<Utc>>,
}

struct Group {
    route: Route,
    labels: LabelSet,
    alerts: BTreeMap<Fingerprint, Alert>,
    next_flush: DateTime<Utc>,
    flushed: bool,
}

/// Aggregation groups and the notification log.
pub(crate) struct Dispatcher {
    root: Route,
    groups: BTreeMap<(String, String), Group>,
    /// (receiver, group key) -> what it was told.
    pub log: BTreeMap<String, LogEntry>,
}

fn delay(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Dispatcher {
    pub(crate) fn new(root: Route) -> Dispatcher {
        Dispatcher {
            root,
            groups: BTreeMap::new(),
            log: BTreeMap::new(),
        }
    }

    /// Adds or refreshes an alert in every group its routes put it in.
    pub(crate) fn insert(&mut self, alert: Alert, now: DateTime<Utc>) {
        let fp = alert.fingerprint();
        for route in self.root.matching(&alert.labels) {
            let labels = route.group_labels(&alert.labels);
            let key = (route.key.clone(), label_text(&labels));
            let g = self.groups.entry(key).or_insert_with(|| Group {
                route: route.clone(),
                labels,
                alerts: BTreeMap::new(),
                next_flush: now + delay(route.group_wait),
                flushed: false,
            });
            // An alert older than group_wait does not wait (Alertmanager's rule).
            if !g.flushed && alert.starts_at + delay(g.route.group_wait) < now {
                g.next_flush = g.next_flush.min(now);
            }
            g.alerts.insert(fp, alert.clone());
        }
    }

    /// The notifications due at `now`.
    pub(crate) fn due(
        &mut self,
        now: DateTime<Utc>,
        inhibitor: &Inhibitor,
        silences: &Silences,
    ) -> Vec<Notification> {
        let firing: Vec<Alert> = self
            .groups
            .values()
            .flat_map(|g| g.alerts.values())
            .filter(|a| !a.resolved(now))
            .cloned()
            .collect();
        let mut out = Vec::new();
        let mut empty = Vec::new();
        for (key, g) in self.groups.iter_mut() {
            if g.next_flush > now {
                continue;
            }
            g.next_flush = now + delay(g.route.group_interval);
            g.flushed = true;
            let group_key = format!("{}:{}", key.0, key.1);
            let shown: Vec<&Alert> = g
                .alerts
                .values()
                .filter(|a| !inhibitor.inhibited(a, &firing, now) && !silences.silenced(&a.labels, now))
                .collect();
            let fire: BTreeSet<Fingerprint> = shown
                .iter()
                .filter(|a| !a.resolved(now))
                .map(|a| a.fingerprint())
                .collect();
            let resolved: BTreeSet<Fingerprint> = shown
                .iter()
                .filter(|a| a.resolved(now))
                .map(|a| a.fingerprint())
                .collect();
            let log_key = format!("{}\u{0}{group_key}", g.route.receiver);
            let entry = self.log.get(&log_key);
            if needs_update(
                entry,
                &fire,
                &resolved,
                g.route.send_resolved,
                g.route.repeat_interval,
                now,
            ) {
                let mut alerts: Vec<Alert> = shown
                    .iter()
                    .filter(|a| g.route.send_resolved || !a.resolved(now))
                    .map(|a| (*a).clone())
                    .collect();
                alerts.sort_by_key(|a| (a.resolved(now), a.starts_at));
                // Only resolved alerts for a route that does not send them: nothing to say,
                // but the log learns that the receiver's firing alerts are over.
                if !alerts.is_empty() {
                    out.push(Notification {
                        receiver: g.route.receiver.clone(),
                        group_key,
                        group_labels: g.labels.clone(),
                        alerts,
                        at: now,
                    });
                }
                self.log.insert(
                    log_key,
                    LogEntry {
                        firing: fire,
                        resolved,
                        at: Some(now),
                    },
                );
            }
            // Resolved alerts have been told (or need not be): they leave the group.
            g.alerts.retain(|_, a| !a.resolved(now));
            if g.alerts.is_empty() {
                empty.push(key.clone());
            }
        }
        for k in empty {
            self.groups.remove(&k);
        }
        out
    }
}

/// Alertmanager's `DedupStage.needsUpdate`.
fn needs_update(
    entry: Option<&LogEntry>,
    firing: &BTreeSet<Fingerprint>,
    resolved: &BTreeSet<Fingerprint>,
    send_resolved: bool,
    repeat: std::time::Duration,
    now: DateTime<Utc>,
) -> bool {
    let Some(e) = entry else { return !firing.is_empty() };
    if !firing.is_subset(&e.firing) {
        return true;
    }
    if firing.is_empty() {
        return !e.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&e.resolved) {
        return true;
    }
    e.at.is_none_or(|at| at + delay(repeat) <= now)
}

#[cfg(test)]
mod tests;
