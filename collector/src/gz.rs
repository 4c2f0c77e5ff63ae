//! Gzip'd log files (`read_gzip = true`): what logrotate's `compress` leaves. A gzip'd file is
//! read as its decompressed content, front to back, once; offsets, fingerprints and the hash
//! of the bytes before a saved position are all of the decompressed content, so a file read
//! partly as plain text and compressed while the collector was down or behind goes on where
//! it stopped (see `files.rs`).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use flate2::read::MultiGzDecoder;

use crate::files::{first_line_fingerprint, fnv, FINGERPRINT_BYTES};

/// Whether a file starts with the gzip magic bytes.
pub(crate) fn is_gzip(file: &File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut magic = [0u8; 2];
    matches!(file.read_at(&mut magic, 0), Ok(2)) && magic == [0x1f, 0x8b]
}

/// A gzip'd file being read.
pub(crate) struct Gz {
    /// `None` once the end (or damage) is reached.
    decoder: Option<MultiGzDecoder<BufReader<File>>>,
    /// Decompressed bytes from `window_start` up to `pos`: what hashing a position that is
    /// not saved yet needs.
    window: Vec<u8>,
    window_start: u64,
    pos: u64,
}

impl Gz {
    pub(crate) fn open(file: &File) -> io::Result<Gz> {
        let mut f = file.try_clone()?;
        f.seek(SeekFrom::Start(0))?;
        Ok(Gz {
            decoder: Some(MultiGzDecoder::new(BufReader::new(f))),
            window: Vec::new(),
            window_start: 0,
            pos: 0,
        })
    }

    /// The fingerprint of the decompressed first line; `None` if there is none.
    pub(crate) fn fingerprint(file: &File) -> io::Result<Option<u64>> {
        let mut gz = Gz::open(file)?;
        let mut buf = [0u8; FINGERPRINT_BYTES];
        let mut n = 0;
        while n < buf.len() {
            match gz.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(first_line_fingerprint(&buf[..n]))
    }

    /// Reads decompressed bytes; 0 at the end. Damage (a cut or corrupt stream) ends the file
    /// after what came before it, with the error.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(d) = &mut self.decoder else { return Ok(0) };
        match d.read(buf) {
            Ok(0) => {
                self.decoder = None;
                Ok(0)
            }
            Ok(n) => {
                self.window.extend_from_slice(&buf[..n]);
                self.pos += n as u64;
                Ok(n)
            }
            Err(e) => {
                self.decoder = None;
                Err(e)
            }
        }
    }

    /// Decompressed bytes read so far.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Whether everything has been read.
    pub(crate) fn done(&self) -> bool {
        self.decoder.is_none()
    }

    /// Forgets the bytes no tail hash will need: those more than 256 before `offset`.
    pub(crate) fn forget_before(&mut self, offset: u64) {
        let keep_from = offset
            .saturating_sub(FINGERPRINT_BYTES as u64)
            .max(self.window_start);
        let drop = ((keep_from - self.window_start) as usize).min(self.window.len());
        self.window.drain(..drop);
        self.window_start += drop as u64;
    }

    /// The hash of the (up to) 256 bytes before `offset`, which must be at most what was read
    /// and not forgotten.
    pub(crate) fn tail_hash(&self, offset: u64) -> u64 {
        let end = offset.saturating_sub(self.window_start) as usize;
        let end = end.min(self.window.len());
        let start = end.saturating_sub(FINGERPRINT_BYTES);
        fnv(&self.window[start..end])
    }

    /// Reads up to `offset`; the hash of the 256 bytes before it, or `None` if the content
    /// is shorter.
    pub(crate) fn skip_to(&mut self, offset: u64) -> io::Result<Option<u64>> {
        let mut buf = vec![0u8; 64 << 10];
        while self.pos < offset {
            let want = buf.len().min((offset - self.pos) as usize);
            if self.read(&mut buf[..want])? == 0 {
                return Ok(None);
            }
            self.forget_before(self.pos);
        }
        Ok(Some(self.tail_hash(offset)))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gz_file(dir: &std::path::Path, content: &[u8]) -> File {
        let path = dir.join("a.log.gz");
        let mut enc =
            flate2::write::GzEncoder::new(File::create(&path).unwrap(), flate2::Compression::fast());
        enc.write_all(content).unwrap();
        enc.finish().unwrap();
        File::open(path).unwrap()
    }

    #[test]
    fn offsets_fingerprints_and_tail_hashes_are_of_the_decompressed_content() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..2000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let file = gz_file(dir.path(), &content);
        assert!(is_gzip(&file));
        assert_eq!(
            Gz::fingerprint(&file).unwrap(),
            first_line_fingerprint(&content[..FINGERPRINT_BYTES])
        );
        let at = 5000;
        let mut gz = Gz::open(&file).unwrap();
        assert_eq!(gz.skip_to(at as u64).unwrap(), Some(fnv(&content[at - 256..at])));
        let mut rest = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match gz.read(&mut buf).unwrap() {
                0 => break,
                n => rest.extend_from_slice(&buf[..n]),
            }
            gz.forget_before(gz.pos - 100);
        }
        assert_eq!(rest, content[at..]);
        assert!(gz.done());
        let end = content.len() as u64;
        assert_eq!(
            gz.tail_hash(end - 100),
            fnv(&content[content.len() - 356..content.len() - 100])
        );
        assert!(gz.window.len() < 8192, "what no hash needs is forgotten");
        assert_eq!(Gz::open(&file).unwrap().skip_to(end + 1).unwrap(), None);
    }

    #[test]
    fn a_cut_stream_ends_the_file_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..20000)
            .flat_map(|i| format!("entry {i} {}\n", i * 7919).into_bytes())
            .collect();
        let file = gz_file(dir.path(), &content);
        let path = dir.path().join("a.log.gz");
        let len = file.metadata().unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        let mut gz = Gz::open(&File::open(&path).unwrap()).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let err = loop {
            match gz.read(&mut buf) {
                Ok(0) => panic!("a cut stream must not look complete"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert!(gz.done(), "{err}");
    }
}
