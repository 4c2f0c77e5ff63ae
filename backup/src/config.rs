//! The `[backup]` config section: repositories and jobs.
//!
//! Field values are validated while parsing (cron schedules, durations, sample sizes), so a
//! bad value is reported with its line; [`BackupConfig::validate`] then checks references
//! between entries and reports the byte span of the offending value.

use std::collections::HashSet;
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_spanned::Spanned;

/// `[backup]` as written in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    pub repositories: Vec<RepositoryConfig>,
    pub jobs: Vec<JobConfig>,
}

/// One `[[backup.repositories]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    pub name: Spanned<String>,
    /// `s3://bucket/prefix` or a local path.
    pub url: String,
    pub password_file: Option<PathBuf>,
}

/// One `[[backup.jobs]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    pub name: Spanned<String>,
    /// Name of a `[[backup.repositories]]` entry.
    pub repository: Spanned<String>,
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub stdin_from: Vec<StdinSource>,
    pub schedule: Schedule,
    /// Time zone of the schedules: "local" (default), "UTC" or an IANA name.
    #[serde(default)]
    pub timezone: TimeZone,
    /// Shell commands run before the backup; one failing fails the run.
    #[serde(default)]
    pub before: Vec<String>,
    /// Shell commands run after the backup, whatever its result (`$OBS_BACKUP_RESULT` is
    /// `success` or `failure`).
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub keep: KeepPolicy,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Store URL that receives `obs_backup_*` metrics and logs.
    pub report_to: Option<String>,
    /// Back up this store's data (a store on this machine, e.g. "http://127.0.0.1:9700"):
    /// the job asks it for a consistent snapshot of its data dir and backs that up.
    pub store_snapshot: Option<String>,
    pub drill: Option<DrillConfig>,
}

/// A command whose stdout is backed up as a file (e.g. `pg_dump app` → `app.sql`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinSource {
    pub command: String,
    pub filename: String,
}

/// Retention, like restic's `forget --keep-*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepPolicy {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
    #[serde(deserialize_with = "deserialize_opt_duration")]
    pub within: Option<Duration>,
}

/// `[backup.jobs.drill]`: a scheduled test restore.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillConfig {
    pub schedule: Schedule,
    #[serde(default)]
    pub sample: Sample,
    /// Restored whole in every drill, whatever the sample (absolute paths as backed up).
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Run against the restored tree; `{restore}` is replaced by its root.
    pub verify: Option<String>,
}

/// The zone cron schedules are read in.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum TimeZone {
    #[default]
    Local,
    Utc,
    Named(chrono_tz::Tz),
}

impl FromStr for TimeZone {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "local" | "Local" => Ok(TimeZone::Local),
            "UTC" | "utc" => Ok(TimeZone::Utc),
            name => name.parse().map(TimeZone::Named).map_err(|_| {
                format!("unknown time zone {name:?}: use \"local\", \"UTC\" or an IANA name like \"Europe/Berlin\"")
            }),
        }
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Schedule {
    /// The first fire time strictly after `after`, in `tz`.
    pub fn next_after(
        &self,
        tz: TimeZone,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        use chrono::Utc;
        match tz {
            TimeZone::Utc => self.cron.after(&after).next(),
            TimeZone::Local => self
                .cron
                .after(&after.with_timezone(&chrono::Local))
                .next()
                .map(|t| t.with_timezone(&Utc)),
            TimeZone::Named(z) => self
                .cron
                .after(&after.with_timezone(&z))
                .next()
                .map(|t| t.with_timezone(&Utc)),
        }
    }
}

/// A cron schedule with seconds (`sec min hour day-of-month month day-of-week [year]`).
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expr: String,
    pub cron: cron::Schedule,
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(expr: &str) -> Result<Self, String> {
        cron::Schedule::from_str(expr)
            .map(|cron| Schedule {
                expr: expr.to_string(),
                cron,
            })
            .map_err(|e| {
                // cron's message repeats the expression with a caret; keep its last line.
                let e = e.to_string();
                let e = e
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or_default()
                    .to_string();
                format!(
                    "invalid cron schedule {expr:?}: {e} (six fields with seconds: \
                     \"sec min hour day month weekday\", e.g. \"0 0 3 * * *\")"
                )
            })
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Which share of the files a drill restores: a fraction in (0, 1], written "10%".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample(pub f64);

impl Default for Sample {
    fn default() -> Self {
        Sample(1.0)
    }
}

impl FromStr for Sample {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid sample {s:?}: write a percentage from 0% (exclusive) to 100%, e.g. \"10%\"");
        let pct: f64 = s
            .strip_suffix('%')
            .ok_or_else(bad)?
            .trim()
            .parse()
            .map_err(|_| bad())?;
        if pct > 0.0 && pct <= 100.0 {
            Ok(Sample(pct / 100.0))
        } else {
            Err(bad())
        }
    }
}

impl<'de> Deserialize<'de> for Sample {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

fn deserialize_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e} (try \"30d\")")))
}

/// A problem found by [`BackupConfig::validate`]: which field, where in the file, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `backup.jobs[0].repository`.
    pub field: String,
    /// Byte range of the value in the config text.
    pub span: Range<usize>,
    pub message: String,
}

impl BackupConfig {
    /// Checks what parsing cannot: unique names and that every job's repository exists.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut repos = HashSet::new();
        for (i, repo) in self.repositories.iter().enumerate() {
            if !repos.insert(repo.name.get_ref().as_str()) {
                return Err(ConfigError {
                    field: format!("backup.repositories[{i}].name"),
                    span: repo.name.span(),
                    message: format!("repository name {:?} is used twice", repo.name.get_ref()),
                });
            }
        }
        let mut jobs = HashSet::new();
        for (i, job) in self.jobs.iter().enumerate() {
            if !jobs.insert(job.name.get_ref().as_str()) {
                return Err(ConfigError {
                    field: format!("backup.jobs[{i}].name"),
                    span: job.name.span(),
                    message: format!("job name {:?} is used twice", job.name.get_ref()),
                });
            }
            if !repos.contains(job.repository.get_ref().as_str()) {
                let known: Vec<_> = self
                    .repositories
                    .iter()
                    .map(|r| r.name.get_ref().as_str())
                    .collect();
                return Err(ConfigError {
                    field: format!("backup.jobs[{i}].repository"),
                    span: job.repository.span(),
                    message: format!(
                        "no repository named {:?} (configured: {}); add a [[backup.repositories]] entry",
                        job.repository.get_ref(),
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                });
            }
            if job.paths.is_empty() && job.stdin_from.is_empty() && job.store_snapshot.is_none() {
                return Err(ConfigError {
                    field: format!("backup.jobs[{i}]"),
                    span: job.name.span(),
                    message: "the job backs up nothing: set paths, stdin_from or store_snapshot".to_string(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[repositories]]
name = "offsite"
url = "s3://backups/fleet"

[[jobs]]
name = "configs"
repository = "offsite"
paths = ["/etc"]
schedule = "0 0 3 * * *"
keep = { last = 3, daily = 7, within = "2d" }
[jobs.drill]
schedule = "0 30 4 * * Sun"
sample = "10%"
"#;

    #[test]
    fn a_full_job_parses() {
        let cfg: BackupConfig = toml::from_str(GOOD).unwrap();
        cfg.validate().unwrap();
        let job = &cfg.jobs[0];
        assert_eq!(job.keep.last, Some(3));
        assert_eq!(job.keep.within, Some(Duration::from_secs(2 * 86400)));
        let drill = job.drill.as_ref().unwrap();
        assert_eq!(drill.sample, Sample(0.1));
        assert_eq!(drill.schedule.expr, "0 30 4 * * Sun");
    }

    #[test]
    fn bad_cron_is_reported_with_a_hint() {
        let text = GOOD.replace("0 0 3 * * *", "every night");
        let err = toml::from_str::<BackupConfig>(&text).unwrap_err().to_string();
        assert!(err.contains("invalid cron schedule \"every night\""), "{err}");
        assert!(err.contains("line 10"), "{err}");
        assert!(
            err.contains("'Seconds' field does not support using names"),
            "{err}"
        );
    }

    #[test]
    fn samples_must_be_percentages_in_range() {
        assert_eq!("100%".parse::<Sample>(), Ok(Sample(1.0)));
        assert!("0%".parse::<Sample>().is_err());
        assert!("150%".parse::<Sample>().is_err());
        assert!("0.1".parse::<Sample>().is_err());
    }

    #[test]
    fn unknown_repository_names_the_field_and_its_place() {
        let text = GOOD.replace("repository = \"offsite\"", "repository = \"ofsite\"");
        let cfg: BackupConfig = toml::from_str(&text).unwrap();
        let err = cfg.validate().unwrap_err();
        assert_eq!(err.field, "backup.jobs[0].repository");
        assert_eq!(&text[err.span.clone()], "\"ofsite\"");
        assert!(err.message.contains("configured: offsite"), "{}", err.message);
    }

    #[test]
    fn duplicate_job_names_are_refused() {
        let job = GOOD
            .split("[[jobs]]")
            .nth(1)
            .unwrap()
            .split("[jobs.drill]")
            .next()
            .unwrap();
        let text = format!("{GOOD}\n[[jobs]]{job}");
        let cfg: BackupConfig = toml::from_str(&text).unwrap();
        let err = cfg.validate().unwrap_err();
        assert_eq!(err.field, "backup.jobs[1].name");
    }
}
