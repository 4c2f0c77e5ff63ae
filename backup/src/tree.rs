//! Trees: one blob per directory, listing its entries with their metadata.
//!
//! # Format (version 1)
//!
//! A tree blob's content is `1u8 || postcard Tree`; nodes are sorted by name (raw bytes, so
//! names need not be UTF-8). Files list their chunks (id and length, in order); directories
//! name their subtree. Hard links are recognised on restore from `(device, inode)` with
//! `links > 1`.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::repo::{BlobType, Id, Repository};

const FORMAT: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

/// One chunk of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: Id,
    pub len: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission bits including setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
    /// Access times are not kept: reading a tree would change it, and every backup would
    /// then store every directory again. Restore sets atime = mtime.
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub size: u64,
    pub inode: u64,
    pub device: u64,
    pub links: u64,
    /// Device number of a device node.
    pub rdev: u64,
    pub link_target: Vec<u8>,
    pub content: Vec<ChunkRef>,
    pub subtree: Option<Id>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

fn nanos(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

impl Node {
    /// A node from `lstat` metadata; content, subtree and link target are filled by the caller.
    pub fn from_metadata(name: Vec<u8>, meta: &std::fs::Metadata, names: &mut Names) -> Node {
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            NodeKind::Dir
        } else if ft.is_symlink() {
            NodeKind::Symlink
        } else if ft.is_fifo() {
            NodeKind::Fifo
        } else if ft.is_char_device() {
            NodeKind::CharDevice
        } else if ft.is_block_device() {
            NodeKind::BlockDevice
        } else if ft.is_socket() {
            NodeKind::Socket
        } else {
            NodeKind::File
        };
        Node {
            name,
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            user: names.user(meta.uid()),
            group: names.group(meta.gid()),
            mtime_ns: nanos(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: nanos(meta.ctime(), meta.ctime_nsec()),
            size: if kind == NodeKind::File { meta.size() } else { 0 },
            inode: meta.ino(),
            device: meta.dev(),
            links: meta.nlink(),
            rdev: meta.rdev(),
            link_target: Vec::new(),
            content: Vec::new(),
            subtree: None,
            xattrs: Vec::new(),
        }
    }

    /// Same file as far as metadata can tell (restic's rule: size, mtime, ctime, inode).
    pub fn looks_unchanged(&self, other: &Node) -> bool {
        self.kind == other.kind
            && self.size == other.size
            && self.mtime_ns == other.mtime_ns
            && self.ctime_ns == other.ctime_ns
            && self.inode == other.inode
    }

    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// Cache of uid/gid → name lookups.
#[derive(Debug, Default)]
pub struct Names {
    users: std::collections::HashMap<u32, String>,
    groups: std::collections::HashMap<u32, String>,
}

impl Names {
    fn user(&mut self, uid: u32) -> String {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
                    .unwrap_or_default()
            })
            .clone()
    }

    fn group(&mut self, gid: u32) -> String {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(gid.into())
                    .ok()
                    .flatten()
                    .map(|g| g.name)
                    .unwrap_or_default()
            })
            .clone()
    }
}

impl Tree {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT];
        out.extend(postcard::to_stdvec(self).expect("trees serialize"));
        out
    }

    pub fn decode(bytes: &[u8], id: &Id) -> Result<Tree> {
        match bytes.split_first() {
            Some((&FORMAT, body)) => postcard::from_bytes(body).map_err(|e| Error::Corrupt {
                what: format!("tree {id}"),
                why: e.to_string(),
            }),
            _ => Err(Error::Format(format!("tree {id} has an unknown format"))),
        }
    }

    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

impl Repository {
    pub async fn load_tree(&self, id: &Id) -> Result<Tree> {
        let loc = self.index.read().expect("index lock").get(id);
        if let Some(loc) = loc {
            if loc.kind != BlobType::Tree {
                return Err(Error::Corrupt {
                    what: format!("tree {id}"),
                    why: "the index lists it as file data".to_string(),
                });
            }
        }
        Tree::decode(&self.read_blob(id).await?, id)
    }
}

/// Walks the tree `root` depth-first in name order, calling `visit(path, node)` for every
/// node (`path` relative, starting at `/`); a directory is entered when `visit` returns true.
pub async fn walk(
    repo: &Repository,
    root: Id,
    mut visit: impl FnMut(&std::path::Path, &Node) -> bool,
) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let mut stack = vec![(std::path::PathBuf::from("/"), root)];
    while let Some((dir, id)) = stack.pop() {
        let tree = repo.load_tree(&id).await?;
        let mut subdirs = Vec::new();
        for node in &tree.nodes {
            let path = dir.join(std::ffi::OsStr::from_bytes(&node.name));
            if visit(&path, node) {
                if let Some(sub) = node.subtree {
                    subdirs.push((path, sub));
                }
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(())
}
