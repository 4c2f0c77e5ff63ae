//! Keys and authenticated encryption.
//!
//! - [`MasterKey`]: 32 bytes for XChaCha20-Poly1305 plus 32 bytes keying BLAKE3 for blob ids,
//!   random at `init`, never written in clear.
//! - Sealed bytes (every object and blob in the repository): `nonce (24 random bytes) ||
//!   ciphertext || Poly1305 tag (16)`. A fresh random nonce per seal; 192-bit nonces make
//!   random collisions a non-issue.
//! - Key files wrap the master key under `argon2id(password, salt)`; the wrapped copy is
//!   sealed the same way, so a wrong password fails authentication and nothing is written.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::id::Id;
use crate::error::{Error, Result};

pub(crate) const NONCE_LEN: usize = 24;
pub(crate) const TAG_LEN: usize = 16;
/// Bytes a seal adds to its plaintext.
pub(crate) const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// The repository's secret keys.
#[derive(Clone)]
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    enc: [u8; 32],
    id: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn random() -> MasterKey {
        let mut enc = [0u8; 32];
        let mut id = [0u8; 32];
        rand::rng().fill_bytes(&mut enc);
        rand::rng().fill_bytes(&mut id);
        MasterKey::from_parts(enc, id)
    }

    fn from_parts(enc: [u8; 32], id: [u8; 32]) -> MasterKey {
        MasterKey {
            cipher: XChaCha20Poly1305::new(&enc.into()),
            enc,
            id,
        }
    }

    /// The id of a blob: BLAKE3 keyed with the repository's id key, so ids reveal nothing
    /// about content to someone without the key.
    pub fn blob_id(&self, data: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id, data).as_bytes())
    }

    /// Encrypts `plain` with a fresh nonce.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        self.seal_parts(&[plain])
    }

    /// Seals the concatenation of `parts` into one new buffer (no intermediate copy).
    pub fn seal_parts(&self, parts: &[&[u8]]) -> Vec<u8> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut out = Vec::with_capacity(len + OVERHEAD);
        self.seal_parts_into(parts, &mut out);
        out
    }

    /// Appends the sealed form of `plain` to `out`.
    pub fn seal_into(&self, plain: &[u8], out: &mut Vec<u8>) {
        self.seal_parts_into(&[plain], out)
    }

    fn seal_parts_into(&self, parts: &[&[u8]], out: &mut Vec<u8>) {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        out.extend_from_slice(&nonce);
        let start = out.len();
        for p in parts {
            out.extend_from_slice(p);
        }
        let tag = self
            .cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), b"", &mut out[start..])
            .expect("XChaCha20-Poly1305 encrypts any length below 256 GiB");
        out.extend_from_slice(&tag);
    }

    /// Decrypts and authenticates sealed bytes; `what` names the object in the error.
    pub fn open(&self, sealed: &[u8], what: &str) -> Result<Vec<u8>> {
        open_with(&self.cipher, sealed).ok_or_else(|| Error::Corrupt {
            what: what.to_string(),
            why: "authentication failed (the bytes were changed or belong to another repository)".to_string(),
        })
    }
}

fn open_with(cipher: &XChaCha20Poly1305, sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < OVERHEAD {
        return None;
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut plain = body.to_vec();
    cipher
        .decrypt_in_place_detached(XNonce::from_slice(nonce), b"", &mut plain, tag.into())
        .ok()?;
    Some(plain)
}

/// argon2id cost parameters, stored in each key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes: about a quarter of a second here, as OWASP suggests for argon2id.
    fn default() -> Self {
        KdfParams {
            m_kib: 64 * 1024,
            t: 3,
            p: 1,
        }
    }
}

/// A key file (`keys/<id>`): the master key wrapped under a password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyFile {
    pub version: u32,
    pub created: chrono::DateTime<chrono::Utc>,
    pub host: String,
    pub kdf: String,
    pub params: KdfParams,
    /// Hex.
    pub salt: String,
    /// Hex of the sealed 64-byte master key.
    pub data: String,
}

fn kek(password: &[u8], salt: &[u8], params: KdfParams) -> Result<XChaCha20Poly1305> {
    let p = argon2::Params::new(params.m_kib, params.t, params.p, Some(32))
        .map_err(|e| Error::Format(format!("key file has unusable argon2 parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(password, salt, &mut out)
        .map_err(|e| Error::Format(format!("argon2id failed: {e}")))?;
    Ok(XChaCha20Poly1305::new(&out.into()))
}

impl KeyFile {
    /// Wraps `key` under `password`.
    pub(crate) fn wrap(key: &MasterKey, password: &[u8], params: KdfParams, host: &str) -> Result<KeyFile> {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let cipher = kek(password, &salt, params)?;
        let mut plain = [0u8; 64];
        plain[..32].copy_from_slice(&key.enc);
        plain[32..].copy_from_slice(&key.id);
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut body = plain.to_vec();
        let tag = cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), b"", &mut body)
            .expect("64 bytes encrypt");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&body);
        sealed.extend_from_slice(&tag);
        Ok(KeyFile {
            version: 1,
            created: chrono::Utc::now(),
            host: host.to_string(),
            kdf: "argon2id".to_string(),
            params,
            salt: hex(&salt),
            data: hex(&sealed),
        })
    }

    /// The master key, or `None` when the password does not open this key file.
    pub(crate) fn unwrap_key(&self, password: &[u8]) -> Result<Option<MasterKey>> {
        if self.kdf != "argon2id" {
            return Err(Error::Format(format!("key file uses unknown kdf {:?}", self.kdf)));
        }
        let bad = || Error::Format("key file is not valid hex".to_string());
        let salt = unhex(&self.salt).ok_or_else(bad)?;
        let sealed = unhex(&self.data).ok_or_else(bad)?;
        let cipher = kek(password, &salt, self.params)?;
        let Some(plain) = open_with(&cipher, &sealed) else {
            return Ok(None);
        };
        if plain.len() != 64 {
            return Err(Error::Format(
                "key file holds a key of the wrong length".to_string(),
            ));
        }
        let enc: [u8; 32] = plain[..32].try_into().expect("32 bytes");
        let id: [u8; 32] = plain[32..].try_into().expect("32 bytes");
        Ok(Some(MasterKey::from_parts(enc, id)))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: KdfParams = KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    #[test]
    fn seal_open_round_trips_and_detects_any_flipped_bit() {
        let key = MasterKey::random();
        let sealed = key.seal(b"hello backup");
        assert_eq!(key.open(&sealed, "x").unwrap(), b"hello backup");
        assert_ne!(key.seal(b"hello backup"), sealed, "fresh nonce per seal");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x10;
            assert!(key.open(&bad, "x").is_err(), "flip at byte {i} went unnoticed");
        }
        assert!(MasterKey::random().open(&sealed, "x").is_err());
    }

    #[test]
    fn key_file_opens_with_the_password_only() {
        let key = MasterKey::random();
        let file = KeyFile::wrap(&key, b"correct horse", CHEAP, "h").unwrap();
        let back = file.unwrap_key(b"correct horse").unwrap().unwrap();
        assert_eq!(back.blob_id(b"a"), key.blob_id(b"a"));
        assert!(file.unwrap_key(b"wrong").unwrap().is_none());
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(unhex("000fff").unwrap(), vec![0, 15, 255]);
        assert!(unhex("0g").is_none());
        assert!(unhex("abc").is_none());
    }
}
