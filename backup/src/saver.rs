//! The write side of a backup: dedup, compress + encrypt on worker threads, packs, uploads.
//!
//! ```text
//! archiver (walk thread) --save(kind, id, bytes)--> dedup (index + ids seen this run)
//!   --bounded channel--> workers: zstd + seal --> packer: two open packs, each blob to a
//!   random one; a pack is finished at the repository's pack size
//!   --bounded channel--> uploader (tokio): at most UPLOADS packs in flight; each pack is
//!   PUT, then an index file naming its blobs, then the blobs join the in-memory index
//! ```
//!
//! Memory is bounded by the channels: about (workers × 2) chunks waiting, two open packs,
//! one finished pack queued and UPLOADS packs uploading; before them, each file reader
//! (parallel.rs, one per core) holds up to two maximum chunks of its file (16 MiB). An interrupted run leaves every
//! uploaded pack indexed, so the next run does not send those blobs again.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::repo::index::{IndexFile, IndexPack};
use crate::repo::pack::{FinishedPack, PackBuilder};
use crate::repo::{pack_path, BlobType, BodyEncoder, Id, Repository};

/// Packs uploading at once.
const UPLOADS: usize = 3;

struct Job {
    kind: BlobType,
    id: Id,
    data: Vec<u8>,
}

/// Packs a run wrote, each with the index file that names it.
type Written = Vec<(Id, IndexPack)>;

/// Counters of what a run added.
#[derive(Debug, Default)]
pub(crate) struct SaverStats {
    pub data_blobs: AtomicU64,
    pub tree_blobs: AtomicU64,
    pub bytes_added: AtomicU64,
    pub bytes_packed: AtomicU64,
}

/// A running write pipeline; [`Saver::finish`] waits for every blob to land.
#[derive(Debug)]
pub(crate) struct Saver {
    repo: Arc<Repository>,
    handle: Handle,
    seen: Mutex<HashSet<Id>>,
    tx: Option<SyncSender<Job>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    packer: Arc<Mutex<Packer>>,
    upload_tx: Option<mpsc::Sender<FinishedPack>>,
    uploader: Option<tokio::task::JoinHandle<Result<Written>>>,
    pub stats: Arc<SaverStats>,
}

#[derive(Debug)]
struct Packer {
    open: [PackBuilder; 2],
    target: usize,
}

impl Packer {
    fn add(&mut self, kind: BlobType, id: Id, sealed: Vec<u8>) -> Option<PackBuilder> {
        let i = rand::random_range(0..self.open.len());
        self.open[i].add(kind, id, sealed);
        (self.open[i].size() >= self.target).then(|| std::mem::take(&mut self.open[i]))
    }
}

impl Saver {
    /// Starts the workers and the uploader. Call from a thread outside the runtime.
    pub(crate) fn start(repo: Arc<Repository>, handle: Handle) -> Saver {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (tx, rx) = sync_channel::<Job>(threads * 2);
        let rx = Arc::new(Mutex::new(rx));
        let (upload_tx, upload_rx) = mpsc::channel(1);
        let stats = Arc::new(SaverStats::default());
        let packer = Arc::new(Mutex::new(Packer {
            open: Default::default(),
            target: repo.config().pack_size as usize,
        }));
        let workers = (0..threads)
            .map(|_| {
                let (repo, rx, packer, upload_tx) =
                    (repo.clone(), rx.clone(), packer.clone(), upload_tx.clone());
                std::thread::spawn(move || worker(&repo, &rx, &packer, &upload_tx))
            })
            .collect();
        let uploader = handle.spawn(upload_all(repo.clone(), upload_rx, stats.clone()));
        Saver {
            repo,
            handle,
            seen: Mutex::default(),
            tx: Some(tx),
            workers,
            packer,
            upload_tx: Some(upload_tx),
            uploader: Some(uploader),
            stats,
        }
    }

    /// Queues a blob unless the repository or this run already has it; returns its id.
    pub(crate) fn save(&self, kind: BlobType, data: &[u8]) -> Result<Id> {
        let id = self.repo.key().blob_id(data);
        if self.repo.index.read().expect("index lock").contains(&id)
            || !self.seen.lock().expect("seen lock").insert(id)
        {
            return Ok(id);
        }
        match kind {
            BlobType::Data => &self.stats.data_blobs,
            BlobType::Tree => &self.stats.tree_blobs,
        }
        .fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_added
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let job = Job {
            kind,
            id,
            data: data.to_vec(),
        };
        match self.tx.as_ref().map(|tx| tx.send(job)) {
            Some(Ok(())) => Ok(id),
            // The uploader stopped; finish() returns its error.
            _ => Err(Error::Failed("the upload stopped".to_string())),
        }
    }

    /// Flushes the last packs and waits for all uploads; returns the packs written (with the
    /// index file naming each). On error, what did land stays indexed.
    pub(crate) fn finish(mut self) -> Result<Written> {
        drop(self.tx.take());
        for w in self.workers.drain(..) {
            w.join().expect("backup worker panicked");
        }
        let upload_tx = self.upload_tx.take().expect("finish runs once");
        let open = std::mem::take(&mut self.packer.lock().expect("packer lock").open);
        // The last packs are the run's tail: finish (hash, seal the header) them side by side.
        let key = self.repo.key();
        let last: Vec<FinishedPack> = std::thread::scope(|s| {
            let finishing: Vec<_> = open
                .into_iter()
                .filter(|b| !b.is_empty())
                .map(|b| s.spawn(move || b.finish(key)))
                .collect();
            finishing
                .into_iter()
                .map(|h| h.join().expect("pack finish panicked"))
                .collect()
        });
        for pack in last {
            if upload_tx.blocking_send(pack).is_err() {
                break;
            }
        }
        drop(upload_tx);
        let uploader = self.uploader.take().expect("finish runs once");
        self.handle
            .block_on(uploader)
            .map_err(|e| Error::Failed(format!("upload task failed: {e}")))?
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        // An aborted run: stop the uploader; workers end when their channels close.
        if let Some(u) = self.uploader.take() {
            u.abort();
        }
    }
}

fn worker(
    repo: &Repository,
    rx: &Mutex<Receiver<Job>>,
    packer: &Mutex<Packer>,
    upload_tx: &mpsc::Sender<FinishedPack>,
) {
    let mut encoder = BodyEncoder::new(repo.config().compression);
    loop {
        let Ok(job) = rx.lock().expect("job queue").recv() else {
            return;
        };
        let (flag, body) = encoder.encode(&job.data);
        let sealed = repo.key().seal_parts(&[&[flag], body]);
        let full = packer.lock().expect("packer lock").add(job.kind, job.id, sealed);
        if let Some(builder) = full {
            if upload_tx.blocking_send(builder.finish(repo.key())).is_err() {
                return;
            }
        }
    }
}

async fn upload_all(
    repo: Arc<Repository>,
    mut rx: mpsc::Receiver<FinishedPack>,
    stats: Arc<SaverStats>,
) -> Result<Written> {
    let slots = Arc::new(Semaphore::new(UPLOADS));
    let mut tasks = JoinSet::new();
    let mut done = Vec::new();
    while let Some(pack) = rx.recv().await {
        let permit = slots.clone().acquire_owned().await.expect("semaphore open");
        stats
            .bytes_packed
            .fetch_add(pack.bytes.len() as u64, Ordering::Relaxed);
        let repo = repo.clone();
        tasks.spawn(async move {
            let _permit = permit;
            repo.put_new(&pack_path(&pack.id), pack.bytes).await?;
            let entry = IndexPack {
                id: pack.id,
                blobs: pack.blobs,
            };
            let file = IndexFile {
                packs: vec![entry.clone()],
                supersedes: Vec::new(),
            };
            let file_id = repo.save_index(&file).await?;
            repo.index
                .write()
                .expect("index lock")
                .add_pack(entry.id, &entry.blobs);
            Ok::<_, Error>((file_id, entry))
        });
        while let Some(r) = tasks.try_join_next() {
            done.push(r.expect("upload task panicked")?);
        }
    }
    while let Some(r) = tasks.join_next().await {
        done.push(r.expect("upload task panicked")?);
    }
    Ok(done)
}

/// Folds the per-pack index files of a run into one and deletes them.
pub(crate) async fn consolidate(repo: &Repository, written: Written) -> Result<()> {
    if written.len() < 2 {
        return Ok(());
    }
    let (files, packs): (Vec<Id>, Vec<IndexPack>) = written.into_iter().unzip();
    repo.save_index(&IndexFile {
        packs,
        supersedes: files.clone(),
    })
    .await?;
    for id in files {
        repo.delete(&object_store::path::Path::from(format!("index/{id}")))
            .await?;
    }
    Ok(())
}
