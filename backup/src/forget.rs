//! `forget`: which snapshots a retention policy keeps, like restic's `forget --keep-*`.
//!
//! Snapshots are grouped by host and paths; within a group, newest first, each rule keeps
//! the newest snapshot of each of its last N periods (hour, day, ISO week, month, year, in
//! local time), `last N` keeps the N newest, and `within D` keeps everything younger than D
//! before the group's newest snapshot. A snapshot is kept when any rule keeps it; the
//! reasons are reported. `--tag`/`--host` restrict which snapshots are considered at all.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, Local, Utc};
use serde::Serialize;

use crate::config::KeepPolicy;
use crate::error::{Error, Result};
use crate::repo::{lock, Id, Repository};
use crate::snapshot::Snapshot;

#[derive(Debug, Clone, Default)]
pub struct ForgetOptions {
    pub policy: KeepPolicy,
    pub tags: Vec<String>,
    pub hosts: Vec<String>,
    pub dry_run: bool,
    pub retry_lock: Duration,
}

/// The verdict on one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub id: Id,
    pub time: DateTime<Utc>,
    pub host: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub keep: bool,
    pub reasons: Vec<String>,
}

impl KeepPolicy {
    pub fn is_empty(&self) -> bool {
        *self == KeepPolicy::default()
    }
}

type Bucket = fn(&DateTime<Local>) -> i64;

fn rules(policy: &KeepPolicy) -> Vec<(&'static str, u32, Bucket)> {
    let mut out: Vec<(&'static str, u32, Bucket)> = Vec::new();
    let mut add = |name, n: Option<u32>, f: Bucket| {
        if let Some(n) = n {
            out.push((name, n, f));
        }
    };
    add("last", policy.last, |_| i64::MIN); // every snapshot is its own period, see below
    add("hourly", policy.hourly, |t| {
        t.year() as i64 * 1_000_000 + t.ordinal() as i64 * 100 + chrono::Timelike::hour(t) as i64
    });
    add("daily", policy.daily, |t| {
        t.year() as i64 * 1000 + t.ordinal() as i64
    });
    add("weekly", policy.weekly, |t| {
        let w = t.iso_week();
        w.year() as i64 * 100 + w.week() as i64
    });
    add("monthly", policy.monthly, |t| {
        t.year() as i64 * 100 + t.month() as i64
    });
    add("yearly", policy.yearly, |t| t.year() as i64);
    out
}

/// Applies `policy` to `snapshots` (any order); returns decisions newest first.
pub fn apply_policy(snapshots: &[(Id, Snapshot)], policy: &KeepPolicy) -> Vec<Decision> {
    type Group<'a> = Vec<&'a (Id, Snapshot)>;
    let mut groups: BTreeMap<(String, Vec<String>), Group> = BTreeMap::new();
    for s in snapshots {
        groups
            .entry((s.1.host.clone(), s.1.paths.clone()))
            .or_default()
            .push(s);
    }
    let mut out = Vec::new();
    for (_, mut group) in groups {
        group.sort_by(|a, b| b.1.time.cmp(&a.1.time).then(b.0.cmp(&a.0)));
        let newest = group[0].1.time;
        let mut rules: Vec<(&str, u32, Bucket, Option<i64>)> = rules(policy)
            .into_iter()
            .map(|(n, c, f)| (n, c, f, None))
            .collect();
        for (i, (id, snap)) in group.iter().map(|s| (&s.0, &s.1)).enumerate() {
            let local = snap.time.with_timezone(&Local);
            let mut reasons = Vec::new();
            for (name, left, bucket, last) in rules.iter_mut() {
                let b = if *name == "last" { i as i64 } else { bucket(&local) };
                if *left > 0 && *last != Some(b) {
                    *left -= 1;
                    *last = Some(b);
                    reasons.push(name.to_string());
                }
            }
            if let Some(within) = policy.within {
                let age = newest
                    .signed_duration_since(snap.time)
                    .to_std()
                    .unwrap_or_default();
                if age <= within {
                    reasons.push(format!("within {}", humantime::format_duration(within)));
                }
            }
            out.push(Decision {
                id: *id,
                time: snap.time,
                host: snap.host.clone(),
                paths: snap.paths.clone(),
                tags: snap.tags.clone(),
                keep: !reasons.is_empty(),
                reasons,
            });
        }
    }
    out.sort_by_key(|d| std::cmp::Reverse(d.time));
    out
}

/// Removes the snapshots the policy does not keep (unless `dry_run`); returns the decisions.
pub async fn forget(repo: Arc<Repository>, opts: ForgetOptions) -> Result<Vec<Decision>> {
    if opts.policy.is_empty() {
        return Err(Error::Usage(
            "no retention policy given: pass at least one --keep-* option (nothing was removed)".to_string(),
        ));
    }
    let guard = lock::lock(&repo, true, "backup forget", opts.retry_lock).await?;
    let result = async {
        let snapshots: Vec<(Id, Snapshot)> = repo
            .snapshots()
            .await?
            .into_iter()
            .filter(|(_, s)| opts.hosts.is_empty() || opts.hosts.contains(&s.host))
            .filter(|(_, s)| opts.tags.is_empty() || opts.tags.iter().any(|t| s.tags.contains(t)))
            .collect();
        let decisions = apply_policy(&snapshots, &opts.policy);
        if !opts.dry_run {
            for d in decisions.iter().filter(|d| !d.keep) {
                repo.delete_snapshot(&d.id).await?;
            }
        }
        Ok(decisions)
    }
    .await;
    guard.release().await?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Summary;
    use chrono::TimeZone;

    fn snap(time: DateTime<Utc>, host: &str) -> (Id, Snapshot) {
        let s = Snapshot {
            time,
            host: host.to_string(),
            username: String::new(),
            paths: vec!["/etc".to_string()],
            tags: vec![],
            tree: Id::default(),
            parent: None,
            program_version: String::new(),
            summary: Summary::default(),
        };
        (Id::of_bytes(time.to_rfc3339().as_bytes()), s)
    }

    fn kept(decisions: &[Decision]) -> Vec<String> {
        let mut k: Vec<String> = decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.time.with_timezone(&Local).format("%m-%d %H").to_string())
            .collect();
        k.sort();
        k
    }

    /// Four snapshots a day (00, 06, 12, 18 local) for 40 days.
    fn month() -> Vec<(Id, Snapshot)> {
        let start = Local.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        (0..160)
            .map(|i| snap((start + chrono::Duration::hours(6 * i)).with_timezone(&Utc), "a"))
            .collect()
    }

    #[test]
    fn daily_keeps_the_newest_of_each_of_the_last_days() {
        let d = apply_policy(
            &month(),
            &KeepPolicy {
                daily: Some(3),
                ..Default::default()
            },
        );
        assert_eq!(kept(&d), ["02-07 18", "02-08 18", "02-09 18"]);
        let reasons: Vec<_> = d.iter().filter(|d| d.keep).map(|d| d.reasons.clone()).collect();
        assert!(reasons.iter().all(|r| r == &["daily"]));
    }

    #[test]
    fn rules_combine_and_last_counts_every_snapshot() {
        let policy = KeepPolicy {
            last: Some(2),
            weekly: Some(2),
            monthly: Some(2),
            ..Default::default()
        };
        let d = apply_policy(&month(), &policy);
        // last 2: Feb 9 18h and 12h; weekly: Sunday Feb 8 ends ISO week 6, so Feb 9 18h (week 7)
        // and Feb 8 18h (week 6); monthly: Feb 9 18h and Jan 31 18h.
        assert_eq!(kept(&d), ["01-31 18", "02-08 18", "02-09 12", "02-09 18"]);
        let newest = d.iter().find(|d| d.keep).unwrap();
        assert_eq!(newest.reasons, ["last", "weekly", "monthly"]);
    }

    #[test]
    fn within_is_relative_to_the_newest_snapshot_and_groups_are_separate() {
        let mut snaps = month();
        let old = Local
            .with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        snaps.push(snap(old, "b"));
        let d = apply_policy(
            &snaps,
            &KeepPolicy {
                within: Some(Duration::from_secs(86400)),
                ..Default::default()
            },
        );
        assert_eq!(
            kept(&d),
            ["02-08 18", "02-09 00", "02-09 06", "02-09 12", "02-09 18", "06-01 12"]
        );
    }
}
