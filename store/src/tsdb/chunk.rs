//! Sample chunks: Gorilla compression with timestamps and values in separate streams.
//!
//! Format v1 (all integers little-endian):
//!
//! ```text
//! chunk   := n:u16 ts_len:u16 ts_stream[ts_len] value_stream
//! ts      := t0 as zigzag varint, (t1-t0) as varint, then per sample the delta of deltas:
//!            '0' | '10' 14 bits | '110' 17 bits | '1110' 20 bits | '1111' 64 bits
//!            (two's complement, as in Prometheus's XOR chunks)
//! values  := v0 as 64 bits, then per sample v XOR previous:
//!            '0' (same) | '10' bits in the previous window | '11' lead:5 len:6 bits
//! ```
//!
//! Keeping the timestamp stream apart from the values makes it byte-identical across
//! series scraped together, which the block's zstd frames then store once.

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

/// Encodes up to [`MAX_SAMPLES`] samples sorted by time.
pub fn encode(samples: &[(i64, f64)]) -> Vec<u8> {
    assert!(samples.len() <= MAX_SAMPLES, "chunk too large");
    let mut ts = Vec::new();
    let mut tw = BitWriter::new();
    let mut vw = BitWriter::new();
    let (mut prev_t, mut prev_delta) = (0i64, 0i64);
    let mut prev_v = 0u64;
    let (mut lead, mut trail) = (u8::MAX, 0u8);
    for (i, &(t, v)) in samples.iter().enumerate() {
        let bits = v.to_bits();
        match i {
            0 => {
                put_uvarint(&mut ts, zigzag(t));
                vw.bits(bits, 64);
            }
            1 => {
                prev_delta = t - prev_t;
                put_uvarint(&mut ts, zigzag(prev_delta));
            }
            _ => {
                let delta = t - prev_t;
                let dod = delta - prev_delta;
                prev_delta = delta;
                match dod {
                    0 => tw.bit(false),
                    -8191..=8192 => {
                        tw.bits(0b10, 2);
                        tw.bits(dod as u64 & ((1 << 14) - 1), 14);
                    }
                    -65535..=65536 => {
                        tw.bits(0b110, 3);
                        tw.bits(dod as u64 & ((1 << 17) - 1), 17);
                    }
                    -524287..=524288 => {
                        tw.bits(0b1110, 4);
                        tw.bits(dod as u64 & ((1 << 20) - 1), 20);
                    }
                    _ => {
                        tw.bits(0b1111, 4);
                        tw.bits(dod as u64, 64);
                    }
                }
            }
        }
        if i > 0 {
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
        prev_t = t;
        prev_v = bits;
    }
    ts.extend_from_slice(&tw.buf);
    let mut out = Vec::with_capacity(4 + ts.len() + vw.buf.len());
    out.extend_from_slice(&(samples.len() as u16).to_le_bytes());
    // At most MAX_SAMPLES * 68 bits: fits.
    out.extend_from_slice(&(ts.len() as u16).to_le_bytes());
    out.extend_from_slice(&ts);
    out.extend_from_slice(&vw.buf);
    out
}

/// Decodes a chunk; `None` when it is damaged.
pub fn decode(chunk: &[u8], out: &mut Vec<(i64, f64)>) -> Option<()> {
    let n = u16::from_le_bytes(chunk.get(0..2)?.try_into().ok()?) as usize;
    let ts_len = u16::from_le_bytes(chunk.get(2..4)?.try_into().ok()?) as usize;
    let ts = chunk.get(4..4 + ts_len)?;
    let vals = chunk.get(4 + ts_len..)?;
    let mut pos = 0;
    let mut times = Vec::with_capacity(n);
    if n > 0 {
        times.push(unzigzag(get_uvarint(ts, &mut pos)?));
    }
    if n > 1 {
        let delta = unzigzag(get_uvarint(ts, &mut pos)?);
        times.push(times[0] + delta);
    }
    let mut tr = BitReader {
        buf: &ts[pos..],
        pos: 0,
    };
    let mut delta = if n > 1 { times[1] - times[0] } else { 0 };
    for _ in 2..n {
        let dod = if !tr.bit()? {
            0
        } else if !tr.bit()? {
            sign_extend(tr.bits(14)?, 14)
        } else if !tr.bit()? {
            sign_extend(tr.bits(17)?, 17)
        } else if !tr.bit()? {
            sign_extend(tr.bits(20)?, 20)
        } else {
            tr.bits(64)? as i64
        };
        delta += dod;
        times.push(times[times.len() - 1] + delta);
    }
    let mut vr = BitReader { buf: vals, pos: 0 };
    let (mut lead, mut trail) = (0u8, 0u8);
    let mut prev = 0u64;
    for (i, t) in times.into_iter().enumerate() {
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
        out.push((t, f64::from_bits(bits)));
    }
    Some(())
}

fn sign_extend(v: u64, bits: u8) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(samples: &[(i64, f64)]) -> Vec<u8> {
        let c = encode(samples);
        let mut out = Vec::new();
        decode(&c, &mut out).expect("decodes");
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
    fn regular_counters_take_about_a_byte_per_sample() {
        let s: Vec<(i64, f64)> = (0..720).map(|i| (i * 10_000, (i * 3) as f64)).collect();
        let c = roundtrip(&s);
        assert!(c.len() < 720 * 2, "{} bytes", c.len());
    }

    #[test]
    fn damaged_chunks_decode_to_none_not_panic() {
        let c = encode(&[(1, 1.0), (2, 2.0), (3, 4.0)]);
        for cut in 0..c.len() {
            let _ = decode(&c[..cut], &mut Vec::new());
        }
        assert!(decode(&[9, 9, 9, 9], &mut Vec::new()).is_none());
    }
}
