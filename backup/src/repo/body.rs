//! Bodies: what a blob or object holds before sealing, `flag || body`: flag 1 = zstd,
//! 0 = the data as is (when zstd saves less than 3%).
//!
//! [`BodyEncoder`] keeps one zstd context and one scratch buffer per backup worker, so a
//! chunk costs one compression and one copy into its sealed buffer.

use crate::error::{Error, Result};

/// Compresses bodies, reusing one zstd context.
pub(crate) struct BodyEncoder {
    zstd: zstd::bulk::Compressor<'static>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for BodyEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyEncoder(..)")
    }
}

impl BodyEncoder {
    pub(crate) fn new(level: i32) -> BodyEncoder {
        BodyEncoder {
            // zstd clamps levels out of its range; should it refuse one, its default level.
            zstd: zstd::bulk::Compressor::new(level)
                .or_else(|_| zstd::bulk::Compressor::new(0))
                .expect("zstd's default level"),
            scratch: Vec::new(),
        }
    }

    /// The flag and body to store for `data`.
    pub(crate) fn encode<'a>(&'a mut self, data: &'a [u8]) -> (u8, &'a [u8]) {
        if data.len() < 64 {
            return (0, data);
        }
        self.scratch.clear();
        self.scratch.reserve(zstd::zstd_safe::compress_bound(data.len()));
        match self.zstd.compress_to_buffer(data, &mut self.scratch) {
            Ok(n) if n < data.len() - data.len() / 32 => (1, &self.scratch[..n]),
            _ => (0, data),
        }
    }
}

/// `flag || body` of `data`, in a new buffer.
pub(crate) fn encode_body(data: &[u8], level: i32) -> Vec<u8> {
    let mut encoder = BodyEncoder::new(level);
    let (flag, body) = encoder.encode(data);
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(flag);
    out.extend_from_slice(body);
    out
}

/// Inverse of [`encode_body`]; `what` names the object in errors.
pub(crate) fn decode_body(plain: &[u8], what: &str) -> Result<Vec<u8>> {
    let corrupt = |why: String| Error::Corrupt {
        what: what.to_string(),
        why,
    };
    match plain.split_first() {
        Some((0, body)) => Ok(body.to_vec()),
        Some((1, body)) => {
            let mut out = Vec::new();
            zstd::stream::copy_decode(body, &mut out).map_err(|e| corrupt(format!("zstd: {e}")))?;
            Ok(out)
        }
        Some((flag, _)) => Err(corrupt(format!("unknown encoding flag {flag}"))),
        None => Err(corrupt("empty".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 88172645463325252;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn bodies_compress_only_when_it_pays() {
        let text = b"the same line again\n".repeat(100);
        let packed = encode_body(&text, 3);
        assert_eq!(packed[0], 1);
        assert_eq!(decode_body(&packed, "t").unwrap(), text);
        let noise = noise(4096);
        let raw = encode_body(&noise, 3);
        assert_eq!(raw[0], 0);
        assert_eq!(decode_body(&raw, "n").unwrap(), noise);
        assert!(decode_body(&[9, 1, 2], "x").is_err());
    }

    #[test]
    fn one_encoder_encodes_many_bodies_like_a_fresh_one() {
        let mut encoder = BodyEncoder::new(3);
        let lines: Vec<u8> = (0..20_000)
            .flat_map(|i| {
                format!(
                    "2026-12-05T10:00:{:02}Z level=info req={i} msg=\"served\"\n",
                    i % 60
                )
                .into_bytes()
            })
            .collect();
        for data in [noise(1 << 20), lines.clone(), noise(100), lines[..5000].to_vec()] {
            let (flag, body) = encoder.encode(&data);
            let mut stored = vec![flag];
            stored.extend_from_slice(body);
            assert_eq!(stored, encode_body(&data, 3));
            assert!(decode_body(&stored, "t").unwrap() == data);
        }
        assert_eq!(encoder.encode(&lines).0, 1, "text compresses");
    }
}
