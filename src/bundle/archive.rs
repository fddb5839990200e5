//! `--archive`: reproducible tar.gz / tar.xz / zip archives of the staged files, one leading directory.
//!
//! Reproducible means two runs over the same files give the same bytes: entries sorted by name,
//! owner and group 0 with empty names, modes kept, every mtime `SOURCE_DATE_EPOCH` when set, and
//! no header that carries the time of the run (gzip's mtime is 0, zip gets no extended
//! timestamps).
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// An archive format `--archive` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    TarGz,
    TarXz,
    Zip,
}

impl ArchiveFormat {
    /// The file name extension, also the name on the command line.
    pub fn ext(self) -> &'static str {
        match self {
            ArchiveFormat::TarGz => "tar.gz",
            ArchiveFormat::TarXz => "tar.xz",
            ArchiveFormat::Zip => "zip",
        }
    }

    pub fn parse(s: &str) -> Option<ArchiveFormat> {
        [
            ArchiveFormat::TarGz,
            ArchiveFormat::TarXz,
            ArchiveFormat::Zip,
        ]
        .into_iter()
        .find(|f| f.ext() == s)
    }
}

/// One staged file (or directory, or symlink) to archive: where it is, and its path relative to
/// the out-dir (`/`-separated).
#[derive(Debug, Clone)]
pub struct Member {
    pub rel: Vec<u8>,
    pub path: PathBuf,
}

#[derive(Debug)]
enum EntryKind {
    Dir,
    File { size: u64 },
    Symlink { target: PathBuf },
}

/// An entry as it goes into the archive.
#[derive(Debug)]
struct Entry {
    /// `root/rel`, without a trailing `/`.
    name: Vec<u8>,
    path: PathBuf,
    kind: EntryKind,
    mode: u32,
    mtime: u64,
}

fn mtime_secs(md: &fs::Metadata) -> u64 {
    md.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

#[cfg(unix)]
fn mode_bits(md: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    md.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_bits(md: &fs::Metadata) -> u32 {
    match (md.is_dir(), md.permissions().readonly()) {
        (true, _) => 0o755,
        (false, true) => 0o444,
        (false, false) => 0o644,
    }
}

#[cfg(unix)]
fn path_from_bytes(b: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

#[cfg(not(unix))]
fn path_from_bytes(b: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(b).into_owned())
}

fn join_name(root: &str, rel: &[u8]) -> Vec<u8> {
    let mut name = root.as_bytes().to_vec();
    if !rel.is_empty() {
        name.push(b'/');
        name.extend_from_slice(rel);
    }
    name
}

/// The sorted entries: the leading directory, every directory on the way to a member, the
/// members. Metadata comes from the staged copies (not following symlinks). A directory that no
/// member stands for (the leading one, a parent the copy made) takes the newest mtime of the
/// files, so it does not carry the time of the run either.
fn entries(
    root: &str,
    out_dir: &Path,
    members: &[Member],
    epoch: Option<u64>,
) -> io::Result<Vec<Entry>> {
    use std::collections::BTreeMap;
    let mut by_name: BTreeMap<Vec<u8>, Entry> = BTreeMap::new();
    for m in members {
        let md = fs::symlink_metadata(&m.path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", m.path.display())))?;
        let kind = if md.is_dir() {
            EntryKind::Dir
        } else if md.file_type().is_symlink() {
            EntryKind::Symlink {
                target: fs::read_link(&m.path)?,
            }
        } else {
            EntryKind::File { size: md.len() }
        };
        let name = join_name(root, &m.rel);
        by_name.insert(
            name.clone(),
            Entry {
                name,
                path: m.path.clone(),
                kind,
                mode: mode_bits(&md),
                mtime: mtime_secs(&md),
            },
        );
    }
    let newest = by_name.values().map(|e| e.mtime).max().unwrap_or(0);
    let mut implicit = vec![Vec::new()];
    for m in members {
        let mut rel = m.rel.as_slice();
        while let Some(slash) = rel.iter().rposition(|&b| b == b'/') {
            rel = &rel[..slash];
            implicit.push(rel.to_vec());
        }
    }
    for rel in implicit {
        let name = join_name(root, &rel);
        if by_name.contains_key(&name) {
            continue;
        }
        let path = out_dir.join(path_from_bytes(&rel));
        let mode = if rel.is_empty() {
            0o755
        } else {
            fs::symlink_metadata(&path).map_or(0o755, |md| mode_bits(&md))
        };
        by_name.insert(
            name.clone(),
            Entry {
                name,
                path,
                kind: EntryKind::Dir,
                mode,
                mtime: newest,
            },
        );
    }
    let mut v: Vec<Entry> = by_name.into_values().collect();
    if let Some(t) = epoch {
        for e in &mut v {
            e.mtime = t;
        }
    }
    Ok(v)
}

/// Reads exactly `left` bytes: a file that shrank after it was measured is an error rather
/// than an archive whose header promises bytes that are not there.
struct Exact<R> {
    inner: R,
    left: u64,
    path: PathBuf,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank while it was archived", self.path.display()),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn open_exact(e: &Entry, size: u64) -> io::Result<Exact<File>> {
    let f = File::open(&e.path)
        .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", e.path.display())))?;
    Ok(Exact {
        inner: f,
        left: size,
        path: e.path.clone(),
    })
}

fn write_tar<W: Write>(w: W, entries: &[Entry]) -> io::Result<W> {
    use tar::{EntryType, Header};
    let mut b = tar::Builder::new(w);
    for e in entries {
        let mut h = Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(e.mode);
        h.set_mtime(e.mtime);
        let name = path_from_bytes(&e.name);
        match &e.kind {
            EntryKind::Dir => {
                h.set_entry_type(EntryType::Directory);
                h.set_size(0);
                let mut dir = e.name.clone();
                dir.push(b'/');
                b.append_data(&mut h, path_from_bytes(&dir), io::empty())?;
            }
            EntryKind::File { size } => {
                h.set_entry_type(EntryType::Regular);
                h.set_size(*size);
                b.append_data(&mut h, name, open_exact(e, *size)?)?;
            }
            EntryKind::Symlink { target } => {
                h.set_entry_type(EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, name, target)?;
            }
        }
    }
    b.into_inner()
}

/// A DOS date-time (what zip stores) for seconds since the epoch, in UTC, clamped to the
/// years zip can hold (1980–2107).
fn zip_time(secs: u64) -> zip::DateTime {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let fallback = zip::DateTime::default();
    if year < 1980 {
        return fallback;
    }
    if year > 2107 {
        return zip::DateTime::from_date_and_time(2107, 12, 31, 23, 59, 58).unwrap_or(fallback);
    }
    zip::DateTime::from_date_and_time(
        year as u16,
        month,
        day,
        (rem / 3600) as u8,
        (rem / 60 % 60) as u8,
        (rem % 60) as u8,
    )
    .unwrap_or(fallback)
}

fn zip_err(e: zip::result::ZipError) -> io::Error {
    match e {
        zip::result::ZipError::Io(e) => e,
        other => io::Error::other(other),
    }
}

fn utf8_name(name: &[u8]) -> io::Result<&str> {
    std::str::from_utf8(name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: zip names must be UTF-8", String::from_utf8_lossy(name)),
        )
    })
}

fn write_zip<W: Write + Seek>(w: W, entries: &[Entry]) -> io::Result<W> {
    use zip::write::SimpleFileOptions;
    use zip::CompressionMethod;
    let mut z = zip::ZipWriter::new(w);
    for e in entries {
        let opts = SimpleFileOptions::default()
            .unix_permissions(e.mode)
            .last_modified_time(zip_time(e.mtime));
        let name = utf8_name(&e.name)?;
        match &e.kind {
            EntryKind::Dir => z.add_directory(format!("{name}/"), opts).map_err(zip_err)?,
            EntryKind::File { size } => {
                let opts = opts
                    .compression_method(CompressionMethod::Deflated)
                    .large_file(*size >= u64::from(u32::MAX));
                z.start_file(name, opts).map_err(zip_err)?;
                io::copy(&mut open_exact(e, *size)?, &mut z)?;
            }
            EntryKind::Symlink { target } => {
                let target = utf8_name(target.as_os_str().as_encoded_bytes())?;
                z.add_symlink(name, target, opts).map_err(zip_err)?;
            }
        }
    }
    z.finish().map_err(zip_err)
}

/// Writes `dest` in `format`: `members` (relative to `out_dir`) under one leading directory
/// `root`. Written under a temporary name and renamed into place: no half-written archive under
/// the final name.
pub fn write(
    format: ArchiveFormat,
    dest: &Path,
    root: &str,
    out_dir: &Path,
    members: &[Member],
    epoch: Option<u64>,
) -> io::Result<()> {
    let entries = entries(root, out_dir, members, epoch)?;
    crate::bundle::checksums::write_atomic_with(dest, |file| {
        let w = BufWriter::new(file);
        match format {
            ArchiveFormat::TarGz => {
                // mtime 0 and no file name in the gzip header: nothing of the run in the bytes.
                let gz = flate2::GzBuilder::new()
                    .mtime(0)
                    .write(w, flate2::Compression::default());
                write_tar(gz, &entries)?.finish()?.flush()
            }
            ArchiveFormat::TarXz => {
                let xz = liblzma::write::XzEncoder::new(w, 6);
                write_tar(xz, &entries)?.finish()?.flush()
            }
            ArchiveFormat::Zip => write_zip(w, &entries)?.flush(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_times_are_utc_civil_dates() {
        // 2023-11-14 22:13:20 UTC
        let t = zip_time(1_700_000_000);
        assert_eq!(
            (t.year(), t.month(), t.day(), t.hour(), t.minute()),
            (2023, 11, 14, 22, 13)
        );
        assert_eq!(zip_time(0).year(), 1980);
        // 2000-02-29
        let t = zip_time(951_782_400);
        assert_eq!((t.year(), t.month(), t.day()), (2000, 2, 29));
    }

    #[test]
    fn formats_parse_by_extension() {
        for f in [
            ArchiveFormat::TarGz,
            ArchiveFormat::TarXz,
            ArchiveFormat::Zip,
        ] {
            assert_eq!(ArchiveFormat::parse(f.ext()), Some(f));
        }
        assert_eq!(ArchiveFormat::parse("tgz"), None);
    }
}
