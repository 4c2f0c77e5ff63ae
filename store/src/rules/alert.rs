//! One alerting rule's alerts and their life, as Prometheus runs it: a result element makes
//! a pending alert, which fires once it has been active for the rule's `for`; an alert whose
//! element is gone is resolved (kept, inactive, for 15 minutes so notifiers see it
//! resolve), unless `keep_firing_for` holds it firing a while longer.

use std::collections::HashMap;

use crate::tsdb::Labels;

/// How long a resolved alert is kept (and reported) after it stopped firing.
pub(crate) const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum State {
    Inactive,
    Pending,
    Firing,
}

impl State {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Inactive => "inactive",
            State::Pending => "pending",
            State::Firing => "firing",
        }
    }
}

/// One alert of a rule. Times are ms since the epoch.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Alert {
    pub(crate) labels: Labels,
    pub(crate) annotations: Vec<(String, String)>,
    pub(crate) state: State,
    pub(crate) value: f64,
    pub(crate) active_at: i64,
    pub(crate) fired_at: Option<i64>,
    pub(crate) resolved_at: Option<i64>,
    pub(crate) keep_firing_since: Option<i64>,
}

/// A result element after templating: the alert's labels, annotations and value.
pub(crate) struct Candidate {
    pub(crate) labels: Labels,
    pub(crate) annotations: Vec<(String, String)>,
    pub(crate) value: f64,
}

/// Moves a rule's alerts to evaluation time `ts` given this evaluation's candidates;
/// returns how many alerts are pending or firing.
pub(crate) fn step(
    active: &mut HashMap<Labels, Alert>,
    candidates: Vec<Candidate>,
    ts: i64,
    hold_ms: i64,
    keep_firing_ms: i64,
) -> usize {
    let mut seen = std::collections::HashSet::with_capacity(candidates.len());
    for c in candidates {
        seen.insert(c.labels.clone());
        match active.get_mut(&c.labels) {
            Some(a) if a.state != State::Inactive => {
                a.value = c.value;
                a.annotations = c.annotations;
            }
            _ => {
                active.insert(
                    c.labels.clone(),
                    Alert {
                        labels: c.labels,
                        annotations: c.annotations,
                        state: State::Pending,
                        value: c.value,
                        active_at: ts,
                        fired_at: None,
                        resolved_at: None,
                        keep_firing_since: None,
                    },
                );
            }
        }
    }
    let mut live = 0;
    active.retain(|labels, a| {
        if seen.contains(labels) {
            a.keep_firing_since = None;
        } else {
            let mut keep_firing = false;
            if a.state == State::Firing && keep_firing_ms > 0 {
                let since = *a.keep_firing_since.get_or_insert(ts);
                keep_firing = ts - since < keep_firing_ms;
            }
            let drop =
                a.state == State::Pending || a.resolved_at.is_some_and(|r| ts - r > RESOLVED_RETENTION_MS);
            if a.state != State::Inactive && !keep_firing {
                a.state = State::Inactive;
                a.resolved_at = Some(ts);
            }
            if drop {
                return false;
            }
            if !keep_firing {
                return true;
            }
        }
        live += 1;
        if a.state == State::Pending && ts - a.active_at >= hold_ms {
            a.state = State::Firing;
            a.fired_at = Some(ts);
        }
        true
    });
    live
}

/// Where a restarted rule's pending alert stands, from its last `ALERTS_FOR_STATE` sample
/// (`down_at`: that sample's time, `was_active_at`: its value in seconds): Prometheus's
/// `RestoreForState`. Returns the restored `active_at` (ms), or `None` to leave it.
pub(crate) fn restored_active_at(
    now: i64,
    hold_ms: i64,
    grace_ms: i64,
    down_at: i64,
    was_active_at_s: f64,
) -> Option<i64> {
    if crate::tsdb::is_stale(was_active_at_s) {
        return None;
    }
    let down_at = down_at.div_euclid(1000) * 1000;
    let active_at = (was_active_at_s as i64) * 1000;
    let remaining = hold_ms - (down_at - active_at);
    Some(if remaining <= 0 {
        // It was firing when the store went down: it fires again at once if still true.
        active_at
    } else if remaining < grace_ms {
        now + grace_ms - hold_ms
    } else {
        active_at + (now - down_at)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(i: &str, v: f64) -> Candidate {
        Candidate {
            labels: Labels::from_pairs([("alertname", "A"), ("i", i)]),
            annotations: vec![],
            value: v,
        }
    }

    fn states(active: &HashMap<Labels, Alert>) -> Vec<(String, State)> {
        let mut v: Vec<_> = active
            .values()
            .map(|a| (a.labels.get("i").unwrap().to_string(), a.state))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn pending_fires_after_for_and_resolves() {
        let mut a = HashMap::new();
        assert_eq!(step(&mut a, vec![cand("1", 1.0)], 0, 120_000, 0), 1);
        assert_eq!(states(&a), [("1".into(), State::Pending)]);
        step(&mut a, vec![cand("1", 2.0)], 60_000, 120_000, 0);
        assert_eq!(states(&a), [("1".into(), State::Pending)]);
        step(&mut a, vec![cand("1", 3.0)], 120_000, 120_000, 0);
        assert_eq!(states(&a), [("1".into(), State::Firing)]);
        let al = &a[&cand("1", 0.0).labels];
        assert_eq!((al.active_at, al.fired_at, al.value), (0, Some(120_000), 3.0));
        // Gone: resolved and kept for 15 minutes, then dropped.
        assert_eq!(step(&mut a, vec![], 180_000, 120_000, 0), 0);
        assert_eq!(states(&a), [("1".into(), State::Inactive)]);
        step(&mut a, vec![], 180_000 + RESOLVED_RETENTION_MS, 120_000, 0);
        assert_eq!(a.len(), 1);
        step(&mut a, vec![], 180_001 + RESOLVED_RETENTION_MS, 120_000, 0);
        assert!(a.is_empty());
    }

    #[test]
    fn a_pending_alert_that_goes_away_is_dropped_and_a_resolved_one_starts_over() {
        let mut a = HashMap::new();
        step(&mut a, vec![cand("1", 1.0)], 0, 60_000, 0);
        step(&mut a, vec![], 30_000, 60_000, 0);
        assert!(a.is_empty());
        // for: 0 fires at once; back after resolving, it is a new alert.
        step(&mut a, vec![cand("2", 1.0)], 0, 0, 0);
        assert_eq!(states(&a), [("2".into(), State::Firing)]);
        step(&mut a, vec![], 10_000, 0, 0);
        step(&mut a, vec![cand("2", 1.0)], 20_000, 60_000, 0);
        assert_eq!(states(&a), [("2".into(), State::Pending)]);
        assert_eq!(a[&cand("2", 0.0).labels].active_at, 20_000);
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert() {
        let mut a = HashMap::new();
        step(&mut a, vec![cand("1", 1.0)], 0, 0, 60_000);
        assert_eq!(step(&mut a, vec![], 30_000, 0, 60_000), 1);
        assert_eq!(states(&a), [("1".into(), State::Firing)]);
        // Held from the first evaluation it was missing in (30 s) for 60 s.
        step(&mut a, vec![], 60_000, 0, 60_000);
        assert_eq!(states(&a), [("1".into(), State::Firing)]);
        step(&mut a, vec![], 90_000, 0, 60_000);
        assert_eq!(states(&a), [("1".into(), State::Inactive)]);
    }

    #[test]
    fn restore_follows_prometheus() {
        let min = 60_000;
        // Pending 5 of 30 minutes when it went down at 10:05; back at 10:20: the 25 left
        // start counting from now.
        let at = restored_active_at(20 * min, 30 * min, 10 * min, 5 * min, 0.0).unwrap();
        assert_eq!(at, 15 * min);
        // Only 2 minutes were left: it gets the 10-minute grace period.
        let at = restored_active_at(40 * min, 30 * min, 10 * min, 28 * min, 0.0).unwrap();
        assert_eq!(at, 40 * min + 10 * min - 30 * min);
        // It had fired: it keeps its original activeAt.
        assert_eq!(
            restored_active_at(40 * min, 30 * min, 10 * min, 35 * min, 60.0),
            Some(min)
        );
        assert_eq!(restored_active_at(0, 1, 1, 0, crate::tsdb::stale_nan()), None);
    }
}
