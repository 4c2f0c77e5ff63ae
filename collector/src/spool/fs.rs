//! The few file operations the spool needs, behind a trait so the model tests can run it on
//! an in-memory filesystem that forgets unsynced writes on a simulated crash.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A flat directory of named files.
pub(crate) trait SpoolFs: Send + Sync + std::fmt::Debug {
    /// File names (not paths), in no particular order.
    fn list(&self) -> io::Result<Vec<String>>;
    fn len(&self, name: &str) -> io::Result<u64>;
    /// Up to `len` bytes from `offset` (fewer at the end of the file).
    fn read_at(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// Appends `parts` one after the other, creating the file if needed. Not durable until
    /// [`SpoolFs::sync`].
    fn append(&self, name: &str, parts: &[&[u8]]) -> io::Result<()>;
    fn sync(&self, name: &str) -> io::Result<()>;
    fn truncate(&self, name: &str, len: u64) -> io::Result<()>;
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Moves a file out of the spool into its `quarantine/` directory.
    fn quarantine(&self, name: &str) -> io::Result<()>;
    /// Replaces `name` atomically and durably (write, fsync, rename).
    fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()>;
}

/// The real thing: a directory on disk. Keeps the file being appended to open.
#[derive(Debug)]
pub(crate) struct OsFs {
    dir: PathBuf,
    /// The file being appended to. Shared, so that an fsync runs without this lock and
    /// appends go on meanwhile.
    open: Mutex<Option<(String, Arc<File>)>>,
    /// A file was created since the directory was last fsynced.
    dir_dirty: AtomicBool,
}

impl OsFs {
    pub(crate) fn new(dir: &Path) -> io::Result<OsFs> {
        std::fs::create_dir_all(dir)?;
        Ok(OsFs {
            dir: dir.to_path_buf(),
            open: Mutex::new(None),
            dir_dirty: AtomicBool::new(false),
        })
    }

    /// The file `name`, kept open for appending.
    fn file(&self, name: &str) -> io::Result<Arc<File>> {
        let mut open = self.open.lock().expect("spool file lock");
        match &*open {
            Some((n, file)) if n == name => Ok(file.clone()),
            _ => {
                let path = self.dir.join(name);
                if !path.exists() {
                    self.dir_dirty.store(true, Ordering::Relaxed);
                }
                let file = Arc::new(OpenOptions::new().create(true).append(true).open(path)?);
                *open = Some((name.to_string(), file.clone()));
                Ok(file)
            }
        }
    }

    fn forget(&self, name: &str) {
        let mut open = self.open.lock().expect("spool file lock");
        if open.as_ref().is_some_and(|(n, _)| n == name) {
            *open = None;
        }
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

impl SpoolFs for OsFs {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(names)
    }

    fn len(&self, name: &str) -> io::Result<u64> {
        Ok(std::fs::metadata(self.dir.join(name))?.len())
    }

    fn read_at(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let file = File::open(self.dir.join(name))?;
        let mut buf = vec![0; len];
        let mut filled = 0;
        while filled < len {
            match file.read_at(&mut buf[filled..], offset + filled as u64)? {
                0 => break,
                n => filled += n,
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    fn append(&self, name: &str, parts: &[&[u8]]) -> io::Result<()> {
        let file = self.file(name)?;
        parts.iter().try_for_each(|p| (&*file).write_all(p))
    }

    fn sync(&self, name: &str) -> io::Result<()> {
        let open = self.open.lock().expect("spool file lock").clone();
        match open {
            Some((n, file)) if n == name => file.sync_data()?,
            _ => OpenOptions::new()
                .append(true)
                .open(self.dir.join(name))?
                .sync_data()?,
        }
        // A new segment is durable only once its directory entry is.
        if self.dir_dirty.swap(false, Ordering::Relaxed) {
            if let Err(e) = self.sync_dir() {
                self.dir_dirty.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(())
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        self.forget(name);
        let file = OpenOptions::new().write(true).open(self.dir.join(name))?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.forget(name);
        std::fs::remove_file(self.dir.join(name))
    }

    fn quarantine(&self, name: &str) -> io::Result<()> {
        self.forget(name);
        let q = self.dir.join("quarantine");
        std::fs::create_dir_all(&q)?;
        std::fs::rename(self.dir.join(name), q.join(name))?;
        self.sync_dir()
    }

    fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
        std::fs::rename(&tmp, self.dir.join(name))?;
        self.sync_dir()
    }
}

#[cfg(test)]
pub(crate) use mem::MemFs;

/// The in-memory directory of the tests (test builds only).
#[cfg(test)]
mod mem {
    use std::collections::BTreeMap;

    use super::*;

    /// An in-memory directory for tests: each file remembers how much of it was synced, and
    /// [`MemFs::crash`] drops the rest (keeping `torn` bytes of it, as a torn write would).
    #[derive(Debug, Default)]
    pub(crate) struct MemFs {
        files: Mutex<BTreeMap<String, MemFile>>,
        pub quarantined: Mutex<Vec<String>>,
    }

    #[derive(Debug, Default, Clone)]
    struct MemFile {
        data: Vec<u8>,
        synced: usize,
    }

    impl MemFs {
        /// Forgets unsynced data; `torn` bytes past the synced length survive in each file.
        pub(crate) fn crash(&self, torn: usize) {
            for f in self.files.lock().unwrap().values_mut() {
                let keep = (f.synced + torn).min(f.data.len());
                f.data.truncate(keep);
                f.synced = keep;
            }
        }

        /// Flips one bit of a file (for corruption tests).
        pub(crate) fn flip(&self, name: &str, at: usize) {
            let mut files = self.files.lock().unwrap();
            let f = files.get_mut(name).expect("file exists");
            f.data[at] ^= 0x10;
        }

        fn not_found(name: &str) -> io::Error {
            io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file"))
        }
    }

    impl SpoolFs for MemFs {
        fn list(&self) -> io::Result<Vec<String>> {
            Ok(self.files.lock().unwrap().keys().cloned().collect())
        }

        fn len(&self, name: &str) -> io::Result<u64> {
            let files = self.files.lock().unwrap();
            Ok(files.get(name).ok_or_else(|| Self::not_found(name))?.data.len() as u64)
        }

        fn read_at(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
            let files = self.files.lock().unwrap();
            let data = &files.get(name).ok_or_else(|| Self::not_found(name))?.data;
            let start = (offset as usize).min(data.len());
            Ok(data[start..(start + len).min(data.len())].to_vec())
        }

        fn append(&self, name: &str, parts: &[&[u8]]) -> io::Result<()> {
            let mut files = self.files.lock().unwrap();
            let file = &mut files.entry(name.to_string()).or_default().data;
            parts.iter().for_each(|p| file.extend_from_slice(p));
            Ok(())
        }

        fn sync(&self, name: &str) -> io::Result<()> {
            let mut files = self.files.lock().unwrap();
            let f = files.entry(name.to_string()).or_default();
            f.synced = f.data.len();
            Ok(())
        }

        fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
            let mut files = self.files.lock().unwrap();
            let f = files.get_mut(name).ok_or_else(|| Self::not_found(name))?;
            f.data.truncate(len as usize);
            f.synced = f.data.len();
            Ok(())
        }

        fn remove(&self, name: &str) -> io::Result<()> {
            let mut files = self.files.lock().unwrap();
            files
                .remove(name)
                .map(|_| ())
                .ok_or_else(|| Self::not_found(name))
        }

        fn quarantine(&self, name: &str) -> io::Result<()> {
            self.remove(name)?;
            self.quarantined.lock().unwrap().push(name.to_string());
            Ok(())
        }

        fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()> {
            let mut files = self.files.lock().unwrap();
            files.insert(
                name.to_string(),
                MemFile {
                    data: data.to_vec(),
                    synced: data.len(),
                },
            );
            Ok(())
        }
    }
}
