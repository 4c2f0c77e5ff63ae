//! Which file is which, and where to resume it: the decisions the tailer makes from what it
//! saved, kept free of I/O so they can be tested alone.
//!
//! A file is known by its *fingerprint* (a hash of its first line, up to
//! [`FINGERPRINT_BYTES`]; a file without a complete first line is not read yet), its
//! device and its inode. A saved position also keeps the hash of the (up to) 256 bytes
//! before it, its *tail*. When a file is found (at start, or new under a glob), [`resume`]
//! picks where to start:
//!
//! - every saved position with the file's fingerprint is a candidate, whatever its inode:
//!   the file itself before a restart, the original of the copy that copytruncate leaves,
//!   the plain file a gzip'd copy was made from;
//! - a candidate counts only if the file is at least that long and the bytes before the
//!   position hash to the saved tail: a new file that merely starts with the same line (a
//!   banner) is not taken for an old one;
//! - of those, the furthest position wins (it covers every line the others cover); none:
//!   the file is new and is read from its start.
//!
//! Positions are saved only with a known fingerprint, never a placeholder: a file
//! truncated to nothing (copytruncate) is fingerprinted again from its first new line
//! before its position is saved, so a restart recognises it (issue 21: such a file was read
//! again from its start after a restart, 5,000 lines twice).
//!
//! Saved positions are kept while their file is tailed or its path exists, and for
//! [`GONE_GRACE`] after that (the gzip'd copy logrotate makes later); a position saved for
//! an inode that is now tailed under another fingerprint (the content before a
//! copytruncate) only serves copies, and is dropped [`GONE_GRACE`] after it was superseded.
//!
//! Checkpoint file `<data>/files.json`, written atomically:
//! `{"version":1,"files":[{"fingerprint","device","inode","offset","tail","path","seen"}]}`
//! (`seen`: Unix seconds the file was last seen).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Bytes hashed for a fingerprint (at most; up to the first newline) and for a tail.
pub(crate) const FINGERPRINT_BYTES: usize = 256;

/// How long the position of a file that is gone is kept.
pub(super) const GONE_GRACE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(super) struct FileId {
    pub(super) fingerprint: u64,
    pub(super) device: u64,
    pub(super) inode: u64,
}

/// A position the spool holds every line before.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Saved {
    #[serde(flatten)]
    pub(super) id: FileId,
    pub(super) offset: u64,
    /// Hash of the (up to) 256 bytes before `offset`.
    pub(super) tail: u64,
    pub(super) path: PathBuf,
    /// Unix seconds when the file was last seen.
    #[serde(default)]
    pub(super) seen: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CheckpointFile<S> {
    pub(super) version: u32,
    pub(super) files: Vec<S>,
}

/// FNV-1a, 64-bit: a fingerprint that stays the same across builds and platforms.
pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    })
}

/// The fingerprint of content starting with `head` (its first 256 bytes, or all of it).
pub(crate) fn first_line_fingerprint(head: &[u8]) -> Option<u64> {
    match head.iter().position(|b| *b == b'\n') {
        Some(nl) => Some(fnv(&head[..=nl])),
        None if head.len() >= FINGERPRINT_BYTES => Some(fnv(&head[..FINGERPRINT_BYTES])),
        None => None,
    }
}

/// Where to start reading a file with `fingerprint`, given the positions saved before:
/// the furthest one whose tail matches the file's bytes there (`tail_at(offset)`: the hash
/// of the bytes before `offset`, `None` when the file is shorter). `None`: a new file.
pub(super) fn resume<'a>(
    saved: impl IntoIterator<Item = &'a Saved>,
    fingerprint: u64,
    mut tail_at: impl FnMut(u64) -> Option<u64>,
) -> Option<u64> {
    let mut candidates: Vec<&Saved> = saved
        .into_iter()
        .filter(|s| s.id.fingerprint == fingerprint)
        .collect();
    // Furthest first; the same position saved twice (by two inodes) is tried once.
    candidates.sort_by_key(|s| std::cmp::Reverse((s.offset, s.tail)));
    candidates.dedup_by_key(|s| (s.offset, s.tail));
    candidates
        .into_iter()
        .find(|s| tail_at(s.offset) == Some(s.tail))
        .map(|s| s.offset)
}

/// Whether a saved position is still wanted at `now` (Unix seconds), refreshing its `seen`:
/// `live` says its file is tailed under this very id, `superseded` that its inode is tailed
/// under another fingerprint, `path_exists` that its path is still there.
pub(super) fn keep(s: &mut Saved, live: bool, superseded: bool, path_exists: bool, now: u64) -> bool {
    if live || (!superseded && path_exists) {
        s.seen = now;
    }
    now.saturating_sub(s.seen) < GONE_GRACE.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(fingerprint: u64, inode: u64, offset: u64, tail: u64) -> Saved {
        Saved {
            id: FileId {
                fingerprint,
                device: 1,
                inode,
            },
            offset,
            tail,
            path: PathBuf::from("/var/log/app.log"),
            seen: 0,
        }
    }

    /// A file's bytes, with tails as the tailer computes them.
    fn tails(content: &[u8]) -> impl Fn(u64) -> Option<u64> + '_ {
        |offset| {
            let end = usize::try_from(offset).ok().filter(|o| *o <= content.len())?;
            Some(fnv(&content[end.saturating_sub(FINGERPRINT_BYTES)..end]))
        }
    }

    #[test]
    fn the_furthest_matching_position_of_the_same_content_wins() {
        let content = b"first\nsecond\nthird\nfourth\n";
        let t = tails(content);
        let fp = first_line_fingerprint(content).unwrap();
        let at = |o: u64| t(o).unwrap();
        let all = [
            saved(fp, 7, 6, at(6)),
            // the original of a copy (another inode): further on, so it wins
            saved(fp, 3, 19, at(19)),
            // past the end of this file
            saved(fp, 7, 400, 1),
            // same fingerprint, other bytes: a new file starting with the same line
            saved(fp, 7, 13, at(13) ^ 1),
            // another file
            saved(fp ^ 1, 7, 26, at(26)),
        ];
        assert_eq!(resume(&all, fp, &t), Some(19));
        assert_eq!(resume(&all[2..], fp, &t), None);
        assert_eq!(resume([], fp, &t), None);
    }

    #[test]
    fn positions_are_kept_while_wanted_and_a_grace_period_after() {
        let day = GONE_GRACE.as_secs();
        let mut s = saved(1, 1, 10, 0);
        assert!(keep(&mut s, false, false, true, 100));
        assert_eq!(s.seen, 100, "path exists: refreshed");
        assert!(
            keep(&mut s, false, true, true, 100 + day - 1),
            "superseded: kept a while"
        );
        assert!(
            !keep(&mut s, false, true, true, 100 + day),
            "superseded: then dropped"
        );
        let mut s = saved(1, 1, 10, 0);
        assert!(keep(&mut s, true, false, false, 5 * day), "tailed: kept");
        assert!(
            !keep(&mut s, false, false, false, 6 * day),
            "gone for a day: dropped"
        );
    }
}
