//! Snapshot records (`snapshots/<id>`, sealed JSON) and how users name them.

use std::path::{Component, Path};

use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::repo::{Id, Repository};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub time: DateTime<Utc>,
    pub host: String,
    pub username: String,
    /// Absolute paths given to `create` (plus `/<name>` for `--stdin-from`).
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub tree: Id,
    pub parent: Option<Id>,
    pub program_version: String,
    pub summary: Summary,
}

/// What a backup did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub dirs: u64,
    pub total_files: u64,
    pub total_bytes: u64,
    /// Content bytes not already in the repository.
    pub data_added: u64,
    /// What those bytes took in packs (compressed, encrypted).
    pub data_added_packed: u64,
    pub data_blobs: u64,
    pub tree_blobs: u64,
    pub duration_secs: f64,
    /// Paths that could not be read (the snapshot skips them).
    pub errors: Vec<String>,
}

impl Repository {
    /// Every snapshot, oldest first.
    pub async fn snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        let mut out = Vec::new();
        for (id, _) in self.list_ids("snapshots").await? {
            match self.load_object::<Snapshot>("snapshots", &id).await {
                Ok(s) => out.push((id, s)),
                // Removed by a concurrent forget between list and read.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// `latest`, a full id, or a unique prefix of one.
    pub async fn find_snapshot(&self, name: &str) -> Result<(Id, Snapshot)> {
        let all = self.snapshots().await?;
        if name == "latest" {
            return all
                .into_iter()
                .last()
                .ok_or_else(|| Error::Usage(format!("repository {} has no snapshots yet", self.url())));
        }
        let matching: Vec<_> = all
            .into_iter()
            .filter(|(id, _)| id.to_string().starts_with(&name.to_ascii_lowercase()))
            .collect();
        match matching.len() {
            1 => Ok(matching.into_iter().next().expect("one")),
            0 => Err(Error::Usage(format!(
                "no snapshot {name:?} in {}; `obs backup snapshots` lists them",
                self.url()
            ))),
            n => Err(Error::Usage(format!(
                "{name:?} matches {n} snapshots; give more digits"
            ))),
        }
    }

    pub async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<Id> {
        self.save_object("snapshots", snapshot).await
    }

    pub async fn delete_snapshot(&self, id: &Id) -> Result<()> {
        self.delete(&ObjectPath::from(format!("snapshots/{id}"))).await
    }
}

/// The path's components as byte strings (root and `.` dropped).
pub fn components(path: &Path) -> Vec<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    path.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.as_bytes().to_vec()),
            _ => None,
        })
        .collect()
}
