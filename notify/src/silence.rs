//! Silences: matchers that mute alerts from `starts_at` to `ends_at`, kept in a JSON file
//! across restarts and shown in Alertmanager's v2 silence shape.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::LabelSet;
use crate::matcher::{all_match, Matcher, Op};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
    pub updated_at: DateTime<Utc>,
}

impl Silence {
    /// `pending`, `active` or `expired` at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        if now < self.starts_at {
            "pending"
        } else if now < self.ends_at {
            "active"
        } else {
            "expired"
        }
    }

    /// Alertmanager's API v2 `gettableSilence`.
    pub fn to_api(&self, now: DateTime<Utc>) -> serde_json::Value {
        let matchers: Vec<serde_json::Value> = self
            .matchers
            .iter()
            .map(|m| {
                serde_json::json!({
                    "name": m.name,
                    "value": m.value,
                    "isRegex": matches!(m.op, Op::Regex | Op::NotRegex),
                    "isEqual": matches!(m.op, Op::Equal | Op::Regex),
                })
            })
            .collect();
        serde_json::json!({
            "id": self.id,
            "status": {"state": self.state(now)},
            "updatedAt": self.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "comment": self.comment,
            "createdBy": self.created_by,
            "endsAt": self.ends_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "startsAt": self.starts_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "matchers": matchers,
        })
    }
}

/// The silences, saved to `path` on every change.
#[derive(Debug, Default)]
pub(crate) struct Silences {
    path: Option<PathBuf>,
    list: Vec<Silence>,
}

impl Silences {
    /// Loads the silences kept in `path` (none if it does not exist yet).
    pub(crate) fn open(path: &Path) -> Result<Silences, String> {
        let list = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(Silences {
            path: Some(path.to_path_buf()),
            list,
        })
    }

    pub(crate) fn silenced(&self, labels: &LabelSet, now: DateTime<Utc>) -> bool {
        self.list
            .iter()
            .any(|s| s.state(now) == "active" && all_match(&s.matchers, labels))
    }

    pub(crate) fn list(&self) -> &[Silence] {
        &self.list
    }

    /// Adds a silence (or replaces the one with its id); returns its id.
    pub(crate) fn add(&mut self, mut s: Silence) -> Result<String, String> {
        if s.matchers.is_empty() {
            return Err("a silence needs at least one matcher".into());
        }
        if s.ends_at <= s.starts_at {
            return Err("a silence must end after it starts".into());
        }
        if s.id.is_empty() {
            s.id = new_id();
        }
        let id = s.id.clone();
        self.list.retain(|o| o.id != id);
        self.list.push(s);
        self.save()?;
        Ok(id)
    }

    /// Ends a silence now; false if there is none with that id.
    pub(crate) fn expire(&mut self, id: &str, now: DateTime<Utc>) -> Result<bool, String> {
        let Some(s) = self.list.iter_mut().find(|s| s.id == id) else {
            return Ok(false);
        };
        s.ends_at = now.min(s.ends_at);
        s.starts_at = s.starts_at.min(s.ends_at);
        s.updated_at = now;
        self.save()?;
        Ok(true)
    }

    fn save(&self) -> Result<(), String> {
        let Some(path) = &self.path else { return Ok(()) };
        crate::queue::write_atomic(
            path,
            &serde_json::to_vec_pretty(&self.list).map_err(|e| e.to_string())?,
        )
    }
}

/// A random version-4 UUID, Alertmanager's silence id form.
fn new_id() -> String {
    let mut b = [0u8; 16];
    getrandom(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn getrandom(buf: &mut [u8]) {
    use rand::RngCore;
    rand::rng().fill_bytes(buf);
}
