//! The repository: where objects live, how they are encoded, and how it is opened.
//!
//! # Layout (format version 1)
//!
//! ```text
//! config                  sealed JSON RepoConfig: version, id, chunker params + secret seed,
//!                         compression level, pack size. Written once, with create-only PUT.
//! keys/<random id>        JSON KeyFile: the master key sealed under argon2id(password)
//! data/<xx>/<pack id>     packs (pack.rs); xx = first two hex digits of the id
//! index/<id>              sealed, zstd'd postcard IndexFile: which blobs are in which pack
//! snapshots/<id>          sealed JSON Snapshot: time, host, paths, tags, root tree
//! locks/<random id>       sealed JSON Lock: who holds the repository, shared or exclusive
//! prune/<id>              sealed JSON plan of a prune that has not finished
//! ```
//!
//! Every object except key files is sealed with the master key (XChaCha20-Poly1305, fresh
//! nonce: crypto.rs), so every byte is authenticated. The ids of packs, index files and
//! snapshots are the BLAKE3 of their stored bytes, so `check --read-data` spots bit flips
//! without the key and nothing is ever overwritten: writers only create new objects, with
//! create-only PUTs where a name could be reused (`config`, locks).
//!
//! Blobs (file chunks and trees) are encoded as `seal(flag || body)` where flag 0 means the
//! body is the data as is and 1 means it is zstd; a chunk is stored raw when zstd saves
//! less than 3%. A blob's id is the keyed BLAKE3 of its plain content ([`crypto`]), checked
//! again on every read.
//!
//! Opening: list `keys/`, try the password on each key file (argon2id), then read `config`.

pub(crate) mod body;
pub(crate) mod crypto;
pub(crate) mod id;
pub(crate) mod index;
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
pub mod lock;
pub(crate) mod pack;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub(crate) use body::{decode_body, encode_body, BodyEncoder};
use crypto::{KdfParams, KeyFile, MasterKey};
pub use id::Id;
use index::Index;

/// Current repository format version.
pub(crate) const VERSION: u32 = 1;

/// What a repository keeps in `config`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoConfig {
    pub version: u32,
    pub id: Id,
    pub chunker: ChunkerParams,
    /// zstd level for chunks and metadata.
    pub compression: i32,
    /// A pack is finished once it holds this many bytes.
    pub pack_size: u32,
}

/// FastCDC (v2020) parameters, frozen at `init`; the seed keys the gear table so cut points
/// reveal nothing about content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
    pub seed: u64,
}

impl ChunkerParams {
    pub fn with_seed(seed: u64) -> ChunkerParams {
        ChunkerParams {
            min: 256 * 1024,
            avg: 1024 * 1024,
            max: 8 * 1024 * 1024,
            seed,
        }
    }
}

/// Options for `init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub kdf: KdfParams,
    pub compression: i32,
    pub pack_size: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf: KdfParams::default(),
            compression: 3,
            pack_size: 16 * 1024 * 1024,
        }
    }
}

/// Blob types: file content or a directory listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlobType {
    Data,
    Tree,
}

/// An open repository.
#[derive(Debug)]
pub struct Repository {
    store: Arc<dyn ObjectStore>,
    url: String,
    key: MasterKey,
    config: RepoConfig,
    limiter: Option<Limiter>,
    pub(crate) index: std::sync::RwLock<Index>,
}

/// Opens the object store a repository URL names: `s3://bucket/prefix` (endpoint and keys
/// from the AWS_* environment variables) or a local directory.
pub(crate) fn open_store(url: &str) -> Result<Arc<dyn ObjectStore>> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Usage(format!(
                "{url}: name a bucket, as in s3://bucket/prefix"
            )));
        }
        // object_store's HTTP client takes rustls's process-wide provider: ring, as everywhere
        // in obs (a second install is refused, harmlessly).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(object_store::RetryConfig {
                max_retries: 10,
                retry_timeout: Duration::from_secs(180),
                ..Default::default()
            })
            .build()?;
        let store: Arc<dyn ObjectStore> = Arc::new(s3);
        let prefix = prefix.trim_matches('/');
        Ok(if prefix.is_empty() {
            store
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
        })
    } else if url.contains("://") {
        Err(Error::Usage(format!(
            "{url}: unknown repository scheme; use s3://bucket/prefix or a local path"
        )))
    } else {
        std::fs::create_dir_all(url).map_err(|e| Error::io(url, e))?;
        let local = object_store::local::LocalFileSystem::new_with_prefix(url)?.with_fsync(true);
        Ok(Arc::new(local))
    }
}

fn create_only() -> PutOptions {
    PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    }
}

impl Repository {
    /// Creates a repository at `url`, refusing when one is already there.
    pub async fn init(url: &str, password: &[u8], opts: InitOptions) -> Result<Repository> {
        let store = open_store(url)?;
        match store.head(&Path::from("config")).await {
            Ok(_) => return Err(Error::AlreadyExists(url.to_string())),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let key = MasterKey::random();
        let key_file = KeyFile::wrap(&key, password, opts.kdf, &hostname())?;
        let key_path = Path::from(format!("keys/{}", Id::random()));
        let json = serde_json::to_vec_pretty(&key_file).expect("key file serializes");
        store.put_opts(&key_path, json.into(), create_only()).await?;
        let config = RepoConfig {
            version: VERSION,
            id: Id::random(),
            chunker: ChunkerParams::with_seed(rand::random()),
            compression: opts.compression,
            pack_size: opts.pack_size,
        };
        let sealed = key.seal(&serde_json::to_vec(&config).expect("config serializes"));
        match store
            .put_opts(&Path::from("config"), sealed.into(), create_only())
            .await
        {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                // Another `init` won the race: leave its repository as it is.
                let _ = store.delete(&key_path).await;
                return Err(Error::AlreadyExists(url.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(Repository::new(store, url, key, config))
    }

    /// Opens the repository at `url` with `password` and loads its index.
    pub async fn open(url: &str, password: &[u8]) -> Result<Repository> {
        let repo = Repository::open_without_index(url, password).await?;
        repo.reload_index().await?;
        Ok(repo)
    }

    /// Opens the repository without reading its index (for commands that only need snapshots).
    pub async fn open_without_index(url: &str, password: &[u8]) -> Result<Repository> {
        let store = open_store(url)?;
        let config_bytes = match store.get(&Path::from("config")).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::NoRepository(url.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        let mut key = None;
        for meta in list(&store, "keys").await? {
            let bytes = store.get(&meta.location).await?.bytes().await?;
            let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                what: format!("key file {}", meta.location),
                why: e.to_string(),
            })?;
            if let Some(k) = file.unwrap_key(password)? {
                key = Some(k);
                break;
            }
        }
        let key = key.ok_or_else(|| Error::WrongPassword(url.to_string()))?;
        let plain = key.open(&config_bytes, "config")?;
        let config: RepoConfig = serde_json::from_slice(&plain).map_err(|e| Error::Corrupt {
            what: "config".to_string(),
            why: e.to_string(),
        })?;
        if config.version != VERSION {
            return Err(Error::Format(format!(
                "repository format version {} (this obs reads version {VERSION}); upgrade obs",
                config.version
            )));
        }
        Ok(Repository::new(store, url, key, config))
    }

    fn new(store: Arc<dyn ObjectStore>, url: &str, key: MasterKey, config: RepoConfig) -> Repository {
        Repository {
            store,
            url: url.to_string(),
            key,
            config,
            limiter: None,
            index: Default::default(),
        }
    }

    /// Caps upload bandwidth (packs and index files) at `bytes_per_sec`.
    pub fn limit_upload(&mut self, bytes_per_sec: u64) {
        self.limiter = Some(Limiter::new(bytes_per_sec));
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Lists the ids of the objects under `dir` (`snapshots`, `index`, `locks`, ...).
    pub async fn list_ids(&self, dir: &str) -> Result<Vec<(Id, u64)>> {
        let mut out = Vec::new();
        for meta in list(&self.store, dir).await? {
            if let Some(Ok(id)) = meta.location.filename().map(str::parse::<Id>) {
                out.push((id, meta.size));
            }
        }
        Ok(out)
    }

    /// Writes bytes under a new name, honouring the upload limit.
    pub async fn put_new(&self, path: &Path, bytes: Vec<u8>) -> Result<()> {
        if let Some(limiter) = &self.limiter {
            limiter.take(bytes.len() as u64).await;
        }
        self.store
            .put_opts(path, PutPayload::from(Bytes::from(bytes)), create_only())
            .await
            .map(|_| ())
            .or_else(|e| match e {
                // Same name, same content: the name is the hash of the bytes.
                object_store::Error::AlreadyExists { .. } => Ok(()),
                e => Err(e.into()),
            })
    }

    pub async fn get(&self, path: &Path) -> Result<Bytes> {
        Ok(self.store.get(path).await?.bytes().await?)
    }

    /// Seals `value` as JSON (zstd'd) and stores it as `dir/<id>`.
    pub async fn save_object<T: Serialize>(&self, dir: &str, value: &T) -> Result<Id> {
        self.save_raw(dir, &serde_json::to_vec(value).expect("objects serialize"))
            .await
    }

    /// Reads, authenticates and parses the JSON object `dir/<id>`.
    pub async fn load_object<T: DeserializeOwned>(&self, dir: &str, id: &Id) -> Result<T> {
        let plain = self.load_raw(dir, id).await?;
        serde_json::from_slice(&plain).map_err(|e| Error::Corrupt {
            what: format!("{dir}/{id}"),
            why: e.to_string(),
        })
    }

    /// Seals `plain` (zstd'd) and stores it as `dir/<id>`, id = BLAKE3 of the stored bytes.
    pub async fn save_raw(&self, dir: &str, plain: &[u8]) -> Result<Id> {
        let sealed = self.key.seal(&encode_body(plain, self.config.compression));
        let id = Id::of_bytes(&sealed);
        self.put_new(&Path::from(format!("{dir}/{id}")), sealed).await?;
        Ok(id)
    }

    /// Reads `dir/<id>`, checks its name, authenticates and decompresses it.
    pub async fn load_raw(&self, dir: &str, id: &Id) -> Result<Vec<u8>> {
        let what = format!("{dir}/{id}");
        let sealed = self.get(&Path::from(what.as_str())).await?;
        if Id::of_bytes(&sealed) != *id {
            return Err(Error::Corrupt {
                what,
                why: "its content does not match its name".to_string(),
            });
        }
        decode_body(&self.key.open(&sealed, &what)?, &what)
    }

    pub async fn delete(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// All objects under `dir`.
pub(crate) async fn list(store: &Arc<dyn ObjectStore>, dir: &str) -> Result<Vec<object_store::ObjectMeta>> {
    Ok(store.list(Some(&Path::from(dir))).try_collect().await?)
}

/// A token bucket over upload bytes: callers wait until the average rate is below the cap.
#[derive(Debug)]
struct Limiter {
    bytes_per_sec: u64,
    /// When the bytes sent so far would have finished at the capped rate.
    free_at: Mutex<Instant>,
}

impl Limiter {
    fn new(bytes_per_sec: u64) -> Limiter {
        Limiter {
            bytes_per_sec: bytes_per_sec.max(1),
            free_at: Mutex::new(Instant::now()),
        }
    }

    async fn take(&self, bytes: u64) {
        let wait_until = {
            let mut free_at = self.free_at.lock().expect("limiter lock");
            let start = (*free_at).max(Instant::now());
            *free_at = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
            start
        };
        tokio::time::sleep_until(wait_until.into()).await;
    }
}

pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Where pack `id` lives.
pub(crate) fn pack_path(id: &Id) -> Path {
    let hex = id.to_string();
    Path::from(format!("data/{}/{hex}", &hex[..2]))
}

impl Repository {
    /// Reads one blob: a range read of its pack, authenticated, decompressed, and checked
    /// against its id.
    pub async fn read_blob(&self, id: &Id) -> Result<Vec<u8>> {
        let loc = self
            .index
            .read()
            .expect("index lock")
            .get(id)
            .ok_or_else(|| Error::Corrupt {
                what: format!("blob {id}"),
                why: "it is in no index (run `obs backup check`)".to_string(),
            })?;
        let range = loc.offset as u64..loc.offset as u64 + loc.len as u64;
        let sealed = self.store.get_range(&pack_path(&loc.pack), range).await?;
        self.open_blob(id, &sealed, &format!("blob {} in pack {}", id.short(), loc.pack))
    }

    /// Bytes `range` of pack `id`.
    pub async fn read_pack_range(&self, id: &Id, range: std::ops::Range<u64>) -> Result<Bytes> {
        Ok(self.store.get_range(&pack_path(id), range).await?)
    }

    /// Decrypts and decodes a stored blob and checks that its content hashes to `id`.
    pub fn open_blob(&self, id: &Id, sealed: &[u8], what: &str) -> Result<Vec<u8>> {
        let plain = decode_body(&self.key.open(sealed, what)?, what)?;
        if self.key.blob_id(&plain) != *id {
            return Err(Error::Corrupt {
                what: what.to_string(),
                why: "its content does not hash to its id".to_string(),
            });
        }
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// --limit-upload: the n-th byte is not sent before n / rate seconds (virtual clock).
    #[tokio::test(start_paused = true)]
    async fn upload_limit_paces_puts_to_the_rate() {
        let limiter = Limiter::new(100 * 1024);
        let start = tokio::time::Instant::now();
        for _ in 0..4 {
            limiter.take(50 * 1024).await;
        }
        // Four 50 KiB puts at 100 KiB/s: the last may start after 1.5 s, not before.
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(1500) && waited < Duration::from_millis(1600),
            "{waited:?}"
        );
    }
}
