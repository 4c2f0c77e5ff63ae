//! Files read in parallel during `create`, trees finished in walk order.
//!
//! ```text
//! walk thread (archiver.rs) --file jobs--> readers (one per core): open, chunk, id, save
//!      |                                        | each file's chunk list, on its own reply
//!      '--tree jobs (children before parents)--> finisher: waits for each node's file or
//!                                                subtree, encodes the tree, saves it
//! ```
//!
//! The walk decides what to read and builds trees of [`Pending`] nodes; a file to read and
//! a directory's tree are answered later, on one-shot channels. The finisher takes trees in
//! the order the walk sent them, children always before their parents, so every subtree it
//! waits for is already done or being done; files arrive from the readers in any order.
//! While one reader waits for the disk, the other chunks, and chunking and hashing use
//! every core (with one walker they were one thread's work; a cold page cache made it wait
//! for every read).
//!
//! Both queues are bounded, so the walk runs at most a few dozen files and trees ahead.
//! A file that cannot be read becomes an entry of the summary's `errors` and is left out of
//! its tree, as before; a failing save fails the tree and so the snapshot.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use indicatif::ProgressBar;

use crate::error::{Error, Result};
use crate::repo::{BlobType, ChunkerParams, Id};
use crate::saver::Saver;
use crate::snapshot::Summary;
use crate::tree::{ChunkRef, Node, Tree};

/// A file's chunks and size, once read.
pub(crate) type FileContent = Result<(Vec<ChunkRef>, u64)>;

/// A node whose content or subtree may not be known yet.
#[derive(Debug)]
pub(crate) struct Pending {
    pub node: Node,
    pub slot: Slot,
}

#[derive(Debug)]
pub(crate) enum Slot {
    Ready,
    /// A file being read; `changed` when the parent snapshot had it.
    File {
        content: Receiver<FileContent>,
        changed: bool,
    },
    Tree(Receiver<Result<Id>>),
}

impl Pending {
    pub(crate) fn ready(node: Node) -> Pending {
        Pending {
            node,
            slot: Slot::Ready,
        }
    }
}

struct FileJob {
    path: PathBuf,
    reply: SyncSender<FileContent>,
}

struct TreeJob {
    nodes: Vec<Pending>,
    reply: SyncSender<Result<Id>>,
}

/// Reads a stream into chunks saved through `saver`; returns the chunk list and bytes read.
pub(crate) fn chunk_into(
    saver: &Saver,
    params: ChunkerParams,
    bar: &ProgressBar,
    reader: impl Read,
    what: &Path,
) -> FileContent {
    let mut content = Vec::new();
    let mut saver_error = None;
    let read = crate::chunker::chunks(reader, params, |chunk| {
        match saver.save(BlobType::Data, chunk) {
            Ok(id) => content.push(ChunkRef {
                id,
                len: chunk.len() as u32,
            }),
            Err(e) => {
                saver_error = Some(e);
                return Err(std::io::Error::other("upload stopped"));
            }
        }
        bar.inc(chunk.len() as u64);
        Ok(())
    });
    if let Some(e) = saver_error {
        return Err(e);
    }
    let read = read.map_err(|e| Error::io(what, e))?;
    Ok((content, read))
}

/// The walk's side of the readers and the finisher.
pub(crate) struct Workers {
    files: Option<SyncSender<FileJob>>,
    trees: Option<SyncSender<TreeJob>>,
}

impl Workers {
    /// Runs `walk` with readers and a finisher on scoped threads; returns what `walk`
    /// returned and what the finisher counted (files read, their bytes, unreadable files).
    pub(crate) fn run<T>(
        saver: &Saver,
        params: ChunkerParams,
        bar: &ProgressBar,
        walk: impl FnOnce(&Workers) -> T,
    ) -> (T, Summary) {
        let readers = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
        let (file_tx, file_rx) = sync_channel::<FileJob>(readers * 4);
        let (tree_tx, tree_rx) = sync_channel::<TreeJob>(64);
        let file_rx = Mutex::new(file_rx);
        std::thread::scope(|s| {
            for _ in 0..readers {
                s.spawn(|| loop {
                    let Ok(job) = file_rx.lock().expect("file queue").recv() else {
                        return;
                    };
                    let content = std::fs::File::open(&job.path)
                        .map_err(|e| Error::io(&job.path, e))
                        .and_then(|f| chunk_into(saver, params, bar, f, &job.path));
                    // The finisher may have stopped on an error: nobody to tell.
                    let _ = job.reply.send(content);
                });
            }
            let finisher = s.spawn(|| finish_trees(saver, tree_rx));
            let workers = Workers {
                files: Some(file_tx),
                trees: Some(tree_tx),
            };
            let out = walk(&workers);
            drop(workers);
            (out, finisher.join().expect("tree finisher panicked"))
        })
    }

    /// Queues `path` for reading; its content comes on the returned channel.
    pub(crate) fn read_file(&self, path: PathBuf) -> Result<Receiver<FileContent>> {
        let (reply, content) = sync_channel(1);
        self.files
            .as_ref()
            .expect("open while walking")
            .send(FileJob { path, reply })
            .map_err(|_| Error::Failed("the file readers stopped".to_string()))?;
        Ok(content)
    }

    /// Queues a directory's tree; its id comes on the returned channel.
    pub(crate) fn save_tree(&self, nodes: Vec<Pending>) -> Result<Receiver<Result<Id>>> {
        let (reply, id) = sync_channel(1);
        self.trees
            .as_ref()
            .expect("open while walking")
            .send(TreeJob { nodes, reply })
            .map_err(|_| Error::Failed("the tree finisher stopped".to_string()))?;
        Ok(id)
    }
}

/// Waits for a reply the workers always send (or drop, when stopped by an error).
pub(crate) fn wait<T>(rx: &Receiver<Result<T>>) -> Result<T> {
    rx.recv()
        .unwrap_or_else(|_| Err(Error::Failed("a backup worker stopped".to_string())))
}

/// The finisher: resolves each tree's nodes, saves the tree, answers with its id.
fn finish_trees(saver: &Saver, jobs: Receiver<TreeJob>) -> Summary {
    let mut summary = Summary::default();
    for job in jobs {
        let id = finish_tree(saver, job.nodes, &mut summary);
        let _ = job.reply.send(id);
    }
    summary
}

fn finish_tree(saver: &Saver, pending: Vec<Pending>, summary: &mut Summary) -> Result<Id> {
    let mut nodes = Vec::with_capacity(pending.len());
    for Pending { mut node, slot } in pending {
        match slot {
            Slot::Ready => {}
            Slot::Tree(id) => node.subtree = Some(wait(&id)?),
            Slot::File { content, changed } => match wait(&content) {
                Ok((chunks, size)) => {
                    node.content = chunks;
                    node.size = size;
                    summary.total_bytes += size;
                    match changed {
                        true => summary.files_changed += 1,
                        false => summary.files_new += 1,
                    }
                }
                Err(Error::Io { path, source }) => {
                    summary.errors.push(format!("{}: {source}", path.display()));
                    continue;
                }
                Err(e) => return Err(e),
            },
        }
        nodes.push(node);
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    saver.save(BlobType::Tree, &Tree { nodes }.encode())
}
