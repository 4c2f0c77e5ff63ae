//! The disk spool: everything a source produces is appended here before the source's
//! position (or an OTLP client's request) is acknowledged, and the shipper reads it back
//! and acknowledges what the store accepted. It survives restarts, crashes and store
//! outages; it is bounded by size.
//!
//! # On-disk format (version 1)
//!
//! ```text
//! <spool>/00000000000000000001.seg   segments, numbered in write order, appended only
//!         ...
//!         ack                        what the store has accepted: u64 segment, u64 offset,
//!                                    u32 crc32 of the 16 bytes before (all little-endian)
//!         ack.<name>                 the same for each forward destination (see below)
//!         quarantine/<n>.seg         corrupt segments, moved aside and reported
//!
//! segment = "OBSSPL01" record*
//! record  = u32 len (of kind + payload) | u32 crc32(kind + payload) | u8 kind | payload
//! kind    = 1 logs | 2 metrics | 3 traces; payload = the OTLP Export*ServiceRequest protobuf
//! ```
//!
//! OTLP requests are plain concatenations of repeated fields, so the shipper sends several
//! records of one kind as one request by concatenating their payloads.
//!
//! # Consumers
//!
//! The store is consumer 0 (`ack`); each `[[collector.forward]]` destination is another
//! consumer with its own cursor (`ack.<name>`, by name so that reordering the config keeps
//! them; a new one starts with whatever the spool still holds). A segment is deleted once
//! every consumer has passed it. Backpressure waits for the store only: when the spool is full
//! and the store already has the oldest segment, it goes at once, and forwards still behind it
//! lose it (counted and logged), so a dead forward never holds the node back.
//!
//! # Invariants and recovery
//!
//! - A record is written with one `write` and counted only after it; a crash can leave a torn
//!   record at the end of the newest segment, which `open` truncates (and counts).
//! - [`Spool::sync`] fsyncs every segment written since the last sync and returns the durable
//!   [`Position`]; sources checkpoint only positions at or before it. Segments are synced
//!   oldest first and the position moves only after all of them, so durability is a single
//!   position. In the collector a thread syncs every [`SYNC_EVERY`] (`sync_in_background`),
//!   off the sources' path; the OTLP receiver and journald also sync before they answer.
//! - Every restart starts a new segment, so nothing is ever appended after a torn tail.
//! - Segments before the acknowledged position are deleted. When appending would exceed
//!   `max_bytes`, the writer first waits (backpressure) up to `full_wait` for the shipper to
//!   free space, then deletes the oldest segment, counting the records it held, and logs it.
//! - A record that fails its checksum quarantines its segment: the records before it were
//!   delivered, the rest is kept aside for inspection, and shipping goes on with the next
//!   segment. Never a panic, never a crash loop.

mod fs;

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[cfg(test)]
pub(crate) use fs::MemFs;
pub(crate) use fs::{OsFs, SpoolFs};

const MAGIC: &[u8; 8] = b"OBSSPL01";
const HEADER: u64 = MAGIC.len() as u64;
const RECORD_HEADER: usize = 9;
const ACK_FILE: &str = "ack";
/// How often the collector's spool is fsynced in the background (fsync on an interval).
pub(crate) const SYNC_EVERY: Duration = Duration::from_millis(200);

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Logs = 1,
    Metrics = 2,
    Traces = 3,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Logs),
            2 => Some(Kind::Metrics),
            3 => Some(Kind::Traces),
            _ => None,
        }
    }
}

/// A place in the spool: a segment number and a byte offset in it. Ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// One record read back, with the position just after it (what to acknowledge).
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub kind: Kind,
    pub payload: Vec<u8>,
    pub end: Position,
}

/// What [`Spool::read`] found, and where the next read starts.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub records: Vec<Record>,
    pub next: Position,
}

#[derive(Debug, Clone)]
pub(crate) struct SpoolConfig {
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// All segments together stay under this.
    pub max_bytes: u64,
    /// How long a full spool holds writers back before it drops the oldest segment.
    pub full_wait: Duration,
    /// Names of the consumers after the store (consumer 0): consumer `i` is `consumers[i - 1]`.
    pub consumers: Vec<String>,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            segment_bytes: 16 << 20,
            max_bytes: 1 << 30,
            full_wait: Duration::from_secs(30),
            consumers: Vec::new(),
        }
    }
}

/// Counters, exported on the collector's `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct SpoolStats {
    pub appended_records: AtomicU64,
    pub appended_bytes: AtomicU64,
    pub dropped_records: AtomicU64,
    pub dropped_bytes: AtomicU64,
    pub quarantined_segments: AtomicU64,
    /// Records forward destinations lost to a full spool (the store had them).
    pub forward_dropped_records: AtomicU64,
    pub torn_bytes: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    /// Segment number -> bytes written to it.
    segments: BTreeMap<u64, u64>,
    active: u64,
    durable: Position,
    /// Per consumer: what it has accepted.
    acks: Vec<Position>,
}

impl Inner {
    fn total(&self) -> u64 {
        self.segments.values().sum()
    }

    /// Where the slowest consumer is.
    fn min_ack(&self) -> Position {
        self.acks.iter().copied().min().unwrap_or_default()
    }
}

/// The spool. Blocking (file I/O under a mutex); call it from threads or `spawn_blocking`.
#[derive(Debug)]
pub(crate) struct Spool {
    fs: Arc<dyn SpoolFs>,
    cfg: SpoolConfig,
    inner: Mutex<Inner>,
    /// Per consumer, the position its ack file holds; held while the file is written, so
    /// that one consumer's writes never cross and the spool lock is not held for them.
    ack_files: Vec<Mutex<Position>>,
    space: Condvar,
    /// Woken on every append, for the shipper.
    pub appended: tokio::sync::Notify,
    pub stats: SpoolStats,
}

/// How much of a segment holds whole records, by their lengths (checksums are checked when
/// the records are read).
fn intact_len(fs: &dyn SpoolFs, name: &str, len: u64) -> io::Result<u64> {
    let mut at = HEADER;
    while at < len {
        let head = fs.read_at(name, at, 4)?;
        let Ok(head) = <[u8; 4]>::try_from(head.as_slice()) else {
            break;
        };
        let end = at + 8 + u64::from(u32::from_le_bytes(head));
        if end > len {
            break;
        }
        at = end;
    }
    Ok(at.min(len))
}

fn segment_name(n: u64) -> String {
    format!("{n:020}.seg")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_suffix(".seg")?.parse().ok()
}

/// The file holding consumer `i`'s cursor.
fn ack_file(cfg: &SpoolConfig, i: usize) -> String {
    match i {
        0 => ACK_FILE.to_string(),
        i => format!("{ACK_FILE}.{}", cfg.consumers[i - 1]),
    }
}

fn encode_ack(p: Position) -> Vec<u8> {
    let mut b = Vec::with_capacity(20);
    b.extend_from_slice(&p.segment.to_le_bytes());
    b.extend_from_slice(&p.offset.to_le_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn decode_ack(b: &[u8]) -> Option<Position> {
    let (body, crc) = (b.get(..16)?, b.get(16..20)?);
    (crc32fast::hash(body).to_le_bytes() == crc).then(|| Position {
        segment: u64::from_le_bytes(body[..8].try_into().expect("8 bytes")),
        offset: u64::from_le_bytes(body[8..].try_into().expect("8 bytes")),
    })
}

/// A record parsed in place: its kind, its payload, and the bytes it took.
type Parsed<'a> = (Kind, &'a [u8], usize);

/// Parses one record at the start of `buf`: `Ok(None)` if `buf` ends inside it,
/// `Err` if its length or checksum is wrong.
fn parse_record(buf: &[u8]) -> Result<Option<Parsed<'_>>, String> {
    let Some(head) = buf.get(..8) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
    if len == 0 {
        return Err("a record of length 0".into());
    }
    let Some(body) = buf.get(8..8 + len) else {
        return Ok(None);
    };
    if crc32fast::hash(body) != crc {
        return Err("a record whose checksum does not match".into());
    }
    let kind = Kind::from_u8(body[0]).ok_or_else(|| format!("a record of unknown kind {}", body[0]))?;
    Ok(Some((kind, &body[1..], 8 + len)))
}

impl Spool {
    /// Opens (or creates) the spool: deletes acknowledged segments, truncates a torn tail,
    /// quarantines a newest segment with a bad header, and starts a new segment.
    pub(crate) fn open(fs: Arc<dyn SpoolFs>, cfg: SpoolConfig) -> io::Result<Spool> {
        if cfg.max_bytes < 2 * cfg.segment_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "spool max_bytes ({}) must be at least twice segment_bytes ({})",
                    cfg.max_bytes, cfg.segment_bytes
                ),
            ));
        }
        let stats = SpoolStats::default();
        let names = fs.list()?;
        let mut acks = Vec::new();
        for i in 0..=cfg.consumers.len() {
            let file = ack_file(&cfg, i);
            acks.push(match names.contains(&file) {
                true => decode_ack(&fs.read_at(&file, 0, 20)?).unwrap_or_else(|| {
                    tracing::warn!(file, "a spool ack file is damaged; resending everything spooled");
                    Position::default()
                }),
                false => Position::default(),
            });
        }
        let acked = acks.iter().copied().min().unwrap_or_default();
        let mut segments = BTreeMap::new();
        let highest = names
            .iter()
            .filter_map(|n| parse_segment_name(n))
            .max()
            .unwrap_or(0);
        for n in names.iter().filter_map(|n| parse_segment_name(n)) {
            if n < acked.segment {
                fs.remove(&segment_name(n))?;
            } else {
                segments.insert(n, fs.len(&segment_name(n))?);
            }
        }
        // A segment whose creation a power cut interrupted holds part of its header at most.
        let stubs: Vec<(u64, u64)> = segments
            .iter()
            .filter(|(_, &l)| l < HEADER)
            .map(|(&n, &l)| (n, l))
            .collect();
        for (n, len) in stubs {
            let name = segment_name(n);
            if MAGIC.starts_with(&fs.read_at(&name, 0, len as usize)?) {
                tracing::warn!(segment = %name, bytes = len, "removing a spool segment a crash interrupted as it was created");
                fs.remove(&name)?;
                stats.torn_bytes.fetch_add(len, Ordering::Relaxed);
                segments.remove(&n);
            }
        }
        // Syncs cover several segments at once, so a power cut can also cut the last record
        // of a segment before the newest: a walk over record lengths finds it.
        let older: Vec<(u64, u64)> = segments.iter().rev().skip(1).map(|(&n, &l)| (n, l)).collect();
        for (n, len) in older {
            let name = segment_name(n);
            let intact = intact_len(fs.as_ref(), &name, len)?;
            if intact < len {
                tracing::warn!(segment = %name, bytes = len - intact, "truncating a torn write at the end of a spool segment (a power cut interrupted it; it was never acknowledged)");
                fs.truncate(&name, intact)?;
                stats.torn_bytes.fetch_add(len - intact, Ordering::Relaxed);
                segments.insert(n, intact);
            }
        }
        if let Some((&last, &len)) = segments.iter().next_back() {
            let name = segment_name(last);
            let data = fs.read_at(&name, 0, len as usize)?;
            if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
                tracing::error!(segment = %name, "spool segment has no valid header; quarantined");
                fs.quarantine(&name)?;
                stats.quarantined_segments.fetch_add(1, Ordering::Relaxed);
                segments.remove(&last);
            } else {
                let mut at = MAGIC.len();
                while let Ok(Some((_, _, used))) = parse_record(&data[at..]) {
                    at += used;
                }
                if at < data.len() {
                    let torn = data.len() - at;
                    tracing::warn!(segment = %name, bytes = torn, "truncating a torn write at the end of the spool (a crash interrupted it; it was never acknowledged)");
                    fs.truncate(&name, at as u64)?;
                    stats.torn_bytes.fetch_add(torn as u64, Ordering::Relaxed);
                    segments.insert(last, at as u64);
                }
            }
        }
        // Past the acknowledged segment too: a segment file whose creation a crash lost
        // must not be reused, or reading would skip what lands in it.
        let active = segments
            .keys()
            .next_back()
            .map_or(1, |l| l + 1)
            .max(acked.segment + 1)
            .max(highest + 1);
        Ok(Spool {
            fs,
            cfg,
            ack_files: acks.iter().map(|&a| Mutex::new(a)).collect(),
            inner: Mutex::new(Inner {
                segments,
                active,
                durable: Position {
                    segment: active,
                    offset: 0,
                },
                acks,
            }),
            space: Condvar::new(),
            appended: tokio::sync::Notify::new(),
            stats,
        })
    }

    /// Appends one record; returns the position after it. Blocks while the spool is full,
    /// up to `full_wait`, then drops the oldest segment to make room.
    pub(crate) fn append(&self, kind: Kind, payload: &[u8]) -> io::Result<Position> {
        self.append_parts(kind, &[payload])
    }

    /// [`Spool::append`] with the payload in parts, written one after the other.
    pub(crate) fn append_parts(&self, kind: Kind, parts: &[&[u8]]) -> io::Result<Position> {
        let payload_len: usize = parts.iter().map(|p| p.len()).sum();
        let len = (RECORD_HEADER + payload_len) as u64;
        if len + HEADER > self.cfg.segment_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a {}-byte record does not fit in a {}-byte spool segment",
                    payload_len, self.cfg.segment_bytes
                ),
            ));
        }
        let mut inner = self.inner.lock().expect("spool lock");
        let deadline = Instant::now() + self.cfg.full_wait;
        while inner.total() + len + HEADER > self.cfg.max_bytes {
            let now = Instant::now();
            let store_behind = inner.segments.iter().next().is_some_and(|(&oldest, &len)| {
                inner.acks[0]
                    < Position {
                        segment: oldest,
                        offset: len,
                    }
            });
            if now < deadline && store_behind {
                inner = self
                    .space
                    .wait_timeout(inner, deadline - now)
                    .expect("spool lock")
                    .0;
            } else {
                self.drop_oldest(&mut inner)?;
            }
        }
        let seg_len = inner.segments.get(&inner.active).copied();
        if seg_len.is_some_and(|l| l + len > self.cfg.segment_bytes) {
            inner.active += 1; // the next sync covers this segment too
        }
        let name = segment_name(inner.active);
        let active = inner.active;
        if let std::collections::btree_map::Entry::Vacant(e) = inner.segments.entry(active) {
            self.fs.append(&name, &[MAGIC])?;
            e.insert(HEADER);
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&[kind as u8]);
        parts.iter().for_each(|p| h.update(p));
        let mut head = [0u8; RECORD_HEADER];
        head[..4].copy_from_slice(&((payload_len + 1) as u32).to_le_bytes());
        head[4..8].copy_from_slice(&h.finalize().to_le_bytes());
        head[8] = kind as u8;
        let mut all = Vec::with_capacity(parts.len() + 1);
        all.push(&head[..]);
        all.extend_from_slice(parts);
        self.fs.append(&name, &all)?;
        let end = inner.segments.get_mut(&active).expect("segment just ensured");
        *end += len;
        let pos = Position {
            segment: active,
            offset: *end,
        };
        drop(inner);
        self.stats.appended_records.fetch_add(1, Ordering::Relaxed);
        self.stats.appended_bytes.fetch_add(len, Ordering::Relaxed);
        self.appended.notify_one();
        Ok(pos)
    }

    fn drop_oldest(&self, inner: &mut Inner) -> io::Result<()> {
        let Some((&oldest, &len)) = inner.segments.iter().next() else {
            return Ok(());
        };
        if oldest == inner.active {
            // Only the segment being written is left: start another so this one can go.
            self.sync_locked(inner)?;
            inner.active += 1;
        }
        let name = segment_name(oldest);
        let data = self
            .fs
            .read_at(&name, HEADER, len.saturating_sub(HEADER) as usize)?;
        let mut records = 0u64;
        let mut at = 0usize;
        while let Some(head) = data.get(at..at + 4) {
            records += 1;
            at += 8 + u32::from_le_bytes(head.try_into().expect("4 bytes")) as usize;
        }
        self.fs.remove(&name)?;
        inner.segments.remove(&oldest);
        let mut losers = Vec::new();
        for (i, ack) in inner.acks.iter_mut().enumerate() {
            if ack.segment <= oldest {
                *ack = Position {
                    segment: oldest + 1,
                    offset: 0,
                };
                losers.push(i);
            }
        }
        if losers.first() == Some(&0) {
            self.stats.dropped_records.fetch_add(records, Ordering::Relaxed);
            self.stats.dropped_bytes.fetch_add(len, Ordering::Relaxed);
            tracing::warn!(
                records,
                bytes = len,
                wait = ?self.cfg.full_wait,
                "spool full: dropped its oldest segment (the store has been unreachable too long for the spool's max_bytes)"
            );
        }
        for &i in losers.iter().filter(|&&i| i > 0) {
            let name = &self.cfg.consumers[i - 1];
            self.stats
                .forward_dropped_records
                .fetch_add(records, Ordering::Relaxed);
            tracing::warn!(
                records,
                bytes = len,
                forward = %name,
                "spool full: forward {name} lost the oldest segment (it has been unreachable too long for the spool's max_bytes; the store has it)"
            );
        }
        Ok(())
    }

    /// The end of what was appended, and the segments written since the durable position.
    fn unsynced(inner: &Inner) -> (Position, Vec<u64>) {
        let end = Position {
            segment: inner.active,
            offset: inner.segments.get(&inner.active).copied().unwrap_or(0),
        };
        let segments = match end > inner.durable {
            true => inner
                .segments
                .range(inner.durable.segment..=end.segment)
                .map(|(&s, _)| s)
                .collect(),
            false => Vec::new(),
        };
        (end, segments)
    }

    /// [`Spool::sync`] under the lock, for the rare paths that start a segment out of turn.
    fn sync_locked(&self, inner: &mut Inner) -> io::Result<Position> {
        let (end, segments) = Self::unsynced(inner);
        for seg in segments {
            self.fs.sync(&segment_name(seg))?;
        }
        inner.durable = inner.durable.max(end);
        Ok(inner.durable)
    }

    /// Makes everything appended so far durable; returns the durable position. The fsyncs
    /// run outside the lock, so appends and reads go on meanwhile.
    pub(crate) fn sync(&self) -> io::Result<Position> {
        let (end, segments) = Self::unsynced(&self.inner.lock().expect("spool lock"));
        for seg in segments {
            if let Err(e) = self.fs.sync(&segment_name(seg)) {
                // A segment acknowledged and deleted meanwhile needs no fsync.
                if self.inner.lock().expect("spool lock").segments.contains_key(&seg) {
                    return Err(e);
                }
            }
        }
        let mut inner = self.inner.lock().expect("spool lock");
        inner.durable = inner.durable.max(end);
        Ok(inner.durable)
    }

    /// Makes `pos` durable, fsyncing only if no one else already has (group commit).
    pub(crate) fn sync_to(&self, pos: Position) -> io::Result<()> {
        if self.durable() < pos {
            self.sync()?;
        }
        Ok(())
    }

    /// What is durable: every record that ends at or before this position.
    pub(crate) fn durable(&self) -> Position {
        self.inner.lock().expect("spool lock").durable
    }

    /// Fsyncs what was appended every `every`, on a thread of its own, for as long as the
    /// spool is in use; so a source only reads [`Spool::durable`] and never waits on the disk.
    pub(crate) fn sync_in_background(self: &Arc<Self>, every: Duration) {
        let spool = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("obs-spool-sync".into())
            .spawn(move || {
                let mut failing = false;
                while let Some(spool) = {
                    std::thread::sleep(every);
                    spool.upgrade()
                } {
                    if Self::unsynced(&spool.inner.lock().expect("spool lock")).1.is_empty() {
                        continue;
                    }
                    match spool.sync() {
                        Ok(_) => failing = false,
                        Err(e) if !failing => {
                            failing = true;
                            tracing::error!(error = %e, "cannot fsync the spool; file positions are not saved until it works again");
                        }
                        Err(_) => {}
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the spool's fsync thread; sources sync it themselves");
        }
    }

    /// Where reading resumes for `consumer` (0 = the store): its acknowledged position.
    pub(crate) fn acked(&self, consumer: usize) -> Position {
        self.inner.lock().expect("spool lock").acks[consumer]
    }

    /// Bytes on disk in segments.
    /// The most bytes the spool holds before it drops its oldest data.
    pub(crate) fn max_bytes(&self) -> u64 {
        self.cfg.max_bytes
    }

    pub(crate) fn size(&self) -> u64 {
        self.inner.lock().expect("spool lock").total()
    }

    /// Records after `from`, up to about `max_bytes` of payload, from one segment.
    /// A corrupt segment is quarantined and skipped; an empty batch with a later `next`
    /// means "go on from there".
    pub(crate) fn read(&self, from: Position, max_bytes: usize) -> io::Result<Batch> {
        let (seg, len, active) = {
            let inner = self.inner.lock().expect("spool lock");
            let found = inner.segments.range(from.segment..).next();
            match found {
                None => {
                    return Ok(Batch {
                        records: Vec::new(),
                        next: from,
                    })
                }
                Some((&seg, &len)) => (seg, len, inner.active),
            }
        };
        let offset = if seg == from.segment {
            from.offset.max(HEADER)
        } else {
            HEADER
        };
        if offset >= len {
            let next = match seg == active {
                true => Position { segment: seg, offset },
                false => Position {
                    segment: seg + 1,
                    offset: 0,
                },
            };
            return Ok(Batch {
                records: Vec::new(),
                next,
            });
        }
        let name = segment_name(seg);
        let gone = |e: io::Error| match e.kind() {
            io::ErrorKind::NotFound => Ok(Batch {
                records: Vec::new(),
                next: Position {
                    segment: seg + 1,
                    offset: 0,
                },
            }),
            _ => Err(e),
        };
        if offset == HEADER {
            match self.fs.read_at(&name, 0, MAGIC.len()) {
                Ok(head) if head == MAGIC => {}
                Ok(_) => return self.quarantine(seg, "a bad segment header"),
                Err(e) => return gone(e),
            }
        }
        let head = match self.fs.read_at(&name, offset, 4) {
            Ok(h) => h,
            Err(e) => return gone(e),
        };
        let Ok(first) = <[u8; 4]>::try_from(head.as_slice()) else {
            return self.quarantine(seg, "a record cut short");
        };
        let first = 8 + u32::from_le_bytes(first) as u64;
        let want = (max_bytes as u64).max(first).min(len - offset);
        let data = match self.fs.read_at(&name, offset, want as usize) {
            Ok(d) => d,
            Err(e) => return gone(e),
        };
        let mut records = Vec::new();
        let mut at = 0usize;
        while at < data.len() {
            match parse_record(&data[at..]) {
                Ok(Some((kind, payload, used))) => {
                    at += used;
                    records.push(Record {
                        kind,
                        payload: payload.to_vec(),
                        end: Position {
                            segment: seg,
                            offset: offset + at as u64,
                        },
                    });
                }
                // Cut by this read's size, not by the segment's end: the next read has it.
                Ok(None) if at > 0 && offset + (data.len() as u64) < len => break,
                Ok(None) => return self.quarantine_after(seg, records, "a record longer than its segment"),
                Err(why) => return self.quarantine_after(seg, records, &why),
            }
        }
        let next = records
            .last()
            .map_or(Position { segment: seg, offset }, |r| r.end);
        Ok(Batch { records, next })
    }

    fn quarantine_after(&self, seg: u64, records: Vec<Record>, why: &str) -> io::Result<Batch> {
        if records.is_empty() {
            return self.quarantine(seg, why);
        }
        // Deliver what came before the damage; the next read finds it and quarantines.
        let next = records.last().expect("not empty").end;
        Ok(Batch { records, next })
    }

    fn quarantine(&self, seg: u64, why: &str) -> io::Result<Batch> {
        let mut inner = self.inner.lock().expect("spool lock");
        if seg == inner.active {
            self.sync_locked(&mut inner)?;
            inner.active += 1;
        }
        let name = segment_name(seg);
        if inner.segments.remove(&seg).is_some() {
            self.fs.quarantine(&name)?;
            self.stats.quarantined_segments.fetch_add(1, Ordering::Relaxed);
            tracing::error!(segment = %name, "spool segment holds {why}: moved to quarantine/, the rest of it is not shipped; shipping goes on");
        }
        self.space.notify_all();
        Ok(Batch {
            records: Vec::new(),
            next: Position {
                segment: seg + 1,
                offset: 0,
            },
        })
    }

    /// Records that everything up to `pos` was delivered to `consumer`; deletes the segments
    /// every consumer is done with.
    pub(crate) fn ack(&self, consumer: usize, pos: Position) -> io::Result<()> {
        if pos <= self.acked(consumer) {
            return Ok(());
        }
        {
            // The file write and its fsyncs happen outside the spool lock: appends go on.
            let mut written = self.ack_files[consumer].lock().expect("ack file lock");
            if pos <= *written {
                return Ok(());
            }
            self.fs
                .write_atomic(&ack_file(&self.cfg, consumer), &encode_ack(pos))?;
            *written = pos;
        }
        let mut inner = self.inner.lock().expect("spool lock");
        if pos <= inner.acks[consumer] {
            return Ok(());
        }
        inner.acks[consumer] = pos;
        let pos = inner.min_ack();
        let done: Vec<u64> = inner
            .segments
            .iter()
            .filter(|&(&n, &len)| {
                n < pos.segment || (n == pos.segment && pos.offset >= len && n != inner.active)
            })
            .map(|(&n, _)| n)
            .collect();
        for n in done {
            self.fs.remove(&segment_name(n))?;
            inner.segments.remove(&n);
        }
        self.space.notify_all();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
