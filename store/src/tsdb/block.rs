//! Immutable blocks: every sample of a time range, compressed, with its own label index.
//!
//! On disk, format v1, one directory per block under `<data>/metrics/`:
//!
//! ```text
//! <mint hex>-<id hex>/
//!   meta.json   {"version":1,"mint":…,"maxt":…,"wal_seq":…,"level":…,"series":…,"samples":…}
//!   index       zstd(postcard(Index { frames, series: [{labels, chunks: [ChunkRef]}] })) crc32:u32le
//!   chunks      frame*; frame := len:u32le crc32:u32le zstd(stream bytes…)
//! ChunkRef      {mint, maxt, ts: Loc, values: Loc};  Loc {frame, offset, len} in a frame
//! ```
//!
//! Series are sorted by labels and each has chunks of up to 4096 samples (`chunk.rs`),
//! packed into zstd frames of about 256 KiB. A chunk's timestamp stream is stored once per
//! block and shared by every chunk with the same timestamps (all series of one scrape). `wal_seq` is the highest WAL record
//! whose samples the block holds, so a restart replays only what came after. A block
//! directory is written as `<name>.tmp` and renamed when complete; leftovers of a crash
//! are deleted on open, and a block whose files do not check out is moved aside to
//! `<name>.corrupt` and reported.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::cache::BlockCaches;
use super::head::{candidates, Postings};
use super::labels::Interner;
use super::{chunk, matches_all, Labels, Matcher, RawSeries};

pub const FORMAT_VERSION: u32 = 1;
const FRAME_BYTES: usize = 256 * 1024;
/// zstd level of freshly flushed blocks (fast) and of compacted ones (written once, kept).
const ZSTD_LEVEL: i32 = 3;
const ZSTD_LEVEL_COMPACTED: i32 = 9;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct BlockMeta {
    pub version: u32,
    pub mint: i64,
    pub maxt: i64,
    pub wal_seq: u64,
    pub level: u32,
    pub series: u64,
    pub samples: u64,
}

/// Where a byte string sits: a frame and a range inside it, uncompressed.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Loc {
    frame: u32,
    offset: u32,
    len: u32,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct ChunkRef {
    mint: i64,
    maxt: i64,
    ts: Loc,
    values: Loc,
}

#[derive(Serialize, Deserialize)]
struct SeriesEntry {
    labels: Vec<(String, String)>,
    chunks: Vec<ChunkRef>,
}

#[derive(Serialize, Deserialize)]
struct Index {
    /// (offset, length) of each frame in `chunks`, header included.
    frames: Vec<(u64, u32)>,
    series: Vec<SeriesEntry>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum BlockError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {msg}")]
    Corrupt { path: PathBuf, msg: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BlockError + '_ {
    move |source| BlockError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, msg: impl Into<String>) -> BlockError {
    BlockError::Corrupt {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

pub(crate) struct Block {
    /// Tells this block apart from every other opened in this process (cache keys).
    pub id: u64,
    pub dir: PathBuf,
    pub meta: BlockMeta,
    labels: Vec<Arc<Labels>>,
    chunks: Vec<Vec<ChunkRef>>,
    postings: Postings,
    frames: Vec<(u64, u32)>,
    file: File,
    pub bytes: u64,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("dir", &self.dir)
            .field("meta", &self.meta)
            .finish()
    }
}

/// Writes a block from series sorted by labels; returns it opened.
pub(crate) fn write<'a>(
    parent: &Path,
    series: impl Iterator<Item = (Arc<Labels>, std::borrow::Cow<'a, [(i64, f64)]>)>,
    wal_seq: u64,
    level: u32,
    interner: &Interner,
) -> Result<Option<Block>, BlockError> {
    let id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut entries = Vec::new();
    let mut frames: Vec<(u64, u32)> = Vec::new();
    let mut frame = Vec::with_capacity(FRAME_BYTES + 64 * 1024);
    let mut data: Vec<u8> = Vec::new();
    let (mut mint, mut maxt, mut samples) = (i64::MAX, i64::MIN, 0u64);
    let mut ts_streams: HashMap<Vec<u8>, Loc> = HashMap::new();
    let flush = |frame: &mut Vec<u8>, data: &mut Vec<u8>, frames: &mut Vec<(u64, u32)>| {
        if frame.is_empty() {
            return;
        }
        let z = zstd::bulk::compress(
            frame,
            if level > 0 {
                ZSTD_LEVEL_COMPACTED
            } else {
                ZSTD_LEVEL
            },
        )
        .expect("zstd compress into memory");
        let offset = data.len() as u64;
        data.extend_from_slice(&(z.len() as u32).to_le_bytes());
        data.extend_from_slice(&crc32fast::hash(&z).to_le_bytes());
        data.extend_from_slice(&z);
        frames.push((offset, (z.len() + 8) as u32));
        frame.clear();
    };
    for (labels, s) in series {
        if s.is_empty() {
            continue;
        }
        let mut refs = Vec::new();
        for part in s.chunks(chunk::MAX_SAMPLES) {
            let enc = chunk::encode(part);
            let ts = match ts_streams.get(&enc.ts) {
                Some(loc) => *loc,
                None => {
                    let loc = Loc {
                        frame: frames.len() as u32,
                        offset: frame.len() as u32,
                        len: enc.ts.len() as u32,
                    };
                    frame.extend_from_slice(&enc.ts);
                    ts_streams.insert(enc.ts, loc);
                    loc
                }
            };
            let values = Loc {
                frame: frames.len() as u32,
                offset: frame.len() as u32,
                len: enc.values.len() as u32,
            };
            frame.extend_from_slice(&enc.values);
            refs.push(ChunkRef {
                mint: part[0].0,
                maxt: part[part.len() - 1].0,
                ts,
                values,
            });
            if frame.len() >= FRAME_BYTES {
                flush(&mut frame, &mut data, &mut frames);
            }
        }
        mint = mint.min(s[0].0);
        maxt = maxt.max(s[s.len() - 1].0);
        samples += s.len() as u64;
        entries.push(SeriesEntry {
            labels: labels.iter().map(|(n, v)| (n.into(), v.into())).collect(),
            chunks: refs,
        });
    }
    flush(&mut frame, &mut data, &mut frames);
    if entries.is_empty() {
        return Ok(None);
    }
    let meta = BlockMeta {
        version: FORMAT_VERSION,
        mint,
        maxt,
        wal_seq,
        level,
        series: entries.len() as u64,
        samples,
    };
    let name = format!("{:016x}-{id:016x}", mint as u64);
    let tmp = parent.join(format!("{name}.tmp"));
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let index = postcard::to_allocvec(&Index {
        frames,
        series: entries,
    })
    .expect("index serializes");
    // Label sets repeat their names and most values: the index shrinks several times.
    let mut index = zstd::bulk::compress(&index, ZSTD_LEVEL_COMPACTED).expect("zstd compress into memory");
    let crc = crc32fast::hash(&index);
    index.extend_from_slice(&crc.to_le_bytes());
    write_synced(&tmp.join("chunks"), &data)?;
    write_synced(&tmp.join("index"), &index)?;
    write_synced(
        &tmp.join("meta.json"),
        &serde_json::to_vec(&meta).expect("meta serializes"),
    )?;
    let dir = parent.join(&name);
    fs::rename(&tmp, &dir).map_err(io(&dir))?;
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io(parent))?;
    open(&dir, interner).map(Some)
}

fn write_synced(path: &Path, data: &[u8]) -> Result<(), BlockError> {
    let mut f = File::create(path).map_err(io(path))?;
    f.write_all(data).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Opens a block, checking its meta and index.
pub(crate) fn open(dir: &Path, interner: &Interner) -> Result<Block, BlockError> {
    let meta_path = dir.join("meta.json");
    let meta: BlockMeta = serde_json::from_slice(&fs::read(&meta_path).map_err(io(&meta_path))?)
        .map_err(|e| corrupt(&meta_path, e.to_string()))?;
    if meta.version != FORMAT_VERSION {
        return Err(corrupt(
            &meta_path,
            format!("block format version {} is not supported", meta.version),
        ));
    }
    let index_path = dir.join("index");
    let raw = fs::read(&index_path).map_err(io(&index_path))?;
    if raw.len() < 4 {
        return Err(corrupt(&index_path, "truncated"));
    }
    let (body, crc) = raw.split_at(raw.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(corrupt(&index_path, "checksum mismatch"));
    }
    let body = zstd::stream::decode_all(body).map_err(|e| corrupt(&index_path, e.to_string()))?;
    let index: Index = postcard::from_bytes(&body).map_err(|e| corrupt(&index_path, e.to_string()))?;
    let chunks_path = dir.join("chunks");
    let file = File::open(&chunks_path).map_err(io(&chunks_path))?;
    let bytes = file.metadata().map_err(io(&chunks_path))?.len() + raw.len() as u64;
    let mut postings: Postings = BTreeMap::new();
    let mut labels = Vec::with_capacity(index.series.len());
    let mut chunks = Vec::with_capacity(index.series.len());
    for (id, s) in index.series.into_iter().enumerate() {
        for (n, v) in &s.labels {
            postings
                .entry(n.clone())
                .or_default()
                .entry(v.clone())
                .or_default()
                .push(id as u32);
        }
        labels.push(interner.intern(Labels::new(s.labels)));
        chunks.push(s.chunks);
    }
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    Ok(Block {
        id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        dir: dir.to_path_buf(),
        meta,
        labels,
        chunks,
        postings,
        frames: index.frames,
        file,
        bytes,
    })
}

/// What one reader of a block keeps from series to series: the frames it used last and the
/// timestamp streams it decoded (one stream serves every series scraped with it), with the
/// shared [`BlockCaches`] behind them, and its zstd context.
#[derive(Default)]
pub(crate) struct ReadCache<'a> {
    shared: Option<&'a BlockCaches>,
    frames: Vec<(u32, Arc<Vec<u8>>)>,
    times: HashMap<(u32, u32), Arc<Vec<i64>>>,
    times_held: usize,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
}

/// Frames a reader keeps to itself: series are read in the order they were written, so
/// the frames are visited in order and a few suffice.
const CACHED_FRAMES: usize = 4;
/// Timestamps a reader keeps decoded (8 MiB); past it the cache starts over.
const CACHED_TIMES: usize = 1 << 20;

impl<'a> ReadCache<'a> {
    pub(crate) fn new(shared: &'a BlockCaches) -> Self {
        ReadCache {
            shared: Some(shared),
            ..Default::default()
        }
    }

    /// The bytes at `loc`, decompressing its frame unless a cache has it.
    fn bytes(&mut self, block: &Block, loc: Loc) -> Result<&[u8], BlockError> {
        let i = match self.frames.iter().position(|(f, _)| *f == loc.frame) {
            Some(i) => i,
            None => {
                let frame = match self.shared.and_then(|c| c.frames.get((block.id, loc.frame))) {
                    Some(f) => f,
                    None => {
                        let zstd = match &mut self.zstd {
                            Some(z) => z,
                            slot => slot.insert(
                                zstd::bulk::Decompressor::new()
                                    .map_err(|e| corrupt(&block.dir, format!("zstd: {e}")))?,
                            ),
                        };
                        let f = Arc::new(block.frame(loc.frame, zstd)?);
                        if let Some(c) = self.shared {
                            c.frames.insert((block.id, loc.frame), f.clone());
                        }
                        f
                    }
                };
                if self.frames.len() == CACHED_FRAMES {
                    self.frames.remove(0);
                }
                self.frames.push((loc.frame, frame));
                self.frames.len() - 1
            }
        };
        self.frames[i]
            .1
            .get(loc.offset as usize..(loc.offset as usize + loc.len as usize))
            .ok_or_else(|| corrupt(&block.dir, "chunk outside its frame"))
    }

    fn times(&mut self, block: &Block, loc: Loc) -> Result<Arc<Vec<i64>>, BlockError> {
        if let Some(t) = self.times.get(&(loc.frame, loc.offset)) {
            return Ok(t.clone());
        }
        let key = (block.id, loc.frame, loc.offset);
        let times = match self.shared.and_then(|c| c.times.get(key)) {
            Some(t) => t,
            None => {
                let t = Arc::new(
                    chunk::decode_times(self.bytes(block, loc)?)
                        .ok_or_else(|| corrupt(&block.dir, "undecodable timestamps"))?,
                );
                if let Some(c) = self.shared {
                    c.times.insert(key, t.clone());
                }
                t
            }
        };
        if self.times_held + times.len() > CACHED_TIMES {
            self.times.clear();
            self.times_held = 0;
        }
        self.times_held += times.len();
        self.times.insert((loc.frame, loc.offset), times.clone());
        Ok(times)
    }
}

impl Block {
    fn frame(&self, i: u32, zstd: &mut zstd::bulk::Decompressor) -> Result<Vec<u8>, BlockError> {
        let path = self.dir.join("chunks");
        let &(offset, len) = self
            .frames
            .get(i as usize)
            .ok_or_else(|| corrupt(&path, "chunk names a missing frame"))?;
        if len < 8 {
            return Err(corrupt(&path, format!("frame {i} is shorter than its header")));
        }
        let mut buf = vec![0u8; len as usize];
        self.file.read_exact_at(&mut buf, offset).map_err(io(&path))?;
        let z = &buf[8..];
        if crc32fast::hash(z).to_le_bytes() != buf[4..8] {
            return Err(corrupt(&path, format!("frame {i} checksum mismatch")));
        }
        zstd.decompress(z, FRAME_BYTES * 4)
            .map_err(|e| corrupt(&path, format!("frame {i}: {e}")))
    }

    /// Ids of matching series with a chunk overlapping `[mint, maxt]`, ascending (so in
    /// label order, the order their chunks were written in).
    pub(crate) fn matching(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<u32> {
        if self.meta.maxt < mint || self.meta.mint > maxt {
            return Vec::new();
        }
        // The postings answer every matcher that needs the label present; the others
        // (those matching an empty value) are checked on the labels.
        let recheck: Vec<Matcher> = matchers.iter().filter(|m| m.is_match("")).cloned().collect();
        candidates(&self.postings, self.labels.len(), matchers)
            .into_iter()
            .filter(|&id| {
                matches_all(&self.labels[id as usize], &recheck)
                    && self.chunks[id as usize]
                        .iter()
                        .any(|c| c.maxt >= mint && c.mint <= maxt)
            })
            .collect()
    }

    pub(crate) fn labels(&self, id: u32) -> &Arc<Labels> {
        &self.labels[id as usize]
    }

    /// Appends series `id`'s samples in `[mint, maxt]` to `out`.
    pub(crate) fn read(
        &self,
        id: u32,
        mint: i64,
        maxt: i64,
        cache: &mut ReadCache,
        out: &mut Vec<(i64, f64)>,
    ) -> Result<(), BlockError> {
        for c in &self.chunks[id as usize] {
            if c.maxt < mint || c.mint > maxt {
                continue;
            }
            let times = cache.times(self, c.ts)?;
            let values = cache.bytes(self, c.values)?;
            // Only the samples in range; decoding stops after the last of them.
            let keep = if c.mint < mint || c.maxt > maxt {
                times.partition_point(|&t| t < mint)..times.partition_point(|&t| t <= maxt)
            } else {
                0..times.len()
            };
            chunk::decode_values(values, &times, keep, out)
                .ok_or_else(|| corrupt(&self.dir, "undecodable chunk"))?;
        }
        Ok(())
    }

    /// Every series with samples in `[mint, maxt]`, in label order (compaction reads this).
    pub(crate) fn select_all(&self, mint: i64, maxt: i64) -> Result<Vec<RawSeries>, BlockError> {
        let mut cache = ReadCache::default();
        let mut out = Vec::new();
        for id in self.matching(&[], mint, maxt) {
            let mut samples = Vec::new();
            self.read(id, mint, maxt, &mut cache, &mut samples)?;
            if !samples.is_empty() {
                out.push(RawSeries {
                    labels: self.labels(id).clone(),
                    samples,
                });
            }
        }
        Ok(out)
    }

    /// Labels of matching series that have samples in `[mint, maxt]` (no decoding).
    pub(crate) fn series_labels(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        out: &mut Vec<Arc<Labels>>,
    ) {
        if self.meta.maxt < mint || self.meta.mint > maxt {
            return;
        }
        for id in candidates(&self.postings, self.labels.len(), matchers) {
            let labels = &self.labels[id as usize];
            if matches_all(labels, matchers)
                && self.chunks[id as usize]
                    .iter()
                    .any(|c| c.maxt >= mint && c.mint <= maxt)
            {
                out.push(labels.clone());
            }
        }
    }
}
