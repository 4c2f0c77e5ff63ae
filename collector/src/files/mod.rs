//! Tailing log files into the spool.
//!
//! One thread rescans the globs every second and reads every open file in turns of at most
//! 1 MiB. A file is identified by a fingerprint of its first line (up to 256 bytes; a file
//! without one yet waits) together with its device and inode, so renames keep their
//! position and a new file at an old path starts from zero. Rotation:
//!
//! - rename-and-create: the renamed file stays open and is read to its end; it is closed
//!   once no glob matches it and it has not grown for 5 s (deleted files likewise);
//! - copytruncate: a file shorter than the read position, or whose first line changed, is
//!   read again from the start.
//!
//! Lines go to the spool as OTLP log requests (one resource per file: `host.name`,
//! `filename`, the source's labels, and `obs.index_labels` naming those for the store).
//! Positions are checkpointed to `<data>/files.json` (written atomically) only once the
//! spool has fsynced the lines before them, so a crash re-reads at most the lines of the
//! last unsynced second and never skips one.
//!
//! Which file is which and where a restart resumes it (fingerprints, tails, the checkpoint
//! file `<data>/files.json`) is decided in `identity.rs`. Gzip'd files (`read_gzip = true`,
//! see `gz.rs`) are read through their decompressed content with the same fingerprints,
//! offsets and tail hashes, so the compressed copy of a file read partly goes on where it
//! stopped; without `read_gzip`, gzip'd files the globs match are skipped (not read as
//! binary lines).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{FileSource, Parse, StartAt};
use crate::otlp::string_kv;
use crate::parse;
use crate::spool::{Kind, Position, Spool};
pub(crate) use identity::{first_line_fingerprint, fnv, FINGERPRINT_BYTES};
use identity::{CheckpointFile, FileId, Saved};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;

mod identity;
#[cfg(test)]
mod tests;

/// Largest read and largest batch of lines per spool record (see `with_batch_bytes`).
const BATCH_BYTES: usize = 1 << 20;
const SCAN_EVERY: Duration = Duration::from_secs(1);
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
const CLOSE_IDLE: Duration = Duration::from_secs(5);

/// Counters, exported on the collector's `/metrics`.
#[derive(Debug, Default)]
pub struct FileStats {
    pub lines: AtomicU64,
    pub bytes: AtomicU64,
    pub truncated_lines: AtomicU64,
    /// Lines `drop_lines` / `keep_lines` kept from shipping.
    pub filtered_lines: AtomicU64,
    pub open_files: AtomicU64,
    pub rotations: AtomicU64,
    /// Bytes in watched files not read yet.
    pub lag_bytes: AtomicU64,
}

/// The (up to) 256 bytes before `offset`, hashed.
fn tail_hash(file: &File, offset: u64) -> u64 {
    let start = offset.saturating_sub(FINGERPRINT_BYTES as u64);
    let mut buf = vec![0u8; (offset - start) as usize];
    match file.read_exact_at(&mut buf, start) {
        Ok(()) => fnv(&buf),
        Err(_) => 0,
    }
}

/// The first line (up to 256 bytes) of a file, hashed; `None` until there is one.
fn fingerprint(file: &File) -> std::io::Result<Option<u64>> {
    let mut buf = [0u8; FINGERPRINT_BYTES];
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(first_line_fingerprint(&buf[..n]))
}

struct Source {
    cfg: FileSource,
    exclude: Vec<glob::Pattern>,
    multiline: Option<(regex::Regex, Duration)>,
    relabel: crate::relabel::Relabel,
    filter: crate::relabel::LineFilter,
}

struct Event {
    text: Vec<u8>,
    start: u64,
    last: Instant,
    meta: LineMeta,
}

/// What a container runtime said about a line: its time and stream.
#[derive(Debug, Clone, Copy, Default)]
struct LineMeta {
    time_ns: u64,
    stream: Option<&'static str>,
}

struct Tail {
    source: usize,
    id: FileId,
    path: PathBuf,
    file: File,
    /// Next byte to read.
    offset: u64,
    /// Bytes after the last newline, not yet a line.
    carry: Vec<u8>,
    /// Inside a line that was already cut at `max_line_bytes`.
    skipping: bool,
    event: Option<Event>,
    /// Parts of a container log line split by the runtime, and where the first began.
    partial: Vec<u8>,
    partial_start: u64,
    /// Labels of the container this file belongs to.
    labels: std::collections::BTreeMap<String, String>,
    batch: crate::logenc::LogRecords,
    grew: Instant,
    seen: bool,
    /// Set for a gzip'd file: read through its decompressed content, never grows.
    gz: Option<crate::gz::Gz>,
    /// When the last bytes were read (Unix ns): the lines' observed time.
    read_ns: u64,
}

impl Tail {
    /// Where a restart must resume so that nothing not yet spooled is lost.
    fn safe_offset(&self) -> u64 {
        match &self.event {
            Some(e) => e.start,
            None if !self.partial.is_empty() => self.partial_start,
            None if self.skipping => self.offset,
            None => self.offset - self.carry.len() as u64,
        }
    }
}

/// This machine's name, for `host.name`.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The file tailer; [`FileTailer::run`] on a thread of its own.
pub(crate) struct FileTailer {
    sources: Vec<Source>,
    spool: Arc<Spool>,
    state: PathBuf,
    tails: HashMap<(u64, u64), Tail>,
    saved: HashMap<FileId, Saved>,
    /// Spool positions and the file offsets they make safe, oldest first.
    pending: VecDeque<(Position, Saved)>,
    first_scan: bool,
    stats: Arc<FileStats>,
    batch_bytes: usize,
    host: String,
    /// Paths a relabel rule dropped: not read.
    ignored: HashSet<PathBuf>,
}

impl std::fmt::Debug for FileTailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTailer")
            .field("files", &self.tails.len())
            .finish()
    }
}

/// Compiles file sources: globs, multiline, relabel rules and line filters; errors name the
/// source and field (`obs config check` runs this too).
fn compile(sources: &[FileSource]) -> crate::Result<Vec<Source>> {
    let mut compiled = Vec::new();
    for (i, cfg) in sources.iter().enumerate() {
        let what = |field: &str| format!("[[collector.files]] #{} {field}", i + 1);
        for p in &cfg.paths {
            glob::Pattern::new(p)
                .map_err(|e| crate::error::config(format!("{}: {p:?}: {e}", what("paths"))))?;
        }
        let exclude = cfg
            .exclude
            .iter()
            .map(|p| {
                glob::Pattern::new(p)
                    .map_err(|e| crate::error::config(format!("{}: {p:?}: {e}", what("exclude"))))
            })
            .collect::<crate::Result<_>>()?;
        let multiline = match &cfg.multiline {
            Some(m) => Some((
                regex::Regex::new(&m.start)
                    .map_err(|e| crate::error::config(format!("{}: {e}", what("multiline.start"))))?,
                Duration::from_millis(m.timeout_ms),
            )),
            None => None,
        };
        let place = format!("[[collector.files]] #{}", i + 1);
        let relabel = crate::relabel::Relabel::compile(&cfg.relabel, &place)?;
        let filter = crate::relabel::LineFilter::compile(&cfg.drop_lines, &cfg.keep_lines, &place)?;
        compiled.push(Source {
            cfg: cfg.clone(),
            exclude,
            multiline,
            relabel,
            filter,
        });
    }
    Ok(compiled)
}

/// Checks the file sources of a config the way the collector compiles them at start.
pub fn check(sources: &[FileSource]) -> crate::Result<()> {
    compile(sources).map(drop)
}

impl FileTailer {
    /// Compiles the sources and loads saved positions from `data_dir/files.json`.
    pub(crate) fn new(
        sources: &[FileSource],
        host: &str,
        spool: Arc<Spool>,
        data_dir: &Path,
        stats: Arc<FileStats>,
    ) -> crate::Result<FileTailer> {
        let compiled = compile(sources)?;
        let state = data_dir.join("files.json");
        let saved = match std::fs::read(&state) {
            Ok(b) => match serde_json::from_slice::<CheckpointFile<Saved>>(&b) {
                Ok(c) => c.files.into_iter().map(|s| (s.id, s)).collect(),
                Err(e) => {
                    tracing::error!(file = %state.display(), error = %e, "file positions are unreadable; files are read from their start again");
                    HashMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(source) => {
                return Err(crate::Error::Read {
                    what: "file positions".into(),
                    path: state,
                    source,
                })
            }
        };
        Ok(FileTailer {
            sources: compiled,
            spool,
            state,
            tails: HashMap::new(),
            saved,
            pending: VecDeque::new(),
            first_scan: true,
            stats,
            batch_bytes: BATCH_BYTES,
            host: host.to_string(),
            ignored: HashSet::new(),
        })
    }

    /// Every position known to be spooled: saved ones, and those whose lines wait for the
    /// spool's fsync (a position saved later covers them, as the spool is written in order).
    fn known(&self) -> impl Iterator<Item = &Saved> {
        self.saved.values().chain(self.pending.iter().map(|(_, s)| s))
    }

    /// Caps the bytes read at once and the lines per spool record (at most 1 MiB): a
    /// record is never split across requests, so this bounds what a crash re-sends.
    pub(crate) fn with_batch_bytes(mut self, n: usize) -> Self {
        self.batch_bytes = n.clamp(4096, BATCH_BYTES);
        self
    }

    /// Tails until `stop` is set, then spools what it has and saves positions.
    pub(crate) fn run(mut self, stop: Arc<AtomicBool>) {
        let mut last_scan: Option<Instant> = None;
        let mut last_checkpoint = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if last_scan.is_none_or(|t| t.elapsed() >= SCAN_EVERY) {
                self.scan();
                last_scan = Some(Instant::now());
            }
            let read = self.read_all();
            self.flush_idle_events();
            if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                self.checkpoint(false);
                last_checkpoint = Instant::now();
            }
            if read == 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let keys: Vec<_> = self.tails.keys().copied().collect();
        for k in keys {
            self.flush_event(k);
            self.flush_batch(k);
        }
        self.checkpoint(true);
    }

    fn scan(&mut self) {
        for t in self.tails.values_mut() {
            t.seen = false;
        }
        let mut lag = 0;
        for si in 0..self.sources.len() {
            for pattern in self.sources[si].cfg.paths.clone() {
                let Ok(paths) = glob::glob(&pattern) else { continue };
                for path in paths.flatten() {
                    if self.sources[si].exclude.iter().any(|p| p.matches_path(&path)) {
                        continue;
                    }
                    if let Err(e) = self.consider(si, &path) {
                        tracing::debug!(path = %path.display(), error = %e, "cannot open a matched file yet");
                    }
                }
            }
        }
        let now = Instant::now();
        let mut closing = Vec::new();
        for (k, t) in &mut self.tails {
            if let Some(gz) = &t.gz {
                // Never grows nor rotates; closed once read and no longer matched.
                if !t.seen && gz.done() && now.duration_since(t.grew) >= CLOSE_IDLE {
                    closing.push(*k);
                }
                continue;
            }
            let len = t.file.metadata().map(|m| m.len()).unwrap_or(0);
            lag += len.saturating_sub(t.offset);
            if len < t.offset {
                tracing::info!(path = %t.path.display(), "file truncated (copytruncate rotation); reading it from the start");
                reset(t, &self.stats);
                t.id.fingerprint = fingerprint(&t.file).ok().flatten().unwrap_or(0);
            } else if let Ok(Some(fp)) = fingerprint(&t.file) {
                if fp != t.id.fingerprint {
                    if t.id.fingerprint != 0 {
                        tracing::info!(path = %t.path.display(), "file rewritten in place; reading it from the start");
                        reset(t, &self.stats);
                    }
                    t.id.fingerprint = fp;
                }
            }
            if !t.seen && len <= t.offset && now.duration_since(t.grew) >= CLOSE_IDLE {
                closing.push(*k);
            }
        }
        self.stats.lag_bytes.store(lag, Ordering::Relaxed);
        for k in closing {
            self.flush_event(k);
            self.flush_batch(k);
            if let Some(t) = self.tails.remove(&k) {
                tracing::debug!(path = %t.path.display(), "closed a rotated or deleted file read to its end");
            }
        }
        self.stats
            .open_files
            .store(self.tails.len() as u64, Ordering::Relaxed);
        self.first_scan = false;
    }

    fn consider(&mut self, si: usize, path: &Path) -> std::io::Result<()> {
        let meta = std::fs::metadata(path)?;
        if !meta.is_file() {
            return Ok(());
        }
        let key = (meta.dev(), meta.ino());
        if let Some(t) = self.tails.get_mut(&key) {
            t.seen = true;
            if t.path != path {
                tracing::debug!(from = %t.path.display(), to = %path.display(), "file renamed");
                t.path = path.to_path_buf();
            }
            return Ok(());
        }
        if self.ignored.contains(path) {
            return Ok(());
        }
        let source = &self.sources[si];
        let mut labels = source.cfg.labels.clone();
        labels.extend(crate::containers::labels(source.cfg.format, path));
        labels.insert("filename".into(), path.to_string_lossy().into_owned());
        let Some(labels) = source.relabel.apply(labels) else {
            tracing::debug!(path = %path.display(), "a relabel rule drops this file");
            self.ignored.insert(path.to_path_buf());
            return Ok(());
        };
        let file = File::open(path)?;
        let gzip = crate::gz::is_gzip(&file);
        if gzip && !source.cfg.read_gzip {
            tracing::info!(path = %path.display(), "not reading a gzip'd file (read_gzip = true reads them)");
            self.ignored.insert(path.to_path_buf());
            return Ok(());
        }
        let modified = meta.modified().ok().and_then(|m| m.elapsed().ok());
        if gzip && modified.is_some_and(|age| age < CLOSE_IDLE) {
            return Ok(()); // still being compressed: taken once it has been still for a while
        }
        let fp = match gzip {
            true => crate::gz::Gz::fingerprint(&file),
            false => fingerprint(&file),
        };
        let Some(fp) = fp? else {
            return Ok(());
        };
        let id = FileId {
            fingerprint: fp,
            device: meta.dev(),
            inode: meta.ino(),
        };
        // A saved position for this file, or for the same content under another inode (the
        // copy copytruncate leaves, the gzip'd copy logrotate makes): resumed only if the
        // bytes before it match.
        // A saved position for this content, under this inode or another (the copy
        // copytruncate leaves, the gzip'd copy logrotate makes): see `identity`.
        let start_at_end = self.first_scan && self.sources[si].cfg.start_at == StartAt::End;
        let (offset, gz) = if gzip {
            let tail_at = |o| {
                crate::gz::Gz::open(&file)
                    .and_then(|mut gz| gz.skip_to(o))
                    .ok()
                    .flatten()
            };
            let mut gz = crate::gz::Gz::open(&file)?;
            let offset = match identity::resume(self.known(), fp, tail_at) {
                Some(o) => o,
                None if start_at_end => u64::MAX,
                None => 0,
            };
            gz.skip_to(offset)?;
            (gz.pos(), Some(gz))
        } else {
            let len = meta.len();
            let tail_at = |o| (o <= len).then(|| tail_hash(&file, o));
            let offset = match identity::resume(self.known(), fp, tail_at) {
                Some(o) => o,
                None if start_at_end => len,
                None => 0,
            };
            (offset, None)
        };
        tracing::debug!(path = %path.display(), offset, gzip, "watching");
        self.tails.insert(
            key,
            Tail {
                source: si,
                id,
                path: path.to_path_buf(),
                file,
                offset,
                carry: Vec::new(),
                skipping: false,
                event: None,
                partial: Vec::new(),
                partial_start: 0,
                labels,
                batch: Default::default(),
                grew: Instant::now(),
                seen: true,
                gz,
                read_ns: 0,
            },
        );
        Ok(())
    }

    fn read_all(&mut self) -> usize {
        let keys: Vec<_> = self.tails.keys().copied().collect();
        let mut total = 0;
        let read_bytes = self.batch_bytes;
        let mut buf = vec![0u8; read_bytes];
        for k in keys {
            let Some(t) = self.tails.get_mut(&k) else { continue };
            let read = match &mut t.gz {
                Some(gz) => gz.read(&mut buf),
                None => t.file.read_at(&mut buf, t.offset),
            };
            let n = match read {
                Ok(n) => n,
                Err(e) if t.gz.is_some() => {
                    tracing::warn!(path = %t.path.display(), error = %e, offset = t.offset, "a gzip'd file is damaged or cut short: read up to here");
                    0
                }
                Err(e) => {
                    tracing::warn!(path = %t.path.display(), error = %e, "read failed");
                    continue;
                }
            };
            if n > 0 && t.gz.is_none() && !same_content(t) {
                tracing::info!(path = %t.path.display(), "file rewritten in place; reading it from the start");
                reset(t, &self.stats);
                total += n;
                continue;
            }
            if n > 0 {
                total += n;
                t.offset += n as u64;
                t.grew = Instant::now();
                t.read_ns = crate::now_ns();
                self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
                self.lines(k, &buf[..n]);
            }
            if n == 0
                && self
                    .tails
                    .get(&k)
                    .is_some_and(|t| t.gz.as_ref().is_some_and(|g| g.done()))
            {
                self.last_line(k);
            }
            if self
                .tails
                .get(&k)
                .is_some_and(|t| t.batch.bytes() >= read_bytes || n < read_bytes)
            {
                self.flush_batch(k);
            }
            if let Some(t) = self.tails.get_mut(&k) {
                let safe = t.safe_offset();
                if let Some(gz) = &mut t.gz {
                    gz.forget_before(safe);
                }
            }
        }
        total
    }

    /// At the end of a file that never grows (gzip'd): its last line needs no newline.
    fn last_line(&mut self, k: (u64, u64)) {
        let Some(t) = self.tails.get_mut(&k) else { return };
        if t.carry.is_empty() {
            return;
        }
        let line = std::mem::take(&mut t.carry);
        let at = t.offset - line.len() as u64;
        self.stats.lines.fetch_add(1, Ordering::Relaxed);
        self.line(k, &line, at);
    }

    /// Splits new bytes into lines, cutting long ones, and hands them on.
    fn lines(&mut self, k: (u64, u64), new: &[u8]) {
        let t = self.tails.get_mut(&k).expect("tail exists");
        let max = self.sources[t.source].cfg.max_line_bytes;
        let mut data = std::mem::take(&mut t.carry);
        data.extend_from_slice(new);
        let base = t.offset - data.len() as u64;
        let mut start = 0;
        let mut out: Vec<(usize, usize)> = Vec::new();
        let mut truncated = 0;
        while let Some(nl) = memchr::memchr(b'\n', &data[start..]) {
            let end = start + nl;
            if t.skipping {
                t.skipping = false;
            } else {
                let mut line_end = end;
                if line_end > start && data[line_end - 1] == b'\r' {
                    line_end -= 1;
                }
                if line_end - start > max {
                    truncated += 1;
                    line_end = start + max;
                }
                out.push((start, line_end));
            }
            start = end + 1;
        }
        let rest = &data[start..];
        if t.skipping {
        } else if rest.len() > max {
            out.push((start, start + max));
            truncated += 1;
            t.skipping = true;
        } else {
            t.carry = rest.to_vec();
        }
        self.stats.truncated_lines.fetch_add(truncated, Ordering::Relaxed);
        self.stats.lines.fetch_add(out.len() as u64, Ordering::Relaxed);
        for (s, e) in out {
            self.line(k, &data[s..e], base + s as u64);
        }
    }

    /// One line: starts or continues a multiline event, or becomes a record.
    fn line(&mut self, k: (u64, u64), line: &[u8], at: u64) {
        let t = self.tails.get_mut(&k).expect("tail exists");
        let source = &self.sources[t.source];
        let mut meta = LineMeta::default();
        let mut at = at;
        let joined;
        let line = match crate::containers::decode(source.cfg.format, line) {
            None => line,
            Some(d) => {
                meta = LineMeta {
                    time_ns: d.time_ns,
                    stream: d.stream,
                };
                if t.partial.is_empty() {
                    t.partial_start = at;
                }
                if d.partial && t.partial.len() + d.text.len() < source.cfg.max_line_bytes {
                    t.partial.extend_from_slice(&d.text);
                    return;
                }
                t.partial.extend_from_slice(&d.text);
                at = t.partial_start;
                joined = std::mem::take(&mut t.partial);
                &joined[..]
            }
        };
        let Some((start, _)) = &source.multiline else {
            push_record(t, source, line, meta, &self.stats);
            return;
        };
        let starts = start.is_match(&String::from_utf8_lossy(line));
        match &mut t.event {
            Some(e) if !starts && e.text.len() + line.len() < source.cfg.max_line_bytes => {
                e.text.push(b'\n');
                e.text.extend_from_slice(line);
                e.last = Instant::now();
            }
            _ => {
                if let Some(e) = t.event.take() {
                    push_record(t, source, &e.text, e.meta, &self.stats);
                }
                t.event = Some(Event {
                    text: line.to_vec(),
                    start: at,
                    last: Instant::now(),
                    meta,
                });
            }
        }
    }

    fn flush_event(&mut self, k: (u64, u64)) {
        let Some(t) = self.tails.get_mut(&k) else { return };
        if let Some(e) = t.event.take() {
            push_record(t, &self.sources[t.source], &e.text, e.meta, &self.stats);
        }
    }

    fn flush_idle_events(&mut self) {
        let idle: Vec<_> = self
            .tails
            .iter()
            .filter(|(_, t)| {
                let timeout = self.sources[t.source].multiline.as_ref().map(|m| m.1);
                t.event
                    .as_ref()
                    .zip(timeout)
                    .is_some_and(|(e, to)| e.last.elapsed() >= to)
            })
            .map(|(k, _)| *k)
            .collect();
        for k in idle {
            self.flush_event(k);
            self.flush_batch(k);
        }
    }

    /// Appends the file's pending records to the spool (blocking while it is full).
    fn flush_batch(&mut self, k: (u64, u64)) {
        let Some(t) = self.tails.get_mut(&k) else { return };
        if t.batch.is_empty() {
            return;
        }
        // One resource per file: host.name, service.name from a `service_name` label, and
        // every other label as an attribute the store indexes (`obs.index_labels`).
        let mut attributes = vec![string_kv("host.name", &self.host)];
        let mut index = Vec::new();
        for (k, v) in &t.labels {
            if k == "service_name" {
                attributes.push(string_kv("service.name", v));
            } else {
                attributes.push(string_kv(k, v));
                index.push(k.as_str());
            }
        }
        attributes.push(string_kv("obs.index_labels", &index.join(",")));
        let resource = Resource {
            attributes,
            ..Default::default()
        };
        let scope = InstrumentationScope {
            name: "obs-collector/files".into(),
            ..Default::default()
        };
        let header = t.batch.header(&resource, &scope);
        loop {
            match self.spool.append_parts(Kind::Logs, &[&header, t.batch.records()]) {
                Ok(pos) => {
                    t.batch.clear();
                    let offset = t.safe_offset();
                    let saved = Saved {
                        id: t.id,
                        offset,
                        tail: match &t.gz {
                            Some(gz) => gz.tail_hash(offset),
                            None => tail_hash(&t.file, offset),
                        },
                        path: t.path.clone(),
                        seen: crate::now_secs(),
                    };
                    self.pending.push_back((pos, saved));
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot write to the spool; retrying in 1 s");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    /// Saves the positions that the spool holds durably. The spool is fsynced in the
    /// background ([`Spool::sync_in_background`]); with `sync`, here and now (at the end).
    fn checkpoint(&mut self, sync: bool) {
        let durable = match sync {
            false => self.spool.durable(),
            true => match self.spool.sync() {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "cannot sync the spool; positions not saved");
                    return;
                }
            },
        };
        let mut changed = false;
        while self.pending.front().is_some_and(|p| p.0 <= durable) {
            let (_, saved) = self.pending.pop_front().expect("front exists");
            self.saved.insert(saved.id, saved);
            changed = true;
        }
        // Forget files no longer tailed and no longer on disk, and the content that
        // copytruncate replaced, a while after.
        let live: HashSet<FileId> = self.tails.values().map(|t| t.id).collect();
        let before = self.saved.len();
        let now = crate::now_secs();
        let tails = &self.tails;
        self.saved.retain(|id, s| {
            let superseded = tails.contains_key(&(id.device, id.inode)) && !live.contains(id);
            identity::keep(s, live.contains(id), superseded, s.path.exists(), now)
        });
        self.ignored.retain(|p| p.exists());
        changed |= self.saved.len() != before;
        if changed {
            let file = CheckpointFile {
                version: 1,
                files: self.saved.values().collect(),
            };
            if let Err(e) = write_atomic(&self.state, &serde_json::to_vec(&file).expect("serializable")) {
                tracing::error!(file = %self.state.display(), error = %e, "cannot save file positions");
            }
        }
    }
}

/// Whether bytes just read at `t.offset` belong to the content `t` fingerprinted: a file
/// rewritten in place between two scans (copytruncate, then more lines than were read) is
/// caught here, before what was read of the new content is taken for the old one's
/// continuation. A fingerprint still unknown, or read from the start, is learnt.
fn same_content(t: &mut Tail) -> bool {
    match fingerprint(&t.file) {
        Ok(Some(fp)) if fp != t.id.fingerprint => {
            let learnt = t.offset == 0 || t.id.fingerprint == 0;
            t.id.fingerprint = fp;
            learnt
        }
        _ => true,
    }
}

fn reset(t: &mut Tail, stats: &FileStats) {
    t.offset = 0;
    t.carry.clear();
    t.skipping = false;
    t.event = None;
    t.grew = Instant::now();
    stats.rotations.fetch_add(1, Ordering::Relaxed);
}

fn push_record(t: &mut Tail, source: &Source, line: &[u8], meta: LineMeta, stats: &FileStats) {
    if !source.filter.passes(line) {
        stats.filtered_lines.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut attributes = match source.cfg.parse {
        Some(Parse::Json) => parse::json_fields(line),
        Some(Parse::Logfmt) => parse::logfmt_fields(line),
        None => Vec::new(),
    };
    let (severity_number, severity_text) = parse::severity_from_fields(&attributes)
        .or_else(|| parse::detect_severity(line))
        .map_or((0, ""), |(n, s)| (n, s));
    if let Some(s) = meta.stream {
        attributes.push(string_kv("stream", s));
    }
    t.batch.push(
        meta.time_ns,
        t.read_ns,
        (severity_number, severity_text),
        line,
        &attributes,
    );
}

/// Write, fsync, rename: the file is either the old or the new version after a crash.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}
