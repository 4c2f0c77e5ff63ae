//! Packs: many sealed blobs in one object, so S3 sees few, large PUTs.
//!
//! # Format (version 1)
//!
//! ```text
//! blob_0 .. blob_n-1      each seal(flag || body), see repo/mod.rs; in random order
//! header                  seal(1u8 || postcard Vec<HeaderEntry { type, id, len }>)
//!                         in file order; offsets are the running sum of lengths
//! header_len              u32 little endian: the header's stored length
//! ```
//!
//! The pack's name is the BLAKE3 of all its bytes. The header lets `check` and index repair
//! learn a pack's content from the pack alone.

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::crypto::MasterKey;
use super::{BlobType, Id};
use crate::error::{Error, Result};

/// One blob in a pack, as the header and the index files list it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedBlob {
    pub kind: BlobType,
    pub id: Id,
    pub offset: u32,
    /// Stored (sealed) length.
    pub len: u32,
}

#[derive(Serialize, Deserialize)]
struct HeaderEntry {
    kind: BlobType,
    id: Id,
    len: u32,
}

const HEADER_VERSION: u8 = 1;

/// Sealed blobs waiting to become a pack.
#[derive(Debug, Default)]
pub(crate) struct PackBuilder {
    blobs: Vec<(BlobType, Id, Vec<u8>)>,
    size: usize,
}

/// A finished pack: its bytes, name and content.
#[derive(Debug)]
pub(crate) struct FinishedPack {
    pub id: Id,
    pub bytes: Vec<u8>,
    pub blobs: Vec<PackedBlob>,
}

impl PackBuilder {
    pub(crate) fn add(&mut self, kind: BlobType, id: Id, sealed: Vec<u8>) {
        self.size += sealed.len();
        self.blobs.push((kind, id, sealed));
    }

    /// Bytes of blobs so far.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Shuffles the blobs, writes them and the header.
    pub(crate) fn finish(mut self, key: &MasterKey) -> FinishedPack {
        self.blobs.shuffle(&mut rand::rng());
        let mut bytes = Vec::with_capacity(self.size + 64 + self.blobs.len() * 48);
        let mut blobs = Vec::with_capacity(self.blobs.len());
        let mut header = Vec::with_capacity(self.blobs.len());
        for (kind, id, sealed) in self.blobs {
            blobs.push(PackedBlob {
                kind,
                id,
                offset: bytes.len() as u32,
                len: sealed.len() as u32,
            });
            header.push(HeaderEntry {
                kind,
                id,
                len: sealed.len() as u32,
            });
            bytes.extend_from_slice(&sealed);
        }
        let mut plain = vec![HEADER_VERSION];
        plain.extend(postcard::to_stdvec(&header).expect("header serializes"));
        let before = bytes.len();
        key.seal_into(&plain, &mut bytes);
        let header_len = (bytes.len() - before) as u32;
        bytes.extend_from_slice(&header_len.to_le_bytes());
        FinishedPack {
            id: Id::of_bytes(&bytes),
            bytes,
            blobs,
        }
    }
}

/// Reads the blob list from a whole pack's bytes, checking that it describes the pack exactly.
pub(crate) fn read_header(key: &MasterKey, pack: &[u8], what: &str) -> Result<Vec<PackedBlob>> {
    let corrupt = |why: &str| Error::Corrupt {
        what: what.to_string(),
        why: why.to_string(),
    };
    let Some(len_at) = pack.len().checked_sub(4) else {
        return Err(corrupt("shorter than a pack trailer"));
    };
    let header_len = u32::from_le_bytes(pack[len_at..].try_into().expect("4 bytes")) as usize;
    let Some(header_at) = len_at.checked_sub(header_len) else {
        return Err(corrupt("header length points outside the pack"));
    };
    let plain = key.open(&pack[header_at..len_at], &format!("{what} header"))?;
    if plain.first() != Some(&HEADER_VERSION) {
        return Err(corrupt("unknown pack header version"));
    }
    let entries: Vec<HeaderEntry> =
        postcard::from_bytes(&plain[1..]).map_err(|_| corrupt("unreadable pack header"))?;
    let mut offset = 0usize;
    let mut blobs = Vec::with_capacity(entries.len());
    for e in entries {
        blobs.push(PackedBlob {
            kind: e.kind,
            id: e.id,
            offset: offset as u32,
            len: e.len,
        });
        offset += e.len as usize;
    }
    if offset != header_at {
        return Err(corrupt("header does not add up to the pack's size"));
    }
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lists_every_blob_at_its_offset() {
        let key = MasterKey::random();
        let mut b = PackBuilder::default();
        let items: Vec<(Id, Vec<u8>)> = (0..20u8)
            .map(|i| (key.blob_id(&[i]), key.seal(&vec![i; 100 + i as usize])))
            .collect();
        for (id, sealed) in &items {
            b.add(BlobType::Data, *id, sealed.clone());
        }
        let pack = b.finish(&key);
        assert_eq!(Id::of_bytes(&pack.bytes), pack.id);
        let header = read_header(&key, &pack.bytes, "p").unwrap();
        assert_eq!(header, pack.blobs);
        for blob in &header {
            let (_, sealed) = items.iter().find(|(id, _)| *id == blob.id).unwrap();
            let at = blob.offset as usize;
            assert_eq!(&pack.bytes[at..at + blob.len as usize], &sealed[..]);
        }
        let order: Vec<Id> = header.iter().map(|b| b.id).collect();
        let given: Vec<Id> = items.iter().map(|(id, _)| *id).collect();
        assert_ne!(order, given, "blobs are written in random order");
    }

    #[test]
    fn damaged_trailers_are_errors_not_panics() {
        let key = MasterKey::random();
        let mut b = PackBuilder::default();
        b.add(BlobType::Tree, key.blob_id(b"t"), key.seal(b"t"));
        let pack = b.finish(&key).bytes;
        for cut in 0..pack.len() {
            assert!(read_header(&key, &pack[..cut], "p").is_err());
        }
        let mut bad = pack.clone();
        let n = bad.len();
        bad[n - 1] = 0xff;
        assert!(read_header(&key, &bad, "p").is_err());
    }
}
