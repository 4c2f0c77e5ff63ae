//! `create`: walks the given paths, reuses unchanged files from the parent snapshot, hands
//! the rest to the file readers and each directory to the tree finisher (parallel.rs),
//! which write chunks and trees through the [`Saver`]; then the snapshot record.
//!
//! The snapshot's root tree mirrors absolute paths: backing up `/etc` and `/home/ann/docs`
//! gives `etc/` and `home/ann/docs/` under the root, with the intermediate directories'
//! metadata. A `--stdin-from` command's output becomes `/<stdin-filename>`. Files that
//! cannot be read are skipped and listed in the summary's `errors`; a failing
//! `--stdin-from` command fails the whole backup (no snapshot).
//!
//! The parent is the newest snapshot of the same host and the same paths; a file whose size,
//! mtime, ctime and inode match its parent entry is not read again.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use tokio::runtime::Handle;

use crate::error::{Error, Result};
use crate::parallel::{chunk_into, wait, Pending, Slot, Workers};
use crate::progress::bytes_bar;
use crate::repo::{lock, ChunkerParams, Id, Repository};
use crate::saver::{consolidate, Saver};
use crate::snapshot::{components, Snapshot, Summary};
use crate::tree::{Names, Node, NodeKind, Tree};

/// What to back up and how.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub paths: Vec<PathBuf>,
    pub tags: Vec<String>,
    /// Defaults to this machine's hostname.
    pub host: Option<String>,
    pub excludes: Vec<String>,
    /// Commands whose output is backed up (`--stdin-from`, or a job's `stdin_from`).
    pub stdin: Vec<StdinCommand>,
    pub progress: bool,
    pub retry_lock: Duration,
}

/// `--stdin-from CMD --stdin-filename NAME`.
#[derive(Debug, Clone)]
pub struct StdinCommand {
    pub command: String,
    pub filename: String,
}

/// Exclude patterns: with a `/` they match the whole absolute path, without one the name.
/// `*` and `?` never match a `/`; `**` as a whole component matches any number of them.
#[derive(Debug)]
struct Excludes {
    paths: Vec<glob::Pattern>,
    names: Vec<glob::Pattern>,
}

const EXCLUDE_MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl Excludes {
    fn new(patterns: &[String]) -> Result<Excludes> {
        let mut excludes = Excludes {
            paths: Vec::new(),
            names: Vec::new(),
        };
        for p in patterns {
            let glob = glob::Pattern::new(p)
                .map_err(|e| Error::Usage(format!("bad --exclude pattern {p:?}: {e}")))?;
            match p.contains('/') {
                true => excludes.paths.push(glob),
                false => excludes.names.push(glob),
            }
        }
        Ok(excludes)
    }

    fn excluded(&self, path: &Path) -> bool {
        let matches =
            |globs: &[glob::Pattern], p: &Path| globs.iter().any(|g| g.matches_path_with(p, EXCLUDE_MATCH));
        matches(&self.paths, path)
            || path
                .file_name()
                .is_some_and(|n| matches(&self.names, Path::new(n)))
    }
}

/// Makes a path absolute without resolving symlinks, and drops `.`/`..` lexically.
fn absolute(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(s) => out.push(s),
            _ => {}
        }
    }
    Ok(out)
}

/// Runs a backup and writes its snapshot.
pub async fn create(repo: Arc<Repository>, opts: CreateOptions) -> Result<(Id, Snapshot)> {
    let started = Instant::now();
    let time = chrono::Utc::now();
    if opts.paths.is_empty() && opts.stdin.is_empty() {
        return Err(Error::Usage(
            "nothing to back up: give paths or --stdin-from".to_string(),
        ));
    }
    let mut paths = Vec::new();
    for p in &opts.paths {
        let abs = absolute(p)?;
        std::fs::symlink_metadata(&abs).map_err(|e| Error::io(&abs, e))?;
        paths.push(abs);
    }
    paths.sort();
    paths.dedup();
    let excludes = Excludes::new(&opts.excludes)?;
    let host = opts.host.clone().unwrap_or_else(crate::repo::hostname);
    let mut names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    for s in &opts.stdin {
        if s.filename.is_empty() || s.filename.contains('/') {
            return Err(Error::Usage(format!(
                "--stdin-filename {:?} must be a plain file name",
                s.filename
            )));
        }
        names.push(format!("/{}", s.filename));
    }

    let guard = lock::lock(&repo, false, "backup create", opts.retry_lock).await?;
    let parent = repo
        .snapshots()
        .await?
        .into_iter()
        .rev()
        .find(|(_, s)| s.host == host && s.paths == names);
    let bar = bytes_bar(opts.progress, "backup");
    if !bar.is_hidden() {
        let (bar, paths, excludes) = (bar.clone(), paths.clone(), Excludes::new(&opts.excludes)?);
        std::thread::spawn(move || scan(&paths, &excludes, &bar));
    }

    let handle = Handle::current();
    let walk = {
        let repo = repo.clone();
        let parent_tree = parent.as_ref().map(|(_, s)| s.tree);
        let stdin = opts.stdin.clone();
        let bar = bar.clone();
        tokio::task::spawn_blocking(move || {
            let saver = Saver::start(repo.clone(), handle.clone());
            let chunker = repo.config().chunker;
            let ((root, mut summary), read) = Workers::run(&saver, chunker, &bar.clone(), |workers| {
                let mut a = Archiver {
                    repo: &repo,
                    handle,
                    saver: &saver,
                    workers,
                    chunker,
                    excludes,
                    names: Names::default(),
                    summary: Summary::default(),
                    bar,
                };
                let root = a.archive_roots(&paths, &stdin, parent_tree);
                (root, a.summary)
            });
            summary.files_new += read.files_new;
            summary.files_changed += read.files_changed;
            summary.total_bytes += read.total_bytes;
            summary.errors.extend(read.errors);
            let stats = saver.stats.clone();
            let written = saver.finish();
            // Report the walk's error first: it is the cause when both fail.
            let root = root?;
            let written = written?;
            summary.data_blobs = stats.data_blobs.load(Ordering::Relaxed);
            summary.tree_blobs = stats.tree_blobs.load(Ordering::Relaxed);
            summary.data_added = stats.bytes_added.load(Ordering::Relaxed);
            summary.data_added_packed = stats.bytes_packed.load(Ordering::Relaxed);
            Ok::<_, Error>((root, summary, written))
        })
    };
    let result = walk
        .await
        .map_err(|e| Error::Failed(format!("backup thread failed: {e}")));
    let (root, mut summary, written) = match result.and_then(|r| r) {
        Ok(r) => r,
        Err(e) => {
            bar.abandon();
            let _ = guard.release().await;
            return Err(e);
        }
    };
    bar.finish_and_clear();
    consolidate(&repo, written).await?;
    summary.duration_secs = started.elapsed().as_secs_f64();
    let snapshot = Snapshot {
        time,
        host,
        username: std::env::var("USER").unwrap_or_default(),
        paths: names,
        tags: opts.tags.clone(),
        tree: root,
        parent: parent.map(|(id, _)| id),
        program_version: format!("obs {}", env!("CARGO_PKG_VERSION")),
        summary,
    };
    guard.check_held().await?;
    let id = repo.save_snapshot(&snapshot).await?;
    guard.release().await?;
    Ok((id, snapshot))
}

/// Sums the sizes under `paths` so the progress bar can show a total and an ETA.
fn scan(paths: &[PathBuf], excludes: &Excludes, bar: &ProgressBar) {
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        if excludes.excluded(&p) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if meta.is_file() {
            bar.inc_length(meta.len());
        }
    }
}

/// Extended attributes of `path` itself (not a symlink's target); none where unsupported.
fn read_xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<_> = names
        .filter_map(|n| Some((n.as_bytes().to_vec(), xattr::get(path, &n).ok()??)))
        .collect();
    out.sort();
    out
}

/// A path to back up, or a directory on the way to one.
#[derive(Debug, Default)]
struct Trie {
    leaf: bool,
    children: BTreeMap<Vec<u8>, Trie>,
}

struct Archiver<'a> {
    repo: &'a Repository,
    handle: Handle,
    saver: &'a Saver,
    workers: &'a Workers,
    chunker: ChunkerParams,
    excludes: Excludes,
    names: Names,
    summary: Summary,
    bar: ProgressBar,
}

impl Archiver<'_> {
    fn load_parent(&mut self, id: Option<Id>) -> Option<Tree> {
        let id = id?;
        match self.handle.block_on(self.repo.load_tree(&id)) {
            Ok(tree) => Some(tree),
            Err(e) => {
                tracing::warn!("parent tree {id} unreadable, reading everything again: {e}");
                None
            }
        }
    }

    /// Hands a directory's nodes to the finisher; its tree id comes later.
    fn save_tree(&mut self, nodes: Vec<Pending>) -> Result<Receiver<Result<Id>>> {
        self.summary.dirs += 1;
        self.workers.save_tree(nodes)
    }

    fn archive_roots(&mut self, paths: &[PathBuf], stdin: &[StdinCommand], parent: Option<Id>) -> Result<Id> {
        let mut trie = Trie::default();
        for p in paths {
            let mut t = &mut trie;
            for c in components(p) {
                if t.leaf {
                    break; // an ancestor is backed up whole
                }
                t = t.children.entry(c).or_default();
            }
            t.leaf = true;
            t.children.clear();
        }
        let parent_tree = self.load_parent(parent);
        let mut nodes = self.archive_trie(Path::new("/"), &trie, parent_tree.as_ref())?;
        for cmd in stdin {
            if nodes.iter().any(|n| n.node.name == cmd.filename.as_bytes()) {
                return Err(Error::Usage(format!(
                    "--stdin-filename {:?} clashes with a backed-up path",
                    cmd.filename
                )));
            }
            nodes.push(Pending::ready(self.archive_stdin(cmd)?));
        }
        if trie.leaf {
            // `/` itself was given: its listing is the root.
            return match nodes.into_iter().next().map(|n| n.slot) {
                Some(Slot::Tree(root)) => wait(&root),
                _ => Err(Error::Failed("could not read /".to_string())),
            };
        }
        let root = self.save_tree(nodes)?;
        wait(&root)
    }

    fn archive_trie(&mut self, dir: &Path, trie: &Trie, parent: Option<&Tree>) -> Result<Vec<Pending>> {
        if trie.leaf {
            let name = dir.file_name().map_or(b"/".to_vec(), |n| n.as_bytes().to_vec());
            return Ok(self.archive_entry(dir, name, None)?.into_iter().collect());
        }
        let mut nodes = Vec::new();
        for (name, child) in &trie.children {
            let path = dir.join(std::ffi::OsStr::from_bytes(name));
            let parent_node = parent.and_then(|t| t.find(name));
            if child.leaf {
                nodes.extend(self.archive_entry(&path, name.clone(), parent_node)?);
                continue;
            }
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.summary.errors.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            let mut node = Node::from_metadata(name.clone(), &meta, &mut self.names);
            let parent_sub = self.load_parent(parent_node.and_then(|n| n.subtree));
            let children = self.archive_trie(&path, child, parent_sub.as_ref())?;
            node.kind = NodeKind::Dir;
            let slot = Slot::Tree(self.save_tree(children)?);
            nodes.push(Pending { node, slot });
        }
        Ok(nodes)
    }

    /// One file system entry; `None` when excluded or unreadable (recorded in the summary).
    /// Files to read go to the readers, directories to the finisher.
    fn archive_entry(
        &mut self,
        path: &Path,
        name: Vec<u8>,
        parent: Option<&Node>,
    ) -> Result<Option<Pending>> {
        if self.excludes.excluded(path) {
            return Ok(None);
        }
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.summary.errors.push(format!("{}: {e}", path.display()));
                return Ok(None);
            }
        };
        let mut node = Node::from_metadata(name, &meta, &mut self.names);
        node.xattrs = read_xattrs(path);
        let mut slot = Slot::Ready;
        match node.kind {
            NodeKind::Dir => {
                let parent_sub = self.load_parent(parent.and_then(|p| p.subtree));
                match self.archive_dir(path, parent_sub.as_ref()) {
                    Ok(tree) => slot = Slot::Tree(tree),
                    Err(Error::Io { path, source }) => {
                        self.summary.errors.push(format!("{}: {source}", path.display()));
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                }
            }
            NodeKind::Symlink => match std::fs::read_link(path) {
                Ok(target) => node.link_target = target.as_os_str().as_bytes().to_vec(),
                Err(e) => {
                    self.summary.errors.push(format!("{}: {e}", path.display()));
                    return Ok(None);
                }
            },
            NodeKind::File => {
                self.summary.total_files += 1;
                let index = self.repo.index.read().expect("index lock");
                let reuse = parent
                    .filter(|p| p.looks_unchanged(&node) && p.content.iter().all(|c| index.contains(&c.id)));
                drop(index);
                if let Some(p) = reuse {
                    node.content = p.content.clone();
                    self.summary.files_unmodified += 1;
                    self.summary.total_bytes += node.size;
                    self.bar.inc(node.size);
                } else {
                    // Counted (new or changed) by the finisher once read.
                    slot = Slot::File {
                        content: self.workers.read_file(path.to_path_buf())?,
                        changed: parent.is_some(),
                    };
                }
                self.bar
                    .set_message(format!("{} files", self.summary.total_files));
            }
            _ => {}
        }
        Ok(Some(Pending { node, slot }))
    }

    fn archive_dir(&mut self, path: &Path, parent: Option<&Tree>) -> Result<Receiver<Result<Id>>> {
        let rd = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
        let mut entries = Vec::new();
        for e in rd {
            let e = e.map_err(|e| Error::io(path, e))?;
            entries.push(e.file_name());
        }
        entries.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut nodes = Vec::with_capacity(entries.len());
        for name in entries {
            let child = path.join(&name);
            let name = name.as_bytes().to_vec();
            let parent_node = parent.and_then(|t| t.find(&name));
            nodes.extend(self.archive_entry(&child, name, parent_node)?);
        }
        self.save_tree(nodes)
    }

    fn archive_stdin(&mut self, cmd: &StdinCommand) -> Result<Node> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&cmd.command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Failed(format!("could not start --stdin-from {:?}: {e}", cmd.command)))?;
        let mut stderr = child.stderr.take().expect("piped stderr");
        let errors = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text);
            text
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let what = PathBuf::from(format!("--stdin-from {:?}", cmd.command));
        let chunked = chunk_into(self.saver, self.chunker, &self.bar, stdout, &what);
        let status = child.wait().map_err(|e| Error::io(&what, e))?;
        let err_text = errors.join().unwrap_or_default();
        let (content, size) = chunked?;
        if !status.success() {
            let text = String::from_utf8_lossy(&err_text);
            let tail: String = text
                .trim()
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(Error::Failed(format!(
                "--stdin-from {:?} failed ({status}); no snapshot was written{}",
                cmd.command,
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(": {tail}")
                }
            )));
        }
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        self.summary.total_files += 1;
        self.summary.files_new += 1;
        self.summary.total_bytes += size;
        Ok(Node {
            name: cmd.filename.as_bytes().to_vec(),
            kind: NodeKind::File,
            mode: 0o600,
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            user: String::new(),
            group: String::new(),
            mtime_ns: now,
            ctime_ns: now,
            size,
            inode: 0,
            device: 0,
            links: 1,
            rdev: 0,
            link_target: Vec::new(),
            content,
            subtree: None,
            xattrs: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_match_names_or_whole_paths_and_stars_stay_in_a_component() {
        let patterns = ["*.tmp", "/srv/app/cache/**", "/etc/*.bak"].map(String::from);
        let ex = Excludes::new(&patterns).unwrap();
        let excluded = |p: &str| ex.excluded(Path::new(p));
        assert!(excluded("/home/a/x.tmp") && excluded("/x.tmp"));
        assert!(!excluded("/home/a/x.tmp.keep"));
        assert!(excluded("/srv/app/cache/a") && excluded("/srv/app/cache/a/b/c"));
        assert!(!excluded("/srv/app/cachex") && !excluded("/srv/app/other"));
        assert!(excluded("/etc/hosts.bak") && !excluded("/etc/sub/hosts.bak"));
        let e = Excludes::new(&["[".to_string()]).unwrap_err().to_string();
        assert!(e.contains("bad --exclude pattern \"[\""), "{e}");
    }
}
