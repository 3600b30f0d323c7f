//! The disk-side baselines and page-cache control: the write ceiling of the
//! cluster's disk, a cold `cat` of a local file, and dropping cached pages.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};

/// Bytes per `write` of the baseline writers and of the source file.
const WRITE_SIZE: usize = 1024 * 1024;
/// Concurrent writers of the disk ceiling, one per replica.
pub(crate) const WRITERS: usize = 3;

/// Writes `path` with `bytes` of `pattern` repeated, then fsyncs it.
pub(crate) fn write_file(path: &Path, bytes: u64, pattern: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    let mut left = bytes;
    while left > 0 {
        let n = pattern
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        file.write_all(pattern.get(..n).unwrap_or(pattern))?;
        left -= n as u64;
    }
    file.sync_all()
}

/// The disk's write ceiling for one replica: [`WRITERS`] threads each write
/// and fsync `bytes` in `dir` at once; returns the time until the last
/// fsync returned (so aggregate / 3 = `bytes` / elapsed). Removes the files.
pub(crate) fn write_ceiling(dir: &Path, bytes: u64, pattern: &[u8]) -> io::Result<Duration> {
    let paths: Vec<PathBuf> = (0..WRITERS)
        .map(|i| dir.join(format!("disk-ceiling-{i}")))
        .collect();
    nix::unistd::sync();
    let started = Instant::now();
    let results: Vec<io::Result<()>> = thread::scope(|s| {
        let writers: Vec<_> = paths
            .iter()
            .map(|p| s.spawn(move || write_file(p, bytes, pattern)))
            .collect();
        writers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(io::Error::other("a disk writer panicked")))
            })
            .collect()
    });
    let elapsed = started.elapsed();
    for p in &paths {
        let _ = fs::remove_file(p);
    }
    results.into_iter().collect::<io::Result<()>>()?;
    Ok(elapsed)
}

/// A buffer of [`WRITE_SIZE`] pattern bytes for [`write_file`].
pub(crate) fn write_pattern() -> Vec<u8> {
    super::relay::pattern(WRITE_SIZE)
}

/// Times `cat path > /dev/null`.
pub(crate) fn time_cat(path: &Path) -> io::Result<Duration> {
    let started = Instant::now();
    let status = Command::new("cat")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::from(File::create("/dev/null")?))
        .status()?;
    let elapsed = started.elapsed();
    if !status.success() {
        return Err(io::Error::other(format!(
            "cat {}: {status}",
            path.display()
        )));
    }
    Ok(elapsed)
}

/// How cached pages are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheDrop {
    /// `sync; echo 3 > /proc/sys/vm/drop_caches` (root): every clean page.
    DropCaches,
    /// `fdatasync` + `posix_fadvise(DONTNEED)` on each file read back.
    Fadvise,
}

impl CacheDrop {
    /// Tries `/proc/sys/vm/drop_caches`; `Fadvise` when it is not writable.
    pub(crate) fn detect() -> CacheDrop {
        if drop_caches().is_ok() {
            CacheDrop::DropCaches
        } else {
            CacheDrop::Fadvise
        }
    }

    /// What the report says about it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            CacheDrop::DropCaches => "page cache dropped with `echo 3 > /proc/sys/vm/drop_caches`",
            CacheDrop::Fadvise => {
                "page cache dropped with posix_fadvise(DONTNEED) on the source file and every \
                 datanode file (/proc/sys/vm/drop_caches is not writable)"
            }
        }
    }

    /// Drops the cached pages of `files` (or of everything).
    pub(crate) fn drop_pages(self, files: &[PathBuf]) -> io::Result<()> {
        match self {
            CacheDrop::DropCaches => drop_caches(),
            CacheDrop::Fadvise => files.iter().try_for_each(|f| fadvise_dontneed(f)),
        }
    }
}

fn drop_caches() -> io::Result<()> {
    nix::unistd::sync();
    fs::write("/proc/sys/vm/drop_caches", "3")
}

fn fadvise_dontneed(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    // Dirty pages are not dropped: write them back first.
    file.sync_data()?;
    posix_fadvise(file.as_fd(), 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED)
        .map_err(io::Error::from)
}

/// Every regular file below `dir`.
pub(crate) fn files_below(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}
