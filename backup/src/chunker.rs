//! Content-defined chunking with FastCDC (v2020, the `fastcdc` crate), parameters from the
//! repository config. Cut points depend only on the bytes from a chunk's start up to the
//! maximum chunk size, so however the input is read, the chunks are the same.

use std::io::Read;

use fastcdc::v2020::{FastCDC, Normalization};

use crate::repo::ChunkerParams;

/// Calls `f` with each chunk of `reader`, in order. Returns the bytes read.
///
/// Reads into one buffer of twice the maximum chunk size and cuts in place, moving the
/// unchunked tail to the front once per refill. (`fastcdc`'s own `StreamCDC` shifts its
/// whole buffer and zeroes it again after every chunk, which cost more than zstd here.)
pub(crate) fn chunks<R: Read>(
    mut reader: R,
    params: ChunkerParams,
    mut f: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let max = params.max as usize;
    let cdc = |buf: &[u8]| {
        FastCDC::with_level_and_seed(
            buf,
            params.min,
            params.avg,
            params.max,
            Normalization::Level1,
            params.seed,
        )
        .cut(0, buf.len())
        .1
    };
    // Read up to one maximum chunk first: most files end there.
    let mut buf = Vec::new();
    (&mut reader).take(max as u64 + 1).read_to_end(&mut buf)?;
    let mut eof = buf.len() <= max;
    let mut pos = 0;
    let mut total = 0u64;
    loop {
        if !eof && buf.len() - pos < max {
            buf.drain(..pos);
            pos = 0;
            let want = 2 * max - buf.len();
            let got = (&mut reader).take(want as u64).read_to_end(&mut buf)?;
            eof = got < want;
        }
        if pos == buf.len() {
            return Ok(total);
        }
        let len = cdc(&buf[pos..]);
        f(&buf[pos..pos + len])?;
        pos += len;
        total += len as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed pseudo-random fixture (xorshift64*, seed 1): 24 MiB, with repeats so that
    /// content-defined cuts matter.
    fn fixture() -> Vec<u8> {
        let mut x: u64 = 1;
        let mut block = Vec::with_capacity(6 << 20);
        while block.len() < 6 << 20 {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            block.extend_from_slice(&x.wrapping_mul(0x2545F4914F6CDD1D).to_le_bytes());
        }
        let mut out = block.clone();
        out.extend_from_slice(b"an insertion shifts everything after it");
        out.extend_from_slice(&block);
        out.extend_from_slice(&block[..4 << 20]);
        out.extend_from_slice(&block);
        out
    }

    fn cut_points(data: &[u8], params: ChunkerParams) -> Vec<usize> {
        let mut cuts = Vec::new();
        let mut at = 0;
        let n = chunks(data, params, |c| {
            at += c.len();
            cuts.push(at);
            Ok(())
        })
        .unwrap();
        assert_eq!(n as usize, data.len());
        cuts
    }

    /// Golden: these cut points are part of repository format v1 (same data, same params,
    /// same chunks, so dedup keeps working across versions). Never change them.
    #[test]
    fn golden_cut_points_v1() {
        let data = fixture();
        let cuts = cut_points(&data, ChunkerParams::with_seed(0x0b5));
        let golden: &[usize] = &[
            1488948, 2620498, 3906599, 5425800, 7005852, 8175924, 10198094, 11717295, 13297308, 14467380,
            16489550, 18266203, 19397753, 20683854, 22203055, 23068711,
        ];
        assert_eq!(cuts, golden, "cut points changed");
    }

    #[test]
    fn in_memory_and_streamed_cuts_agree_and_repeats_dedup() {
        let data = fixture();
        let params = ChunkerParams::with_seed(7);
        let streamed = cut_points(&data, params);
        let small = &data[..params.max as usize];
        let in_memory = cut_points(small, params);
        let streamed_prefix: Vec<usize> = streamed
            .iter()
            .copied()
            .take_while(|&c| c < in_memory[in_memory.len() - 2] + 1)
            .collect();
        assert_eq!(streamed_prefix, in_memory[..streamed_prefix.len()]);
        // The repeated 6 MiB block yields the same chunks after the insertion.
        let mut sizes = std::collections::HashSet::new();
        let mut at = 0;
        let mut repeats = 0;
        for &c in &streamed {
            if !sizes.insert(blake3::hash(&data[at..c])) {
                repeats += 1;
            }
            at = c;
        }
        assert!(repeats >= 6, "only {repeats} repeated chunks");
        assert!(streamed
            .iter()
            .zip(streamed.iter().skip(1))
            .all(|(a, b)| b - a <= params.max as usize));
    }
}
