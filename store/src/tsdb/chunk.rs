//! Sample chunks: timestamps and values in separate byte streams, small integers as
//! varints so the block's zstd frames compress what is left.
//!
//! Format v1 (integers little-endian; varints are LEB128, signed ones zigzag):
//!
//! ```text
//! chunk   := ts values   (two byte strings; a block stores each timestamp stream once)
//! ts      := n:uvarint t0:svarint (t1-t0):svarint then per sample the delta of deltas:svarint
//! values  := 0x00 gorilla | 0x01 decimal_delta | 0x02 decimal_delta2
//! gorilla := v0 as 64 bits, then per sample v XOR previous:
//!            '0' (same) | '10' bits in the previous window | '11' lead:5 len:6 bits
//! decimal := scale:u8, m0:svarint, then deltas (or deltas of deltas) of m:svarint,
//!            where every value is m / 10^scale exactly
//! ```
//!
//! Scraped values are mostly decimals with few digits (counters of 1/100 s, bytes, loads):
//! as integers their deltas take a byte or two where XOR bits take five or six. Chunks with
//! NaN, infinities, -0 or values that are not short decimals use Gorilla XOR. Timestamp
//! streams are byte-identical across series scraped together, so a block keeps one copy.

/// Samples per chunk; at worst 68 bits per timestamp this keeps the timestamp stream
/// under the 64 KiB its length field can say.
pub const MAX_SAMPLES: usize = 4096;

struct BitWriter {
    buf: Vec<u8>,
    bits: u8, // bits used in the last byte (0 = byte full / none)
}

impl BitWriter {
    fn new() -> Self {
        BitWriter {
            buf: Vec::new(),
            bits: 0,
        }
    }

    fn bit(&mut self, b: bool) {
        if self.bits == 0 {
            self.buf.push(0);
            self.bits = 8;
        }
        self.bits -= 1;
        if b {
            *self.buf.last_mut().expect("pushed") |= 1 << self.bits;
        }
    }

    fn bits(&mut self, v: u64, n: u8) {
        for i in (0..n).rev() {
            self.bit((v >> i) & 1 == 1);
        }
    }
}

struct BitReader<'a> {
    buf: &'a [u8],
    pos: usize, // in bits
}

impl BitReader<'_> {
    fn bit(&mut self) -> Option<bool> {
        let byte = *self.buf.get(self.pos / 8)?;
        let b = (byte >> (7 - (self.pos % 8) as u8)) & 1 == 1;
        self.pos += 1;
        Some(b)
    }

    fn bits(&mut self, n: u8) -> Option<u64> {
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | self.bit()? as u64;
        }
        Some(v)
    }
}

fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn get_uvarint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A chunk's two streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ts: Vec<u8>,
    pub values: Vec<u8>,
}

/// Encodes up to [`MAX_SAMPLES`] samples sorted by time.
pub fn encode(samples: &[(i64, f64)]) -> Encoded {
    assert!(samples.len() <= MAX_SAMPLES, "chunk too large");
    let mut ts = Vec::new();
    put_uvarint(&mut ts, samples.len() as u64);
    let (mut prev_t, mut prev_delta) = (0i64, 0i64);
    for (i, &(t, _)) in samples.iter().enumerate() {
        match i {
            0 => put_uvarint(&mut ts, zigzag(t)),
            1 => {
                prev_delta = t - prev_t;
                put_uvarint(&mut ts, zigzag(prev_delta));
            }
            _ => {
                let delta = t - prev_t;
                put_uvarint(&mut ts, zigzag(delta - prev_delta));
                prev_delta = delta;
            }
        }
        prev_t = t;
    }
    let mut out = Vec::with_capacity(2 + samples.len() * 2);
    match decimal(samples) {
        Some((scale, m)) => {
            let delta = int_stream(&m, false);
            let delta2 = int_stream(&m, true);
            let (tag, body) = if delta2.len() < delta.len() {
                (2u8, delta2)
            } else {
                (1u8, delta)
            };
            out.push(tag);
            out.push(scale);
            out.extend_from_slice(&body);
        }
        None => {
            out.push(0);
            out.extend_from_slice(&gorilla(samples));
        }
    }
    Encoded { ts, values: out }
}

/// The values as integers `m` with `v == m / 10^scale` exactly, if they all are short
/// decimals.
fn decimal(samples: &[(i64, f64)]) -> Option<(u8, Vec<i64>)> {
    const MAX: f64 = (1u64 << 53) as f64;
    let mut scale = 0u8;
    for &(_, v) in samples {
        if !v.is_finite() || (v == 0.0 && v.is_sign_negative()) {
            return None;
        }
        while scale <= 15 {
            let m = (v * 10f64.powi(scale as i32)).round();
            if m.abs() < MAX && m / 10f64.powi(scale as i32) == v {
                break;
            }
            scale += 1;
        }
        if scale > 15 {
            return None;
        }
    }
    let p = 10f64.powi(scale as i32);
    let mut out = Vec::with_capacity(samples.len());
    for &(_, v) in samples {
        let m = (v * p).round();
        if m.abs() >= MAX || (m / p).to_bits() != v.to_bits() {
            return None;
        }
        out.push(m as i64);
    }
    Some((scale, out))
}

fn int_stream(m: &[i64], second_order: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.len() * 2);
    let (mut prev, mut prev_delta) = (0i64, 0i64);
    for (i, &x) in m.iter().enumerate() {
        let v = if i == 0 {
            x
        } else {
            let d = x.wrapping_sub(prev);
            let e = if second_order {
                d.wrapping_sub(prev_delta)
            } else {
                d
            };
            prev_delta = d;
            e
        };
        put_uvarint(&mut out, zigzag(v));
        prev = x;
    }
    out
}

fn gorilla(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut vw = BitWriter::new();
    let mut prev_v = 0u64;
    let (mut lead, mut trail) = (u8::MAX, 0u8);
    for (i, &(_, v)) in samples.iter().enumerate() {
        let bits = v.to_bits();
        if i == 0 {
            vw.bits(bits, 64);
        } else {
            let x = bits ^ prev_v;
            if x == 0 {
                vw.bit(false);
            } else {
                vw.bit(true);
                let l = (x.leading_zeros() as u8).min(31);
                let tz = x.trailing_zeros() as u8;
                if lead != u8::MAX && l >= lead && tz >= trail {
                    vw.bit(false);
                    vw.bits(x >> trail, 64 - lead - trail);
                } else {
                    lead = l;
                    trail = tz;
                    let sig = 64 - l - tz;
                    vw.bit(true);
                    vw.bits(l as u64, 5);
                    // 64 significant bits is written as 0 (it cannot be 0 otherwise).
                    vw.bits((sig % 64) as u64, 6);
                    vw.bits(x >> tz, sig);
                }
            }
        }
        prev_v = bits;
    }
    vw.buf
}

/// Decodes a chunk's two streams; `None` when they are damaged.
pub fn decode(ts: &[u8], vals: &[u8], out: &mut Vec<(i64, f64)>) -> Option<()> {
    let times = decode_times(ts)?;
    decode_values(vals, &times, 0..times.len(), out)
}

/// Decodes a timestamp stream (shared by the chunks of series scraped together, so a
/// reader decodes it once and keeps it).
pub fn decode_times(ts: &[u8]) -> Option<Vec<i64>> {
    let mut pos = 0;
    let n = get_uvarint(ts, &mut pos)? as usize;
    if n > MAX_SAMPLES {
        return None;
    }
    let mut times = Vec::with_capacity(n);
    let (mut prev, mut delta) = (0i64, 0i64);
    for i in 0..n {
        let x = unzigzag(get_uvarint(ts, &mut pos)?);
        let t = match i {
            0 => x,
            1 => {
                delta = x;
                prev.checked_add(delta)?
            }
            _ => {
                delta = delta.checked_add(x)?;
                prev.checked_add(delta)?
            }
        };
        times.push(t);
        prev = t;
    }
    Some(times)
}

/// Decodes a value stream whose timestamps are `times` (one per sample of the chunk) and
/// appends the samples at positions `keep` to `out`; decoding stops at the end of `keep`.
pub fn decode_values(
    vals: &[u8],
    times: &[i64],
    keep: std::ops::Range<usize>,
    out: &mut Vec<(i64, f64)>,
) -> Option<()> {
    if times.is_empty() || keep.is_empty() {
        return Some(());
    }
    let times = times.get(..keep.end)?;
    out.reserve(keep.len());
    let (&tag, body) = vals.split_first()?;
    match tag {
        0 => decode_gorilla(body, times, keep.start, out),
        1 | 2 => {
            let (&scale, ints) = body.split_first()?;
            if scale > 15 {
                return None;
            }
            let p = 10f64.powi(scale as i32);
            let mut pos = 0;
            let (mut m, mut d) = (0i64, 0i64);
            for (i, &t) in times.iter().enumerate() {
                let x = unzigzag(get_uvarint(ints, &mut pos)?);
                if i == 0 {
                    m = x;
                } else {
                    d = if tag == 2 { d.wrapping_add(x) } else { x };
                    m = m.wrapping_add(d);
                }
                if i >= keep.start {
                    out.push((t, m as f64 / p));
                }
            }
            Some(())
        }
        _ => None,
    }
}

fn decode_gorilla(vals: &[u8], times: &[i64], from: usize, out: &mut Vec<(i64, f64)>) -> Option<()> {
    let mut vr = BitReader { buf: vals, pos: 0 };
    let (mut lead, mut trail) = (0u8, 0u8);
    let mut prev = 0u64;
    for (i, &t) in times.iter().enumerate() {
        let bits = if i == 0 {
            vr.bits(64)?
        } else if !vr.bit()? {
            prev
        } else {
            if vr.bit()? {
                lead = vr.bits(5)? as u8;
                let mut sig = vr.bits(6)? as u8;
                if sig == 0 {
                    sig = 64;
                }
                trail = 64u8.checked_sub(lead + sig)?;
            }
            let sig = 64 - lead - trail;
            prev ^ (vr.bits(sig)? << trail)
        };
        prev = bits;
        if i >= from {
            out.push((t, f64::from_bits(bits)));
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(samples: &[(i64, f64)]) -> Encoded {
        let c = encode(samples);
        let mut out = Vec::new();
        decode(&c.ts, &c.values, &mut out).expect("decodes");
        assert_eq!(out.len(), samples.len());
        for (a, b) in out.iter().zip(samples) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1.to_bits(), b.1.to_bits(), "value bits at t={}", a.0);
        }
        c
    }

    #[test]
    fn roundtrips_every_encoding_branch() {
        roundtrip(&[]);
        roundtrip(&[(-5, 1.5)]);
        roundtrip(&[(1000, 1.0), (2000, 1.0)]);
        let mut s = Vec::new();
        let mut t = 1_700_000_000_000i64;
        let deltas = [
            15_000, 15_000, 15_003, 14_990, 60_000, 200_000, 1_000_000, 5, 15_000, -3,
        ];
        let values = [
            0.0,
            0.0,
            1.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            1e300,
            1e-300,
            42.125,
            crate::tsdb::stale_nan(),
        ];
        for i in 0..500 {
            t += deltas[i % deltas.len()];
            s.push((
                t,
                values[i % values.len()] + if i % 7 == 0 { i as f64 } else { 0.0 },
            ));
        }
        roundtrip(&s);
    }

    #[test]
    fn decimals_roundtrip_exactly_and_others_fall_back_to_xor() {
        // As a text parser produces them: the nearest doubles of short decimals.
        let dec: Vec<(i64, f64)> = (0..100)
            .map(|i| (i * 15_000, (123_456 + i * 37) as f64 / 100.0))
            .collect();
        let c = roundtrip(&dec);
        assert_ne!(c.values[0], 0, "decimal, not gorilla");
        let big: Vec<(i64, f64)> = (0..10).map(|i| (i, 1e300 / (i as f64 + 3.0))).collect();
        let c = roundtrip(&big);
        assert_eq!(c.values[0], 0, "gorilla fallback");
        roundtrip(&[(0, -0.0), (1, 0.0)]);
        roundtrip(&[(0, 0.1), (1, 0.2), (2, 0.30000000000000004)]);
        roundtrip(&[(0, -5.0), (1, 7.25), (2, 1e15), (3, -1e-15)]);
    }

    #[test]
    fn regular_counters_compress_to_almost_nothing() {
        let s: Vec<(i64, f64)> = (0..720).map(|i| (i * 10_000, (i * 3) as f64)).collect();
        let c = roundtrip(&s);
        let raw = [c.ts, c.values].concat();
        let z = zstd::bulk::compress(&raw, 3).unwrap();
        assert!(z.len() < 100, "{} bytes raw, {} compressed", raw.len(), z.len());
    }

    #[test]
    fn damaged_chunks_decode_to_none_not_panic() {
        for samples in [
            vec![(1, 1.0), (2, 2.0), (3, 4.0)],
            vec![(1, f64::NAN), (5, 1e300)],
        ] {
            let c = encode(&samples);
            for cut in 0..c.ts.len() {
                let _ = decode(&c.ts[..cut], &c.values, &mut Vec::new());
            }
            for cut in 0..c.values.len() {
                assert!(
                    decode(&c.ts, &c.values[..cut], &mut Vec::new()).is_none(),
                    "cut at {cut}"
                );
            }
        }
        assert!(decode(&[9, 9, 9, 9], &[1, 0, 0], &mut Vec::new()).is_none());
    }
}
