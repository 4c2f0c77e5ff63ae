//! The write path: decoded batch -> WAL append + fsync -> apply to the indexes (on the WAL
//! writer thread, in sequence order) -> acknowledge. A committer task commits the indexes
//! every [`COMMIT_INTERVAL`] (which makes new data searchable; every few intervals under heavy
//! ingest, see [`BUSY_BYTES`]), then deletes the WAL segments
//! the commit made redundant, and applies retention.
//!
//! On open, the WAL is replayed into the indexes; each index skips records it already holds
//! (see `logs.rs`), so a crash at any point neither loses nor duplicates acknowledged data.
//! Metrics go to the TSDB head (`tsdb/`), which is written out as a block every
//! [`FLUSH_INTERVAL`]; the WAL keeps every record whose samples are still only in memory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::Retention;
use crate::errors::extract::ErrorEvent;
use crate::errors::{ErrorsConfig, Tracker};
use crate::limits::{IngestLimits, Refused, RefusedCounts};
use crate::logs::LogIndex;
use crate::model::{LogBatch, SpanBatch};
use crate::partitions::IndexError;
use crate::traces::TraceIndex;
use crate::tsdb::block::BlockError;
use crate::tsdb::{SampleBatch, Tsdb, FLUSH_INTERVAL};
use crate::wal::{Kind, ReplayReport, Wal, WalError};

/// How often new data is committed (and so becomes searchable).
pub(crate) const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Under heavy ingest — at least [`BUSY_BYTES`] of log lines since the last commit — commits
/// come only every [`BUSY_COMMIT_TICKS`] intervals. Each commit writes a segment per indexing thread,
/// and a segment's flush and its later merges cost nearly as much small as large: every segment
/// holds most of the vocabulary of numbers and id pieces. (A collector catching up after an
/// outage pushes this hard.) Search and tail lag by that much more while it lasts.
const BUSY_BYTES: u64 = 4 << 20;
const BUSY_COMMIT_TICKS: u32 = 3;

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IngestError {
    /// The input is wrong; retrying will not help (400).
    #[error("{0}")]
    BadRequest(String),
    /// The store cannot write now; a retry may help (503).
    #[error("{0}")]
    Unavailable(String),
    /// The push is over an ingest limit and was refused whole (400; OTLP: partial success).
    #[error("{0}")]
    Limit(String),
}

impl From<WalError> for IngestError {
    fn from(e: WalError) -> Self {
        match e {
            WalError::TooLarge(_) => IngestError::BadRequest(e.to_string()),
            other => IngestError::Unavailable(other.to_string()),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct IngestStats {
    pub(crate) log_lines: AtomicU64,
    pub(crate) log_bytes: AtomicU64,
    pub(crate) spans: AtomicU64,
    pub(crate) samples: AtomicU64,
    pub(crate) rejected_samples: AtomicU64,
    pub(crate) rejected_lines: AtomicU64,
    pub(crate) apply_errors: AtomicU64,
    pub(crate) commits: AtomicU64,
    /// Commits (or flushes, or retention passes) that failed and will be retried.
    pub(crate) commit_errors: AtomicU64,
    /// Pushes refused by an ingest limit.
    pub(crate) refused: RefusedCounts,
}

#[derive(Debug, Default)]
struct Applied {
    /// Highest sequence number applied to the indexes.
    through: u64,
    /// The first record that failed to index: the WAL keeps it (and all after it) so the next
    /// start indexes it again.
    first_failed: Option<u64>,
}

#[derive(Debug)]
struct Shared {
    logs: LogIndex,
    traces: TraceIndex,
    tsdb: Tsdb,
    errors: Tracker,
    /// Held while applying and committing.
    applied: Mutex<Applied>,
    /// Held by the committer's work and by snapshots, so they never interleave.
    maintenance: Mutex<()>,
    stats: IngestStats,
}

impl Shared {
    /// Applies a replayed record.
    fn apply_record(&self, seq: u64, kind: Kind, payload: &[u8]) {
        let undecodable = |e: postcard::Error| {
            tracing::error!(seq, ?kind, error = %e, "undecodable wal record; skipped");
            Ok(0)
        };
        match kind {
            Kind::Logs => self.apply_with(seq, || match LogBatch::decode(payload) {
                Ok(batch) => {
                    let levels = crate::logs::level_codes(&batch);
                    if !self.errors.holds(seq) {
                        self.errors.observe(seq, Tracker::replayed_logs(&batch, &levels));
                    }
                    self.logs.apply_with_levels(seq, &batch, &levels)
                }
                Err(e) => undecodable(e),
            }),
            Kind::Spans => self.apply_with(seq, || match SpanBatch::decode(payload) {
                Ok(batch) => {
                    if !self.errors.holds(seq) {
                        self.errors.observe(seq, self.errors.find_in_spans(&batch));
                    }
                    self.traces.apply(seq, &batch)
                }
                Err(e) => undecodable(e),
            }),
            Kind::Samples => self.apply_with(seq, || match SampleBatch::decode(payload) {
                Ok(batch) => {
                    self.tsdb.apply(seq, &batch);
                    Ok(batch.sample_count())
                }
                Err(e) => undecodable(e),
            }),
        }
    }

    fn apply_logs(&self, seq: u64, batch: &LogBatch, levels: &[u8], errors: Vec<ErrorEvent>) {
        self.apply_with(seq, || {
            self.errors.observe(seq, errors);
            self.logs.apply_with_levels(seq, batch, levels)
        });
    }

    fn apply_spans(&self, seq: u64, batch: &SpanBatch, errors: Vec<ErrorEvent>) {
        self.apply_with(seq, || {
            self.errors.observe(seq, errors);
            self.traces.apply(seq, batch)
        });
    }

    fn apply_samples(&self, seq: u64, batch: &SampleBatch) {
        self.apply_with(seq, || {
            self.tsdb.apply(seq, batch);
            Ok(batch.sample_count())
        });
    }

    /// Runs `index` for WAL record `seq` under the apply lock and advances `applied`; a record
    /// that fails to index keeps itself and everything after it in the WAL.
    fn apply_with(&self, seq: u64, index: impl FnOnce() -> Result<usize, IndexError>) {
        let mut applied = self.applied.lock().expect("apply lock");
        if let Err(e) = index() {
            self.stats.apply_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(seq, error = %e, "cannot index a wal record; it is indexed again on restart");
            applied.first_failed.get_or_insert(seq);
        }
        applied.through = seq;
    }
}

/// The oldest time kept by a retention period, in Unix ns.
fn cutoff_ns(retention: Duration) -> i64 {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    now.saturating_sub(i64::try_from(retention.as_nanos()).unwrap_or(i64::MAX))
}

/// The store's write side and the indexes it feeds.
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    wal: Wal,
    shared: Arc<Shared>,
    retention: Retention,
    limits: IngestLimits,
    data_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Metrics(#[from] BlockError),
}

impl Engine {
    /// Opens the indexes, replays the WAL into them and commits, with error tracking on its
    /// defaults.
    #[cfg(test)]
    pub(crate) fn open(data_dir: &Path, retention: Retention) -> Result<(Engine, ReplayReport), OpenError> {
        Engine::open_with(data_dir, retention, ErrorsConfig::default())
    }

    /// Opens the indexes and the error issues, replays the WAL into them and commits.
    pub(crate) fn open_with(
        data_dir: &Path,
        retention: Retention,
        errors: ErrorsConfig,
    ) -> Result<(Engine, ReplayReport), OpenError> {
        let errors = Tracker::open(data_dir, errors).map_err(|source| IndexError::Io {
            path: data_dir.join("errors"),
            source,
        })?;
        let logs = LogIndex::open(data_dir)?;
        let traces = TraceIndex::open(data_dir)?;
        let tsdb = Tsdb::open(data_dir)?;
        let min_next = logs
            .max_committed_seq()
            .max(traces.parts.max_committed_seq())
            .max(tsdb.persisted_through())
            .max(errors.wal_seq())
            + 1;
        let shared = Arc::new(Shared {
            logs,
            traces,
            tsdb,
            errors,
            applied: Mutex::new(Applied::default()),
            maintenance: Mutex::new(()),
            stats: IngestStats::default(),
        });
        let replay_target = shared.clone();
        let (wal, report) = Wal::open(&data_dir.join("wal"), min_next, &mut |rec| {
            replay_target.apply_record(rec.seq, rec.kind, &rec.payload)
        })?;
        let engine = Engine {
            wal,
            shared,
            retention,
            limits: IngestLimits::default(),
            data_dir: data_dir.to_path_buf(),
        };
        engine.commit()?;
        Ok((engine, report))
    }

    /// Applies ingest limits other than the defaults.
    pub(crate) fn with_limits(mut self, limits: IngestLimits) -> Engine {
        self.limits = limits;
        self
    }

    /// Counts a push refused by a limit and turns it into the error.
    fn refuse(&self, r: Refused) -> IngestError {
        self.shared.stats.refused.add(r.limit);
        IngestError::Limit(r.message)
    }

    /// Makes a log batch durable and indexed; returns once it is safe to acknowledge, with
    /// the number of lines refused for being older than the retention period.
    pub(crate) async fn ingest_logs(&self, mut batch: LogBatch) -> Result<usize, IngestError> {
        self.limits.check_logs(&batch).map_err(|r| self.refuse(r))?;
        let cutoff = cutoff_ns(self.retention.logs);
        let mut too_old = 0;
        for s in &mut batch.streams {
            let before = s.entries.len();
            s.entries.retain(|e| e.ts_ns >= cutoff);
            too_old += before - s.entries.len();
        }
        batch.streams.retain(|s| !s.entries.is_empty());
        self.shared
            .stats
            .rejected_lines
            .fetch_add(too_old as u64, Ordering::Relaxed);
        if batch.streams.is_empty() {
            return Ok(too_old);
        }
        let lines = batch.entry_count() as u64;
        let bytes: u64 = batch
            .streams
            .iter()
            .flat_map(|s| &s.entries)
            .map(|e| e.line.len() as u64)
            .sum();
        let levels = crate::logs::level_codes(&batch);
        let errors = self.shared.errors.annotate_logs(&mut batch, &levels);
        let payload = batch.encode();
        let shared = self.shared.clone();
        let apply = Box::new(move |seq| shared.apply_logs(seq, &batch, &levels, errors));
        self.wal.append(Kind::Logs, payload, apply).await?;
        self.shared.stats.log_lines.fetch_add(lines, Ordering::Relaxed);
        self.shared.stats.log_bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(too_old)
    }

    /// Makes spans durable and indexed; returns once it is safe to acknowledge, with the
    /// number refused for being older than the retention period.
    pub(crate) async fn ingest_spans(&self, mut batch: SpanBatch) -> Result<usize, IngestError> {
        let cutoff = cutoff_ns(self.retention.traces);
        let before = batch.spans.len();
        batch.spans.retain(|s| s.start_ns >= cutoff);
        let too_old = before - batch.spans.len();
        if batch.spans.is_empty() {
            return Ok(too_old);
        }
        let n = batch.spans.len() as u64;
        let errors = self.shared.errors.find_in_spans(&batch);
        let payload = batch.encode();
        let shared = self.shared.clone();
        let apply = Box::new(move |seq| shared.apply_spans(seq, &batch, errors));
        self.wal.append(Kind::Spans, payload, apply).await?;
        self.shared.stats.spans.fetch_add(n, Ordering::Relaxed);
        Ok(too_old)
    }

    /// Makes samples durable and queryable; returns once it is safe to acknowledge, with
    /// the number refused for being older than the metrics retention period.
    pub(crate) async fn ingest_samples(&self, mut batch: SampleBatch) -> Result<usize, IngestError> {
        self.limits.check_samples(&batch).map_err(|r| self.refuse(r))?;
        let cutoff_ms = cutoff_ns(self.retention.metrics) / 1_000_000;
        let mut too_old = 0;
        for s in &mut batch.series {
            let before = s.samples.len();
            s.samples.retain(|(t, _)| *t >= cutoff_ms);
            too_old += before - s.samples.len();
        }
        batch.series.retain(|s| !s.samples.is_empty());
        self.shared
            .stats
            .rejected_samples
            .fetch_add(too_old as u64, Ordering::Relaxed);
        if batch.series.is_empty() {
            return Ok(too_old);
        }
        let n = batch.sample_count() as u64;
        let payload = batch.encode();
        let shared = self.shared.clone();
        let apply = Box::new(move |seq| shared.apply_samples(seq, &batch));
        self.wal.append(Kind::Samples, payload, apply).await?;
        self.shared.stats.samples.fetch_add(n, Ordering::Relaxed);
        Ok(too_old)
    }

    /// Stores an OTLP metrics request (see `convert_metrics.rs` for the mapping); returns how
    /// many data points were not stored and why (OTLP's partial success).
    pub(crate) async fn ingest_otlp_metrics(
        &self,
        req: &opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
    ) -> Result<(usize, Option<String>), IngestError> {
        let converted = crate::convert_metrics::otlp_metrics(req);
        if let Err(r) = self.limits.check_samples(&converted.batch) {
            let points = converted.rejected + converted.batch.sample_count();
            return Ok((points, Some(self.refuse(r).to_string())));
        }
        self.shared.tsdb.set_metadata(converted.metadata);
        let too_old = self.ingest_samples(converted.batch).await?;
        let mut reason = converted.reason;
        if too_old > 0 && reason.is_none() {
            reason = Some("samples older than the retention period were not stored".into());
        }
        Ok((converted.rejected + too_old, reason))
    }

    /// Commits the indexes and deletes the WAL segments they no longer need. Blocking.
    pub(crate) fn commit(&self) -> Result<(), OpenError> {
        self.commit_forcing(false)
    }

    /// [`Engine::commit`]; `force` writes the error issues even when written recently.
    fn commit_forcing(&self, force: bool) -> Result<(), OpenError> {
        // Outside the apply lock: ingest waits only while the issues are serialised.
        if let Err(source) = self.shared.errors.persist(force) {
            let path = self.data_dir.join("errors");
            return Err(IndexError::Io { path, source }.into());
        }
        let keep_from = {
            let applied = self.shared.applied.lock().expect("apply lock");
            self.shared.logs.commit(applied.through)?;
            self.shared.traces.parts.commit(applied.through)?;
            let mut keep = applied.first_failed.unwrap_or(applied.through + 1);
            for unsaved in [
                self.shared.tsdb.keep_wal_from(),
                self.shared.errors.keep_wal_from(),
            ] {
                keep = keep.min(unsaved.unwrap_or(u64::MAX));
            }
            keep
        };
        self.wal.remove_through(keep_from - 1)?;
        self.shared.stats.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes the metrics head out as a block (then compacts) and commits. Blocking.
    pub(crate) fn flush_metrics(&self) -> Result<(), OpenError> {
        self.shared.tsdb.flush()?;
        self.commit()
    }

    /// At a clean shutdown, once no request is in flight: flushes the metrics head, commits,
    /// and leaves no WAL record that the indexes and blocks cover (a restart replays nothing).
    /// Blocking.
    pub(crate) fn close(&self) -> Result<(), OpenError> {
        let _maintenance = self.shared.maintenance.lock().expect("maintenance lock");
        self.flush_metrics()?;
        self.wal.roll()?;
        self.commit_forcing(true)
    }

    /// Writes a consistent copy of the data dir to `<data>/snapshots/latest` (replacing the
    /// previous one) and returns its path. Blocking.
    ///
    /// The metrics head is flushed to a block, every index partition committed and its
    /// writer closed after its merges, all under the apply lock; then every file is
    /// hard-linked (they are immutable from then on: tantivy segments, metrics blocks) and
    /// the WAL segments copied. Nothing is half-written: the copy opens like a store that
    /// stopped at that instant. Ingest waits for the few milliseconds the links take.
    pub(crate) fn snapshot(&self) -> Result<PathBuf, OpenError> {
        let _maintenance = self.shared.maintenance.lock().expect("maintenance lock");
        self.shared.tsdb.flush()?;
        let root = self.data_dir.join("snapshots");
        let dest = root.join("latest");
        let staging = root.join(format!("tmp-{}", std::process::id()));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| OpenError::Index(IndexError::Io { path, source })
        };
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(io(&staging))?;
        {
            let applied = self.shared.applied.lock().expect("apply lock");
            self.shared.logs.quiesce(applied.through)?;
            self.shared.traces.parts.quiesce(applied.through)?;
            self.shared
                .errors
                .persist(true)
                .map_err(io(&self.data_dir.join("errors")))?;
            link_tree(&self.data_dir, &staging, &root).map_err(|(p, e)| io(&p)(e))?;
        }
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&staging, &dest).map_err(io(&dest))?;
        Ok(dest)
    }

    /// Deletes data older than its retention period. Blocking.
    pub(crate) fn apply_retention(&self) -> Result<usize, OpenError> {
        let metrics = self
            .shared
            .tsdb
            .drop_before(cutoff_ns(self.retention.metrics) / 1_000_000);
        let logs = self.shared.logs.drop_before(cutoff_ns(self.retention.logs))?;
        self.shared.errors.drop_before(cutoff_ns(self.retention.logs));
        Ok(metrics
            + logs
            + self
                .shared
                .traces
                .parts
                .drop_before(cutoff_ns(self.retention.traces))?)
    }

    pub(crate) fn logs(&self) -> &LogIndex {
        &self.shared.logs
    }

    pub(crate) fn traces(&self) -> &TraceIndex {
        &self.shared.traces
    }

    pub(crate) fn tsdb(&self) -> &Tsdb {
        &self.shared.tsdb
    }

    pub(crate) fn errors(&self) -> &Tracker {
        &self.shared.errors
    }

    pub(crate) fn stats(&self) -> &IngestStats {
        &self.shared.stats
    }

    pub(crate) fn wal_bytes(&self) -> u64 {
        self.wal.disk_bytes()
    }

    pub(crate) fn retention(&self) -> &Retention {
        &self.retention
    }

    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Commits every [`COMMIT_INTERVAL`] and applies retention every minute until `stop`
    /// fires; then commits one last time.
    pub(crate) async fn run_committer(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(COMMIT_INTERVAL);
        let mut ticks: u64 = 0;
        let log_bytes = || self.shared.stats.log_bytes.load(Ordering::Relaxed);
        let mut pacer = CommitPacer::new(log_bytes());
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            let retention_due = ticks.is_multiple_of(60);
            let flush_due = stopping
                || (ticks > 0 && ticks.is_multiple_of(FLUSH_INTERVAL.as_secs()))
                || self.shared.tsdb.needs_flush();
            ticks += 1;
            if !pacer.due(log_bytes(), stopping || retention_due || flush_due) {
                continue;
            }
            let engine = self.clone();
            let result = tokio::task::spawn_blocking(move || {
                let _maintenance = engine.shared.maintenance.lock().expect("maintenance lock");
                if flush_due {
                    engine.flush_metrics()?;
                }
                engine.commit()?;
                if retention_due {
                    let dropped = engine.apply_retention()?;
                    if dropped > 0 {
                        tracing::info!(partitions = dropped, "retention dropped old partitions");
                    }
                }
                Ok::<_, OpenError>(())
            })
            .await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    self.shared.stats.commit_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "commit failed; will retry")
                }
                Err(e) => tracing::error!(error = %e, "commit task panicked"),
            }
            if stopping {
                break;
            }
        }
    }
}

/// Decides at each tick of the committer whether to commit (see [`BUSY_BYTES`]).
struct CommitPacer {
    /// Log bytes ingested at the last commit.
    committed_bytes: u64,
    /// Ticks since the last commit.
    waited: u32,
}

impl CommitPacer {
    fn new(log_bytes: u64) -> CommitPacer {
        CommitPacer {
            committed_bytes: log_bytes,
            waited: 0,
        }
    }

    /// Whether to commit now, given the log bytes ingested so far; `forced` commits anyway.
    fn due(&mut self, log_bytes: u64, forced: bool) -> bool {
        self.waited += 1;
        let busy = log_bytes.saturating_sub(self.committed_bytes) >= BUSY_BYTES;
        if busy && self.waited < BUSY_COMMIT_TICKS && !forced {
            return false;
        }
        (self.committed_bytes, self.waited) = (log_bytes, 0);
        true
    }
}

/// Hard-links every file under `from` into `to` (WAL segments, which grow in place, are
/// copied), skipping `skip` (the snapshots dir) and lock files.
fn link_tree(from: &Path, to: &Path, skip: &Path) -> Result<(), (PathBuf, std::io::Error)> {
    for entry in std::fs::read_dir(from).map_err(|e| (from.to_path_buf(), e))? {
        let entry = entry.map_err(|e| (from.to_path_buf(), e))?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| (path.clone(), e))?;
        if path == skip || entry.file_name().to_string_lossy().ends_with(".lock") {
            continue;
        }
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| (target.clone(), e))?;
            link_tree(&path, &target, skip)?;
        } else if path
            .parent()
            .is_some_and(|p| p.file_name().is_some_and(|n| n == "wal"))
        {
            std::fs::copy(&path, &target).map_err(|e| (path.clone(), e))?;
        } else {
            std::fs::hard_link(&path, &target).map_err(|e| (path.clone(), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_every_tick_unless_ingest_is_heavy() {
        let mut pacer = CommitPacer::new(0);
        let mut bytes = 0;
        let mut pattern = Vec::new();
        // Light: a commit every tick.
        for _ in 0..3 {
            bytes += BUSY_BYTES / 2;
            pattern.push(pacer.due(bytes, false));
        }
        assert_eq!(pattern, [true; 3]);
        // Heavy: a commit every BUSY_COMMIT_TICKS ticks, or when one is forced.
        pattern.clear();
        for tick in 0..7 {
            bytes += BUSY_BYTES;
            pattern.push(pacer.due(bytes, tick == 5));
        }
        assert_eq!(pattern, [false, false, true, false, false, true, false]);
        // Ingest stops: the heavy bytes left are committed at the end of the period, and then
        // light ingest is committed every tick again.
        assert!(!pacer.due(bytes, false));
        assert!(pacer.due(bytes, false));
        assert!(pacer.due(bytes + 1, false));
    }

    /// Regression (issue 21): after a clean shutdown the WAL kept segments that blocks and
    /// commits already covered (34 MiB after 2 M remote_written samples), replayed at every
    /// start.
    #[tokio::test]
    async fn a_clean_close_leaves_nothing_to_replay() {
        use crate::model::{LogEntry, LogStream};
        use crate::tsdb::SeriesSamples;
        let dir = tempfile::tempdir().unwrap();
        let retention = Retention::all(Duration::from_secs(100 * 365 * 86400));
        let now_ms = crate::api::params::now_ns() / 1_000_000;
        let samples = |n: i64| SampleBatch {
            series: vec![SeriesSamples {
                labels: vec![("__name__".into(), "up".into()), ("n".into(), n.to_string())],
                samples: (0..1000).map(|i| (now_ms - 60_000 + i, i as f64)).collect(),
            }],
        };
        let lines = LogBatch {
            streams: vec![LogStream {
                labels: [("job".to_string(), "api".to_string())].into(),
                entries: vec![LogEntry {
                    ts_ns: now_ms * 1_000_000,
                    line: "hello".into(),
                    metadata: Vec::new(),
                }],
            }],
        };
        let wal_bytes = |dir: &Path| -> Vec<u64> {
            let mut sizes: Vec<u64> = std::fs::read_dir(dir.join("wal"))
                .unwrap()
                .map(|e| e.unwrap().metadata().unwrap().len())
                .collect();
            sizes.sort();
            sizes
        };
        for round in 0..2 {
            let (engine, report) = Engine::open(dir.path(), retention).unwrap();
            assert_eq!(report.records, 0, "round {round}: nothing to replay");
            assert_eq!(
                engine.tsdb().series_labels(&[], i64::MIN, i64::MAX).len(),
                round as usize
            );
            engine.ingest_samples(samples(round)).await.unwrap();
            engine.ingest_logs(lines.clone()).await.unwrap();
            assert!(wal_bytes(dir.path()).iter().sum::<u64>() > 8_000);
            engine.close().unwrap();
            assert_eq!(wal_bytes(dir.path()), [8], "one empty segment: its header");
        }
        let (engine, _) = Engine::open(dir.path(), retention).unwrap();
        assert_eq!(engine.tsdb().series_labels(&[], i64::MIN, i64::MAX).len(), 2);
        assert_eq!(
            engine
                .wal
                .append(Kind::Logs, vec![1], Box::new(|_| {}))
                .await
                .unwrap(),
            5,
            "sequence numbers go on"
        );
    }
}
