//! Memory per indexed blob: loads N blob entries (as if read from index files of N/16 packs,
//! 16 blobs per pack as with 1 MiB chunks in 16 MiB packs) into the backup index and prints
//! the growth of the process's resident memory per blob, and the index's own accounting.
//! Goal ≤ 40 bytes per blob (restic ~56, rustic 48).
//!
//!   cargo run --release -p obs-benches --bin backup-index-bench -- --blobs 4000000

use obs_backup::testing::{Index, PackedBlob};
use obs_backup::{BlobType, Id};
use obs_benches::{arg, Rng};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

fn main() {
    let n = arg("blobs", 4_000_000);
    let per_pack = 16;
    let mut rng = Rng(42);
    let before = rss_bytes();
    let mut index = Index::default();
    let mut blobs = Vec::with_capacity(per_pack);
    for p in 0..n / per_pack {
        blobs.clear();
        for b in 0..per_pack {
            let mut id = [0u8; 32];
            for part in id.chunks_mut(8) {
                part.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            blobs.push(PackedBlob {
                kind: BlobType::Data,
                id: Id(id),
                offset: (b as u32) << 20,
                len: 1 << 20,
            });
        }
        index.add_pack(Id::of_bytes(&(p as u64).to_le_bytes()), &blobs);
    }
    index.finish();
    let after = rss_bytes();
    println!(
        "{} blobs in {} packs: RSS grew {:.1} bytes per blob; the index counts {:.1} bytes per blob",
        index.len(),
        index.packs().len(),
        (after - before) as f64 / index.len() as f64,
        index.bytes_per_blob()
    );
}
