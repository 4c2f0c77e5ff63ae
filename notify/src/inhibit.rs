//! Inhibition: a firing alert that matches a rule's `source_matchers` mutes the alerts that
//! match its `target_matchers` and have the same values for the `equal` labels (so a host
//! that is down does not also page for its disks). An alert never inhibits itself.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::alert::Alert;
use crate::matcher::{all_match, Matcher};

/// `[[store.alerting.inhibit]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRule {
    pub source_matchers: Vec<Matcher>,
    pub target_matchers: Vec<Matcher>,
    #[serde(default)]
    pub equal: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Inhibitor {
    pub rules: Vec<InhibitRule>,
}

impl Inhibitor {
    /// Whether `target` is muted by one of the `firing` alerts at `now`.
    pub(crate) fn inhibited(&self, target: &Alert, firing: &[Alert], now: DateTime<Utc>) -> bool {
        self.rules.iter().any(|r| {
            all_match(&r.target_matchers, &target.labels)
                && firing.iter().any(|s| {
                    !s.resolved(now)
                        && s.labels != target.labels
                        && all_match(&r.source_matchers, &s.labels)
                        && r.equal.iter().all(|l| s.labels.get(l) == target.labels.get(l))
                })
        })
    }
}
