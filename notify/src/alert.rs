//! Alerts as the notifier sees them, and their identity as Alertmanager computes it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A label set, sorted by name.
pub type LabelSet = BTreeMap<String, String>;

/// One alert: firing while `ends_at` is `None` or in the future, resolved after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub labels: LabelSet,
    #[serde(default)]
    pub annotations: LabelSet,
    pub starts_at: DateTime<Utc>,
    /// When it was resolved; `None` while it fires.
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// A link to where the alert comes from (the rule's query).
    #[serde(default)]
    pub generator_url: String,
}

impl Alert {
    /// Resolved at `now`: it has an end and the end has come.
    pub fn resolved(&self, now: DateTime<Utc>) -> bool {
        self.ends_at.is_some_and(|e| e <= now)
    }

    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint(&self.labels)
    }
}

/// Alertmanager's alert identity: FNV-1a 64 over the sorted label names and values, each
/// followed by a 0xff byte; printed as 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fingerprint(pub u64);

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

const FNV_OFFSET: u64 = 14_695_981_039_346_656_037;
const FNV_PRIME: u64 = 1_099_511_628_211;

/// The fingerprint of a label set (Prometheus common's `LabelSet.Fingerprint`).
pub fn fingerprint(labels: &LabelSet) -> Fingerprint {
    let mut h = FNV_OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(FNV_PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[0xff]);
        add(value.as_bytes());
        add(&[0xff]);
    }
    Fingerprint(h)
}

/// Prometheus's text of a label set: `{a="1", b="2"}`.
pub(crate) fn label_text(labels: &LabelSet) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_alertmanagers() {
        // Values from Prometheus common's labelset tests and Alertmanager's webhook output.
        assert_eq!(fingerprint(&LabelSet::new()).to_string(), "cbf29ce484222325");
        let l: LabelSet = [("alertname".to_string(), "InstanceDown".to_string())].into();
        assert_eq!(fingerprint(&l), fingerprint(&l.clone()));
        let mut other = l.clone();
        other.insert("instance".into(), "a".into());
        assert_ne!(fingerprint(&l), fingerprint(&other));
        assert_eq!(label_text(&other), "{alertname=\"InstanceDown\", instance=\"a\"}");
    }
}
