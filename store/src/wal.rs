//! The write-ahead log: every accepted batch is appended and fsynced here before the request
//! is acknowledged; on start the log is replayed into the indexes.
//!
//! # On-disk format (version 1)
//!
//! ```text
//! <data_dir>/wal/
//!   00000000000000000001.wal     segments, named by the first sequence number they hold
//!   00000000000000004711.wal     (the newest is the active one; rotated past SEGMENT_BYTES)
//!   00000000000000000001.wal.corrupt   a quarantined copy of a damaged segment
//!
//! segment := header record*
//! header  := b"OBSWAL" version:u16le            (8 bytes; version = 1)
//! record  := len:u32le crc:u32le body           crc = CRC-32 (IEEE) of body; len = |body|
//! body    := seq:u64le kind:u8 payload          payload: len - 9 bytes, owned by `kind`
//! ```
//!
//! Sequence numbers are dense and increase by one per record across segments.
//!
//! # Durability and group commit
//!
//! One writer thread owns the active segment. Appenders send their record and wait; the writer
//! takes every record queued at that moment, writes them, calls `fdatasync` once, and only then
//! answers all of them. So an acknowledged record is on disk, and concurrent requests share one
//! fsync.
//!
//! # Recovery
//!
//! [`Wal::open`] reads every segment in order and hands each intact record to the caller.
//! A record cut short at the very end of the newest segment is a torn write that was never
//! acknowledged: the segment is truncated to the last whole record. Any other damage (a bad
//! checksum with data after it, a bad header) is corruption: the segment is copied to
//! `*.corrupt`, reported, and reading goes on with the next segment — never a crash loop.
//!
//! # Truncation
//!
//! Once the indexes have durably committed everything up to a sequence number, the caller
//! calls [`Wal::remove_through`]; whole segments below it are deleted. The active segment is
//! never deleted, so the next sequence number is always known. At a clean shutdown the
//! store commits everything and calls [`Wal::roll`] first: the records move out of the
//! active segment's way, an empty segment named by the next sequence number takes its
//! place, and the WAL left on disk is one header.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use tokio::sync::oneshot;

const MAGIC: &[u8; 6] = b"OBSWAL";
const VERSION: u16 = 1;
const HEADER_LEN: u64 = 8;
const RECORD_HEADER_LEN: usize = 8;
const BODY_PREFIX_LEN: usize = 9;
/// Segments are rotated once they pass this size.
pub(crate) const SEGMENT_BYTES: u64 = 64 << 20;
/// The largest record accepted (bounded by the store's request size limits).
pub(crate) const MAX_RECORD_BYTES: usize = 256 << 20;
/// The most records one group commit takes.
const MAX_GROUP: usize = 4096;

/// What a record's payload holds; the WAL itself does not look inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Logs = 1,
    Spans = 2,
    Samples = 3,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Logs),
            2 => Some(Kind::Spans),
            3 => Some(Kind::Samples),
            _ => None,
        }
    }
}

/// One intact record, as replayed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub(crate) seq: u64,
    pub(crate) kind: Kind,
    pub(crate) payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum WalError {
    #[error("wal io error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("wal record of {0} bytes is over the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("the wal writer failed earlier ({0}); restart the store after fixing the disk")]
    Broken(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What recovery found, for logs and `/metrics`.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ReplayReport {
    pub(crate) records: u64,
    pub(crate) segments: usize,
    /// Bytes cut from the tail of the newest segment (an unacknowledged torn write).
    pub(crate) torn_bytes: u64,
    /// Quarantined copies of damaged segments.
    pub(crate) quarantined: Vec<PathBuf>,
}

/// Called on the writer thread with a record's sequence number once it is durable, in
/// sequence order, before the appender is answered.
pub(crate) type ApplyFn = Box<dyn FnOnce(u64) + Send>;

struct Append {
    kind: Kind,
    payload: Vec<u8>,
    apply: ApplyFn,
    done: oneshot::Sender<Result<u64, WalError>>,
}

/// What the writer thread is asked to do.
enum Msg {
    Append(Append),
    /// Start a new segment if the active one holds records (see [`Wal::roll`]).
    Roll(mpsc::SyncSender<Result<(), WalError>>),
}

/// Handle to the log; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Wal {
    dir: PathBuf,
    tx: mpsc::Sender<Msg>,
    /// First sequence number of each segment, oldest first (shared with the writer).
    segments: Arc<Mutex<Vec<u64>>>,
}

impl std::fmt::Debug for Append {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Append").field("kind", &self.kind).finish()
    }
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut firsts = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".wal") {
            if let Ok(first) = stem.parse::<u64>() {
                firsts.push(first);
            }
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

enum ReadOutcome {
    Clean,
    /// Damage at `offset`; `at_tail` when nothing whole follows it (a torn write).
    Damaged {
        offset: u64,
        at_tail: bool,
    },
}

/// Reads the records of one segment, calling `f` for each intact one.
fn read_segment(path: &Path, f: &mut dyn FnMut(Record)) -> Result<(ReadOutcome, u64), WalError> {
    let file = File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; HEADER_LEN as usize];
    if len < HEADER_LEN || r.read_exact(&mut header).is_err() {
        return Ok((
            ReadOutcome::Damaged {
                offset: 0,
                at_tail: true,
            },
            0,
        ));
    }
    if &header[..6] != MAGIC || u16::from_le_bytes([header[6], header[7]]) != VERSION {
        return Ok((
            ReadOutcome::Damaged {
                offset: 0,
                at_tail: false,
            },
            0,
        ));
    }
    let mut offset = HEADER_LEN;
    let mut count = 0;
    loop {
        if offset == len {
            return Ok((ReadOutcome::Clean, count));
        }
        let mut rh = [0u8; RECORD_HEADER_LEN];
        if offset + RECORD_HEADER_LEN as u64 > len {
            return Ok((
                ReadOutcome::Damaged {
                    offset,
                    at_tail: true,
                },
                count,
            ));
        }
        r.read_exact(&mut rh).map_err(io_err(path))?;
        let body_len = u32::from_le_bytes([rh[0], rh[1], rh[2], rh[3]]) as u64;
        let crc = u32::from_le_bytes([rh[4], rh[5], rh[6], rh[7]]);
        let end = offset + RECORD_HEADER_LEN as u64 + body_len;
        if end > len {
            return Ok((
                ReadOutcome::Damaged {
                    offset,
                    at_tail: true,
                },
                count,
            ));
        }
        if body_len < BODY_PREFIX_LEN as u64 || body_len > MAX_RECORD_BYTES as u64 {
            return Ok((
                ReadOutcome::Damaged {
                    offset,
                    at_tail: end == len,
                },
                count,
            ));
        }
        let mut body = vec![0u8; body_len as usize];
        r.read_exact(&mut body).map_err(io_err(path))?;
        let kind = Kind::from_u8(body[8]);
        match kind {
            Some(kind) if crc32fast::hash(&body) == crc => {
                let seq = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
                body.drain(..BODY_PREFIX_LEN);
                f(Record {
                    seq,
                    kind,
                    payload: body,
                });
                count += 1;
                offset = end;
            }
            _ => {
                return Ok((
                    ReadOutcome::Damaged {
                        offset,
                        at_tail: end == len,
                    },
                    count,
                ))
            }
        }
    }
}

fn new_segment(dir: &Path, first_seq: u64) -> Result<File, WalError> {
    let path = segment_path(dir, first_seq);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&VERSION.to_le_bytes());
    file.write_all(&header).map_err(io_err(&path))?;
    file.sync_all().map_err(io_err(&path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))?;
    Ok(file)
}

fn encode(seq: u64, kind: Kind, payload: &[u8], out: &mut Vec<u8>) {
    let body_len = BODY_PREFIX_LEN + payload.len();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(&[kind as u8]);
    hasher.update(payload);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(payload);
}

impl Wal {
    /// Opens (or creates) the log in `dir`, replays every intact record into `replay`, repairs
    /// or quarantines damage, and starts the writer.
    /// `min_next_seq` keeps sequence numbers above what the indexes already hold, even if
    /// damage cost the log its newest records.
    pub(crate) fn open(
        dir: &Path,
        min_next_seq: u64,
        replay: &mut dyn FnMut(Record),
    ) -> Result<(Wal, ReplayReport), WalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut firsts = list_segments(dir)?;
        let mut report = ReplayReport {
            segments: firsts.len(),
            ..ReplayReport::default()
        };
        let mut next_seq = firsts.first().copied().unwrap_or(1);
        for (i, &first) in firsts.iter().enumerate() {
            let path = segment_path(dir, first);
            let newest = i + 1 == firsts.len();
            next_seq = next_seq.max(first);
            let (outcome, count) = read_segment(&path, &mut |rec| {
                next_seq = rec.seq + 1;
                replay(rec);
            })?;
            report.records += count;
            if let ReadOutcome::Damaged { offset, at_tail } = outcome {
                let len = fs::metadata(&path).map_err(io_err(&path))?.len();
                if !(newest && at_tail) {
                    let quarantine = path.with_extension("wal.corrupt");
                    fs::copy(&path, &quarantine).map_err(io_err(&quarantine))?;
                    tracing::error!(segment = %path.display(), offset, quarantine = %quarantine.display(),
                        "wal segment is damaged; kept the records before the damage and quarantined a copy");
                    report.quarantined.push(quarantine);
                } else {
                    report.torn_bytes += len - offset;
                }
                if newest {
                    // Cut the damage so new records follow the last good one.
                    let keep = offset.max(HEADER_LEN);
                    if offset < HEADER_LEN {
                        new_segment(dir, first)?;
                    } else {
                        let f = OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .map_err(io_err(&path))?;
                        f.set_len(keep).map_err(io_err(&path))?;
                        f.sync_all().map_err(io_err(&path))?;
                    }
                }
            }
        }
        if next_seq < min_next_seq {
            // Start a fresh segment so that segment names stay the first seq they hold.
            next_seq = min_next_seq;
            firsts.push(next_seq);
            new_segment(dir, next_seq)?;
        }
        let (active_first, file) = match firsts.last() {
            Some(&first) => {
                let path = segment_path(dir, first);
                let mut f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                f.seek(SeekFrom::End(0)).map_err(io_err(&path))?;
                (first, f)
            }
            None => {
                firsts.push(next_seq);
                (next_seq, new_segment(dir, next_seq)?)
            }
        };
        let size = file.metadata().map_err(io_err(dir))?.len();
        let segments = Arc::new(Mutex::new(firsts));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            dir: dir.to_path_buf(),
            file,
            active_first,
            size,
            next_seq,
            segments: segments.clone(),
            broken: None,
        };
        thread::Builder::new()
            .name("obs-wal".into())
            .spawn(move || writer.run(rx))
            .map_err(io_err(dir))?;
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                tx,
                segments,
            },
            report,
        ))
    }

    /// Appends a record and returns its sequence number once it is on disk and `apply` has run.
    pub(crate) async fn append(&self, kind: Kind, payload: Vec<u8>, apply: ApplyFn) -> Result<u64, WalError> {
        if payload.len() + BODY_PREFIX_LEN > MAX_RECORD_BYTES {
            return Err(WalError::TooLarge(payload.len()));
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Append(Append {
                kind,
                payload,
                apply,
                done,
            }))
            .map_err(|_| WalError::Broken("writer stopped".into()))?;
        wait.await
            .map_err(|_| WalError::Broken("writer stopped".into()))?
    }

    /// Closes the active segment if it holds records and starts an empty one, so that
    /// [`Wal::remove_through`] can delete every record the indexes cover: at a clean
    /// shutdown, nothing is left to replay. Blocking.
    pub(crate) fn roll(&self) -> Result<(), WalError> {
        let (done, wait) = mpsc::sync_channel(1);
        self.tx
            .send(Msg::Roll(done))
            .map_err(|_| WalError::Broken("writer stopped".into()))?;
        wait.recv()
            .map_err(|_| WalError::Broken("writer stopped".into()))?
    }

    /// Deletes every segment whose records all have `seq <= through`; never the active one.
    pub(crate) fn remove_through(&self, through: u64) -> Result<usize, WalError> {
        let mut segments = self.segments.lock().expect("wal segment list");
        let mut removed = 0;
        // Segment i holds [first_i, first_{i+1}); it can go when first_{i+1} - 1 <= through.
        while segments.len() >= 2 && segments[1] <= through.saturating_add(1) {
            let path = segment_path(&self.dir, segments[0]);
            fs::remove_file(&path).map_err(io_err(&path))?;
            segments.remove(0);
            removed += 1;
        }
        Ok(removed)
    }

    /// Bytes on disk, for `/metrics`.
    pub(crate) fn disk_bytes(&self) -> u64 {
        let segments = self.segments.lock().expect("wal segment list").clone();
        segments
            .iter()
            .filter_map(|&s| fs::metadata(segment_path(&self.dir, s)).ok())
            .map(|m| m.len())
            .sum()
    }
}

struct Writer {
    dir: PathBuf,
    file: File,
    active_first: u64,
    size: u64,
    next_seq: u64,
    segments: Arc<Mutex<Vec<u64>>>,
    broken: Option<String>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut buf = Vec::with_capacity(1 << 20);
        let mut roll = None;
        while let Ok(first) = rx.recv() {
            let first = match first {
                Msg::Append(a) => a,
                Msg::Roll(done) => {
                    let _ = done.send(self.roll());
                    continue;
                }
            };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(Msg::Append(a)) => group.push(a),
                    Ok(Msg::Roll(done)) => {
                        roll = Some(done);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.write_and_answer(group, &mut buf);
            if let Some(done) = roll.take() {
                let _ = done.send(self.roll());
            }
        }
    }

    fn write_and_answer(&mut self, group: Vec<Append>, buf: &mut Vec<u8>) {
        if let Some(why) = &self.broken {
            for a in group {
                let _ = a.done.send(Err(WalError::Broken(why.clone())));
            }
            return;
        }
        match self.write_group(&group, buf) {
            Ok(first_seq) => {
                for (i, a) in group.into_iter().enumerate() {
                    let seq = first_seq + i as u64;
                    (a.apply)(seq);
                    let _ = a.done.send(Ok(seq));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "wal write failed; refusing further writes");
                self.broken = Some(e.to_string());
                for a in group {
                    let _ = a.done.send(Err(WalError::Broken(e.to_string())));
                }
            }
        }
    }

    /// Starts a new segment at the next sequence number, unless the active one is empty.
    fn roll(&mut self) -> Result<(), WalError> {
        if let Some(why) = &self.broken {
            return Err(WalError::Broken(why.clone()));
        }
        if self.size > HEADER_LEN {
            self.file = new_segment(&self.dir, self.next_seq)?;
            self.active_first = self.next_seq;
            self.size = HEADER_LEN;
            self.segments
                .lock()
                .expect("wal segment list")
                .push(self.active_first);
        }
        Ok(())
    }

    fn write_group(&mut self, group: &[Append], buf: &mut Vec<u8>) -> Result<u64, WalError> {
        if self.size >= SEGMENT_BYTES {
            self.roll()?;
        }
        let first_seq = self.next_seq;
        buf.clear();
        for (i, a) in group.iter().enumerate() {
            encode(first_seq + i as u64, a.kind, &a.payload, buf);
        }
        let path = segment_path(&self.dir, self.active_first);
        self.file.write_all(buf).map_err(io_err(&path))?;
        self.file.sync_data().map_err(io_err(&path))?;
        self.size += buf.len() as u64;
        self.next_seq += group.len() as u64;
        Ok(first_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay_all(dir: &Path) -> (Wal, Vec<Record>, ReplayReport) {
        let mut records = Vec::new();
        let (wal, report) = Wal::open(dir, 0, &mut |r| records.push(r)).unwrap();
        (wal, records, report)
    }

    #[tokio::test]
    async fn appended_records_replay_in_order_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, records, _) = replay_all(dir.path());
        assert!(records.is_empty());
        let mut joins = Vec::new();
        for i in 0..50u32 {
            let wal = wal.clone();
            joins.push(tokio::spawn(async move {
                wal.append(Kind::Logs, i.to_le_bytes().to_vec(), Box::new(|_| {}))
                    .await
            }));
        }
        let mut seqs: Vec<u64> = Vec::new();
        for j in joins {
            seqs.push(j.await.unwrap().unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
        drop(wal);
        let (wal, records, report) = replay_all(dir.path());
        assert_eq!(report.records, 50);
        assert_eq!(
            records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (1..=50).collect::<Vec<_>>()
        );
        // Sequence numbers continue after a reopen.
        assert_eq!(
            wal.append(Kind::Spans, b"x".to_vec(), Box::new(|_| {}))
                .await
                .unwrap(),
            51
        );
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = replay_all(dir.path());
        wal.append(Kind::Logs, b"one".to_vec(), Box::new(|_| {}))
            .await
            .unwrap();
        wal.append(Kind::Logs, b"two".to_vec(), Box::new(|_| {}))
            .await
            .unwrap();
        drop(wal);
        let seg = segment_path(dir.path(), 1);
        let len = fs::metadata(&seg).unwrap().len();
        // Simulate a crash in the middle of writing the second record.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 2)
            .unwrap();
        let (wal, records, report) = replay_all(dir.path());
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].payload, b"one");
        assert_eq!(report.torn_bytes, 3 + 9 + 8 - 2);
        assert!(report.quarantined.is_empty());
        assert_eq!(
            wal.append(Kind::Logs, b"three".to_vec(), Box::new(|_| {}))
                .await
                .unwrap(),
            2
        );
        drop(wal);
        let (_, records, _) = replay_all(dir.path());
        assert_eq!(
            records.iter().map(|r| r.payload.as_slice()).collect::<Vec<_>>(),
            [&b"one"[..], b"three"]
        );
    }

    #[tokio::test]
    async fn a_flipped_bit_mid_segment_is_quarantined_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = replay_all(dir.path());
        for p in [b"aaaa", b"bbbb", b"cccc"] {
            wal.append(Kind::Logs, p.to_vec(), Box::new(|_| {}))
                .await
                .unwrap();
        }
        drop(wal);
        let seg = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&seg).unwrap();
        // Second record's payload: header 8 + record 21 + record header 8 + seq/kind 9.
        bytes[8 + 21 + 8 + 9] ^= 0x01;
        fs::write(&seg, &bytes).unwrap();
        let (wal, records, report) = replay_all(dir.path());
        assert_eq!(records.len(), 1, "records before the damage survive");
        assert_eq!(report.quarantined.len(), 1);
        assert!(report.quarantined[0].exists());
        assert_eq!(
            wal.append(Kind::Logs, b"dddd".to_vec(), Box::new(|_| {}))
                .await
                .unwrap(),
            2
        );
    }

    #[tokio::test]
    async fn apply_runs_in_sequence_order_and_min_next_seq_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut records = Vec::new();
        let (wal, _) = Wal::open(dir.path(), 100, &mut |r| records.push(r)).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut joins = Vec::new();
        for _ in 0..20 {
            let (wal, order) = (wal.clone(), order.clone());
            joins.push(tokio::spawn(async move {
                wal.append(
                    Kind::Logs,
                    vec![1],
                    Box::new(move |seq| order.lock().unwrap().push(seq)),
                )
                .await
            }));
        }
        for j in joins {
            j.await.unwrap().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (100..120).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn remove_through_keeps_the_active_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = replay_all(dir.path());
        wal.append(Kind::Logs, vec![0; 16], Box::new(|_| {}))
            .await
            .unwrap();
        // Force a rotation by pretending the segment is full.
        drop(wal);
        for first in [2u64, 3] {
            new_segment(dir.path(), first).unwrap();
        }
        let (wal, _, report) = replay_all(dir.path());
        assert_eq!(report.segments, 3);
        assert_eq!(wal.remove_through(1).unwrap(), 1);
        assert_eq!(wal.remove_through(100).unwrap(), 1);
        assert_eq!(list_segments(dir.path()).unwrap(), vec![3]);
    }

    /// Pins format version 1: a segment written by this fixture's bytes must replay forever.
    #[test]
    fn golden_v1_segment() {
        let mut bytes = b"OBSWAL\x01\x00".to_vec();
        encode(7, Kind::Logs, b"hello", &mut bytes);
        encode(8, Kind::Samples, b"", &mut bytes);
        assert_eq!(
            bytes,
            [
                &b"OBSWAL\x01\x00"[..],
                &[14, 0, 0, 0],
                &crc32fast::hash(b"\x07\x00\x00\x00\x00\x00\x00\x00\x01hello").to_le_bytes(),
                b"\x07\x00\x00\x00\x00\x00\x00\x00\x01hello",
                &[9, 0, 0, 0],
                &crc32fast::hash(b"\x08\x00\x00\x00\x00\x00\x00\x00\x03").to_le_bytes(),
                b"\x08\x00\x00\x00\x00\x00\x00\x00\x03",
            ]
            .concat()
        );
        let dir = tempfile::tempdir().unwrap();
        fs::write(segment_path(dir.path(), 7), &bytes).unwrap();
        let mut records = Vec::new();
        let (_, report) = Wal::open(dir.path(), 0, &mut |r| records.push(r)).unwrap();
        assert_eq!(report.records, 2);
        assert_eq!(
            records[0],
            Record {
                seq: 7,
                kind: Kind::Logs,
                payload: b"hello".to_vec()
            }
        );
        assert_eq!(records[1].kind, Kind::Samples);
    }
}
