//! A model test of the tailer (issue 21), as the spool's: random sequences of appends,
//! rotations (rename-and-create, copytruncate), gzip of rotated files, the tailer's steps,
//! spool fsyncs, and crashes followed by restarts, on real files in a temporary directory
//! and a spool on an in-memory filesystem. Every line written is delivered, and the
//! duplicates stay within the documented bound: per crash, the lines read since the last
//! checkpoint.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use proptest::prelude::*;
use prost::Message;

use super::*;
use crate::spool::{MemFs, SpoolConfig};

#[derive(Debug, Clone)]
enum Op {
    /// The app writes this many lines to `app.log`.
    Append(u8),
    /// logrotate `create`: `app.log` renamed to `app.log.N`, a new empty `app.log`.
    RenameAndCreate,
    /// logrotate `copytruncate`: `app.log` copied to `app.log.N`, then emptied.
    CopyTruncate,
    /// logrotate `compress` (delayed, so after the tailer read it): the oldest plain rotated
    /// file gzip'd to `app.log.N.gz` and removed.
    Gzip,
    /// The tailer rescans its globs (every second).
    Scan,
    /// The tailer reads what the open files have (continually).
    Read,
    /// The tailer saves the positions the spool holds durably (every second).
    Checkpoint,
    /// The spool's background fsync, without a checkpoint of positions.
    SyncSpool,
    /// kill -9 and restart: unsynced spool bytes and unsaved positions are lost.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..40).prop_map(Op::Append),
        1 => Just(Op::RenameAndCreate),
        1 => Just(Op::CopyTruncate),
        1 => Just(Op::Gzip),
        2 => Just(Op::Scan),
        3 => Just(Op::Read),
        2 => Just(Op::Checkpoint),
        1 => Just(Op::SyncSpool),
        1 => Just(Op::Crash),
    ]
}

struct Model {
    dir: tempfile::TempDir,
    fs: Arc<MemFs>,
    spool: Arc<Spool>,
    tailer: FileTailer,
    stats: Arc<FileStats>,
    written: u64,
    rotations: u32,
    /// Plain rotated files not gzip'd yet, oldest first.
    rotated: VecDeque<PathBuf>,
    /// `stats.lines` at the last checkpoint.
    lines_at_checkpoint: u64,
    /// Duplicates the crashes so far may cause.
    bound: u64,
}

impl Model {
    fn new() -> Model {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let fs = Arc::new(MemFs::default());
        let spool = Arc::new(Spool::open(fs.clone(), SpoolConfig::default()).unwrap());
        let stats = Arc::new(FileStats::default());
        let tailer = Self::tailer(dir.path(), &spool, &stats);
        Model {
            dir,
            fs,
            spool,
            tailer,
            stats,
            written: 0,
            rotations: 0,
            rotated: VecDeque::new(),
            lines_at_checkpoint: 0,
            bound: 0,
        }
    }

    fn tailer(dir: &Path, spool: &Arc<Spool>, stats: &Arc<FileStats>) -> FileTailer {
        let source: FileSource = toml::from_str(&format!(
            "paths = [\"{}/logs/app.log*\"]\nread_gzip = true",
            dir.display()
        ))
        .unwrap();
        FileTailer::new(
            &[source],
            "model",
            spool.clone(),
            &dir.join("data"),
            stats.clone(),
        )
        .unwrap()
        .with_batch_bytes(4096)
    }

    fn app(&self) -> PathBuf {
        self.dir.path().join("logs/app.log")
    }

    fn lines(&self) -> u64 {
        self.stats.lines.load(Ordering::Relaxed)
    }

    fn read(&mut self) {
        while self.tailer.read_all() > 0 {}
    }

    fn checkpoint(&mut self) {
        self.tailer.checkpoint(true);
        self.lines_at_checkpoint = self.lines();
    }

    fn apply(&mut self, op: &Op) {
        let app = self.app();
        match op {
            Op::Append(n) => {
                let mut f = OpenOptions::new().create(true).append(true).open(&app).unwrap();
                for _ in 0..*n {
                    writeln!(
                        f,
                        "line {:06} {}",
                        self.written,
                        "x".repeat((self.written % 37) as usize)
                    )
                    .unwrap();
                    self.written += 1;
                }
            }
            Op::RenameAndCreate | Op::CopyTruncate if !app.exists() => {}
            Op::RenameAndCreate => {
                self.rotations += 1;
                let to = app.with_extension(format!("log.{}", self.rotations));
                std::fs::rename(&app, &to).unwrap();
                File::create(&app).unwrap();
                self.rotated.push_back(to);
            }
            Op::CopyTruncate => {
                self.rotations += 1;
                let to = app.with_extension(format!("log.{}", self.rotations));
                std::fs::copy(&app, &to).unwrap();
                OpenOptions::new()
                    .write(true)
                    .open(&app)
                    .unwrap()
                    .set_len(0)
                    .unwrap();
                self.rotated.push_back(to);
            }
            Op::Gzip => {
                let Some(plain) = self.rotated.pop_front() else {
                    return;
                };
                self.tailer.scan();
                self.read();
                self.checkpoint();
                let data = std::fs::read(&plain).unwrap();
                let gz = plain.with_extension(format!("{}.gz", plain.extension().unwrap().to_str().unwrap()));
                let mut enc =
                    flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
                enc.write_all(&data).unwrap();
                let file = enc.finish().unwrap();
                // Written a while ago: not a file still being compressed.
                file.set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
                    .unwrap();
                std::fs::remove_file(&plain).unwrap();
            }
            Op::Scan => self.tailer.scan(),
            Op::Read => self.read(),
            Op::Checkpoint => self.checkpoint(),
            Op::SyncSpool => {
                self.spool.sync().unwrap();
            }
            Op::Crash => {
                // What was read since the last checkpoint may be spooled durably without
                // its position saved: read again after the restart.
                self.bound += self.lines() - self.lines_at_checkpoint;
                self.fs.crash(0);
                self.spool = Arc::new(Spool::open(self.fs.clone(), SpoolConfig::default()).unwrap());
                self.tailer = Self::tailer(self.dir.path(), &self.spool, &self.stats);
                self.lines_at_checkpoint = self.lines();
            }
        }
    }

    /// How many times each line is in the spool.
    fn delivered(&self) -> BTreeMap<u64, u64> {
        let mut out = BTreeMap::new();
        let mut from = Position::default();
        loop {
            let batch = self.spool.read(from, 1 << 20).unwrap();
            for r in &batch.records {
                let req = ExportLogsServiceRequest::decode(&r.payload[..]).unwrap();
                for l in req
                    .resource_logs
                    .iter()
                    .flat_map(|r| &r.scope_logs)
                    .flat_map(|s| &s.log_records)
                {
                    let Some(Value::StringValue(body)) = l.body.as_ref().and_then(|b| b.value.as_ref())
                    else {
                        panic!("a line without a string body: {l:?}");
                    };
                    let seq = body.split(' ').nth(1).unwrap().parse().unwrap();
                    *out.entry(seq).or_default() += 1;
                }
            }
            if batch.records.is_empty() && batch.next == from {
                return out;
            }
            from = batch.next;
        }
    }
}

fn check(ops: &[Op]) {
    let mut m = Model::new();
    for op in ops {
        m.apply(op);
    }
    for _ in 0..2 {
        m.apply(&Op::Scan);
        m.apply(&Op::Read);
        m.apply(&Op::Checkpoint);
    }
    let got = m.delivered();
    let missing: Vec<u64> = (0..m.written).filter(|s| !got.contains_key(s)).collect();
    assert!(missing.is_empty(), "lines never delivered: {missing:?}");
    let duplicates: u64 = got.values().map(|n| n - 1).sum();
    assert!(
        duplicates <= m.bound,
        "{duplicates} duplicates, bound {}: {:?}",
        m.bound,
        got.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_line_is_delivered_and_duplicates_stay_within_the_bound(ops in prop::collection::vec(op(), 1..40)) {
        check(&ops);
    }
}

/// Issue 21: a file truncated to nothing when the tailer looked, then written and read, was
/// saved under a placeholder fingerprint; after a restart it was read again from its start.
#[test]
fn a_restart_after_copytruncate_resumes_the_rewritten_file() {
    use Op::*;
    check(&[
        Append(30),
        Scan,
        Read,
        Checkpoint,
        CopyTruncate,
        Scan,
        Append(30),
        Read,
        Checkpoint,
        Scan,
        Checkpoint,
        Crash,
    ]);
}

/// Each rotation kind, then a crash while the renamed file was half read.
#[test]
fn rotations_then_a_crash_resend_nothing_checkpointed() {
    use Op::*;
    check(&[
        Append(20),
        Scan,
        Read,
        Checkpoint,
        RenameAndCreate,
        Append(10),
        Read,
        Scan,
        Read,
        Checkpoint,
        CopyTruncate,
        Append(5),
        Scan,
        Read,
        SyncSpool,
        Gzip,
        Append(7),
        Read,
        Crash,
        Append(3),
        RenameAndCreate,
        Scan,
        Read,
        SyncSpool,
        Crash,
    ]);
}
