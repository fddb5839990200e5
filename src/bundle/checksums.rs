//! `--checksums`: digests of staged files (sha2) and the coreutils-format `SHA256SUMS`/`SHA512SUMS`.
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use sha2::Digest as _;

use crate::engine::{Event, EventSink};
use crate::plan::{Op, Plan};

/// A digest algorithm `--checksums` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgo {
    Sha256,
    Sha512,
}

impl HashAlgo {
    /// The name in JSON (`"sha256": "…"`) and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha512 => "sha512",
        }
    }

    /// The checksums file `sha256sum -c` / `sha512sum -c` reads.
    pub fn sums_file(self) -> &'static str {
        match self {
            HashAlgo::Sha256 => "SHA256SUMS",
            HashAlgo::Sha512 => "SHA512SUMS",
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            HashAlgo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgo::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

/// A running digest, fed as the bytes go by.
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest in lower-case hex, as `sha256sum` prints it.
    pub fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => hex(&h.finalize()),
            Hasher::Sha512(h) => hex(&h.finalize()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Reads `path` once and returns its digest in hex.
pub fn hash_file(algo: HashAlgo, path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    hash_reader(algo, &mut f).map(|(hex, _)| hex)
}

/// The digest of everything `r` yields, and how many bytes that was.
pub fn hash_reader(algo: HashAlgo, r: &mut dyn Read) -> io::Result<(String, u64)> {
    let mut h = algo.hasher();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok((h.finish(), total)),
            Ok(n) => {
                h.update(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Digests of placed files, by destination path: filled from any worker thread, read once the
/// copy is over (for the checksums file) or as each file is reported (for its JSON line).
#[derive(Debug)]
pub struct Digests {
    algo: HashAlgo,
    map: Mutex<HashMap<PathBuf, String>>,
}

impl Digests {
    pub fn new(algo: HashAlgo) -> Digests {
        Digests {
            algo,
            map: Mutex::default(),
        }
    }

    pub fn algo(&self) -> HashAlgo {
        self.algo
    }

    pub fn insert(&self, dst: &Path, hex: String) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(dst.to_path_buf(), hex);
    }

    pub fn get(&self, dst: &Path) -> Option<String> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(dst)
            .cloned()
    }
}

/// Passes events on, first making sure each placed regular file reported done has its digest:
/// the engine leaves one for every file it copies (see `EventSink::hash_into`); a hard link
/// takes its file's; anything else is read once here.
pub struct HashingSink<'a> {
    pub inner: &'a dyn EventSink,
    pub plan: &'a Plan,
    pub digests: &'a Digests,
}

impl EventSink for HashingSink<'_> {
    fn event(&self, event: Event) {
        if let Event::Done { index } = &event {
            if let Some(job) = self.plan.jobs.get(*index) {
                if matches!(job.op, Op::Copy | Op::Hardlink { .. })
                    && self.digests.get(&job.dst).is_none()
                {
                    let linked = match job.op {
                        Op::Hardlink { of } => self
                            .plan
                            .jobs
                            .get(of)
                            .and_then(|first| self.digests.get(&first.dst)),
                        _ => None,
                    };
                    // A read error here is found again, and reported, when the checksums
                    // file is written.
                    if let Some(hex) =
                        linked.or_else(|| hash_file(self.digests.algo, &job.dst).ok())
                    {
                        self.digests.insert(&job.dst, hex);
                    }
                }
            }
        }
        self.inner.event(event);
    }

    fn hash_into(&self) -> Option<&Digests> {
        Some(self.digests)
    }
}

/// One `sha256sum` line for `rel` (a `/`-separated path relative to the checksums file).
/// A name holding a backslash, a newline or a carriage return is escaped as coreutils does:
/// the line starts with `\` and those characters become `\\`, `\n`, `\r`.
pub fn sums_line(hex: &str, rel: &[u8]) -> Vec<u8> {
    let escape = rel.iter().any(|b| matches!(b, b'\\' | b'\n' | b'\r'));
    let mut line = Vec::with_capacity(hex.len() + rel.len() + 4);
    if escape {
        line.push(b'\\');
    }
    line.extend_from_slice(hex.as_bytes());
    line.extend_from_slice(b"  ");
    for &b in rel {
        match b {
            b'\\' if escape => line.extend_from_slice(b"\\\\"),
            b'\n' => line.extend_from_slice(b"\\n"),
            b'\r' => line.extend_from_slice(b"\\r"),
            _ => line.push(b),
        }
    }
    line.push(b'\n');
    line
}

/// The whole checksums file: one line per `(relative path, digest)`, sorted by path bytes.
pub fn sums_text(mut entries: Vec<(Vec<u8>, String)>) -> Vec<u8> {
    entries.sort();
    let mut out = Vec::new();
    for (rel, hex) in &entries {
        out.extend_from_slice(&sums_line(hex, rel));
    }
    out
}

/// Writes `path` atomically: `fill` writes a temporary in the same directory, which is then
/// renamed over `path`; on any error the temporary is removed and `path` is untouched.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".fastcp-")
        .tempfile_in(dir)?;
    fill(tmp.as_file_mut())?;
    tmp.as_file().sync_data()?;
    // A temporary is private (0600); what it becomes is an ordinary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map(drop).map_err(|e| e.error)
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_vectors() {
        let mut h = HashAlgo::Sha256.hasher();
        h.update(b"abc");
        assert_eq!(
            h.finish(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (hex, n) = hash_reader(HashAlgo::Sha512, &mut &b""[..]).unwrap();
        assert_eq!(n, 0);
        assert!(hex.starts_with("cf83e1357eefb8bdf1542850d66d8007"));
        assert_eq!(hex.len(), 128);
    }

    #[test]
    fn lines_sort_and_escape_like_coreutils() {
        let text = sums_text(vec![
            (b"b/x".to_vec(), "22".into()),
            (b"a\\b".to_vec(), "11".into()),
            (b"a".to_vec(), "00".into()),
            (b"n\nl".to_vec(), "33".into()),
        ]);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "00  a\n\\11  a\\\\b\n22  b/x\n\\33  n\\nl\n"
        );
    }
}
