//! Data commands: put, get, cat, checksum.
//!
//! `put` writes to `DEST._COPYING_` and renames it to DEST only once the
//! file is closed (as HDFS's FsShell does), so a failed upload leaves
//! nothing visible; `get` does the same with a local temporary file. A
//! directory is copied file by file through the same path (`tree_copy`).

use std::io::ErrorKind as IoKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use dfs_proto::status::ErrorKind;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{Outcome, tree_copy};
use crate::checksum::FileChecksum;
use crate::error::Error;
use crate::fs::{CreateOptions, DfsClient, FileStatus};
use crate::input_stream::InputStream;

/// Suffix of a file being copied, renamed away once complete.
const COPYING_SUFFIX: &str = "._COPYING_";
/// Bytes read from a local file per write call.
const LOCAL_BUFFER: usize = 1024 * 1024;

#[derive(Debug, Args)]
pub(super) struct Put {
    /// Overwrite an existing destination file.
    #[arg(short = 'f')]
    force: bool,
    /// Replicas per block (default: the namenode's).
    #[arg(long)]
    replication: Option<u16>,
    /// Bytes per block: plain bytes or with a binary unit (128K, 1M, 64MiB, 1g).
    #[arg(long, value_parser = parse_size)]
    block_size: Option<u64>,
    /// Local files or directories (`-` = stdin), then the destination (an
    /// existing directory takes each source under its base name; a
    /// directory is copied with everything below it).
    #[arg(required = true, num_args = 2..)]
    paths: Vec<String>,
}

impl Put {
    pub(super) async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        let Some((dest, sources)) = self.paths.split_last() else {
            return;
        };
        let dest_status = match client.stat(dest).await {
            Ok(status) => Some(status),
            Err(e) if e.kind() == Some(ErrorKind::NotFound) => None,
            Err(e) => {
                outcome.check::<()>(Err(e));
                return;
            }
        };
        let into_dir = dest_status.as_ref().is_some_and(FileStatus::is_dir);
        if sources.len() > 1 && !into_dir {
            let reason = if dest_status.is_some() {
                "Is not a directory"
            } else {
                "No such file or directory"
            };
            outcome.check::<()>(Err(Error::Refused {
                kind: None,
                message: format!("'{dest}': {reason}"),
            }));
            return;
        }
        let options = CreateOptions {
            overwrite: true,
            create_parent: false,
            replication: self.replication,
            block_size: self.block_size,
            permission: None,
        };
        for source in sources {
            let target = if into_dir {
                if source == "-" {
                    outcome.check::<()>(Err(Error::Refused {
                        kind: Some(ErrorKind::IsADirectory),
                        message: format!("'{dest}': Is a directory"),
                    }));
                    continue;
                }
                join(dest, &local_base_name(source))
            } else {
                dest.clone()
            };
            let is_dir =
                source != "-" && tokio::fs::metadata(source).await.is_ok_and(|m| m.is_dir());
            if is_dir {
                let source = Path::new(source);
                tree_copy::put_dir(client, source, &target, self.force, &options, outcome).await;
            } else {
                outcome.check(put_one(client, source, &target, self.force, &options).await);
            }
        }
    }
}

/// Uploads one local file (or stdin) to `target` through `target._COPYING_`.
pub(super) async fn put_one(
    client: &DfsClient,
    source: &str,
    target: &str,
    force: bool,
    options: &CreateOptions,
) -> Result<(), Error> {
    let (reader, length): (Box<dyn AsyncRead + Unpin + Send>, Option<u64>) = if source == "-" {
        (Box::new(tokio::io::stdin()), None)
    } else {
        let metadata = tokio::fs::metadata(source)
            .await
            .map_err(|e| local_error(source, &e))?;
        if metadata.is_dir() {
            return Err(Error::Local {
                path: source.to_owned(),
                reason: "Is a directory".into(),
            });
        }
        let file = tokio::fs::File::open(source)
            .await
            .map_err(|e| local_error(source, &e))?;
        (Box::new(file), Some(metadata.len()))
    };
    let existing = match client.stat(target).await {
        Ok(status) if status.is_dir() => {
            return Err(Error::Refused {
                kind: Some(ErrorKind::IsADirectory),
                message: format!("'{target}': Is a directory"),
            });
        }
        Ok(_) if !force => {
            return Err(Error::Refused {
                kind: Some(ErrorKind::AlreadyExists),
                message: format!("'{target}': File exists"),
            });
        }
        Ok(_) => true,
        Err(e) if e.kind() == Some(ErrorKind::NotFound) => false,
        Err(e) => return Err(e),
    };
    let temp = format!("{target}{COPYING_SUFFIX}");
    let progress = progress_bar(length, target);
    let uploaded = upload(client, reader, &temp, options, &progress).await;
    progress.finish_and_clear();
    let placed = match uploaded {
        Ok(()) => {
            if existing {
                client.delete(target, false).await?;
            }
            client.rename(&temp, target).await
        }
        Err(e) => Err(e),
    };
    if placed.is_err() {
        // Best effort: the temporary file may not even exist.
        let _ = client.delete(&temp, false).await;
    }
    placed
}

async fn upload(
    client: &DfsClient,
    mut reader: Box<dyn AsyncRead + Unpin + Send>,
    temp: &str,
    options: &CreateOptions,
    progress: &ProgressBar,
) -> Result<(), Error> {
    let mut out = client.create_file(temp, options).await?;
    let mut buffer = vec![0; LOCAL_BUFFER];
    loop {
        let n = reader.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        out.write(&buffer[..n]).await?;
        progress.inc(n as u64);
    }
    out.close().await
}

#[derive(Debug, Args)]
pub(super) struct Get {
    /// Overwrite an existing local file.
    #[arg(short = 'f')]
    force: bool,
    /// File or directory to copy (a directory with everything below it).
    src: String,
    /// Local destination (`-` = stdout; an existing directory takes the
    /// source under its base name).
    local: String,
}

impl Get {
    pub(super) async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        let copied = self.copy(client, outcome).await;
        outcome.check(copied);
    }

    async fn copy(&self, client: &DfsClient, outcome: &mut Outcome) -> Result<(), Error> {
        let Get { force, src, local } = self;
        let status = client.stat(src).await?;
        if status.is_dir() && local == "-" {
            return Err(Error::Refused {
                kind: Some(ErrorKind::IsADirectory),
                message: format!("'{src}': Is a directory"),
            });
        }
        if local == "-" {
            let mut input = client.open(src).await?;
            let mut stdout = StdoutWriter::start()?;
            let copied = stdout.copy_from(&mut input).await;
            let flushed = stdout.stop().await;
            return copied.and(flushed);
        }
        let mut target = PathBuf::from(local);
        if target.is_dir() {
            target.push(base_name(src));
        }
        if status.is_dir() {
            tree_copy::get_dir(client, src, &target, *force, outcome).await;
            return Ok(());
        }
        get_one(client, src, status.length, &target, *force).await
    }
}

/// Downloads the dfs file `src` (`length` bytes) to the local `target`
/// through `target._COPYING_`.
pub(super) async fn get_one(
    client: &DfsClient,
    src: &str,
    length: u64,
    target: &Path,
    force: bool,
) -> Result<(), Error> {
    if !force && tokio::fs::symlink_metadata(target).await.is_ok() {
        return Err(Error::Local {
            path: target.display().to_string(),
            reason: "File exists".into(),
        });
    }
    let mut temp = target.to_owned().into_os_string();
    temp.push(COPYING_SUFFIX);
    let temp = PathBuf::from(temp);
    let copied = download(client, src, &temp, length).await;
    let placed = match copied {
        Ok(()) => tokio::fs::rename(&temp, target)
            .await
            .map_err(|e| local_error(&target.display().to_string(), &e)),
        Err(e) => Err(e),
    };
    if placed.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    placed
}

async fn download(client: &DfsClient, src: &str, temp: &Path, length: u64) -> Result<(), Error> {
    let mut input = client.open(src).await?;
    let mut file = tokio::fs::File::create(temp)
        .await
        .map_err(|e| local_error(&temp.display().to_string(), &e))?;
    let progress = progress_bar(Some(length), src);
    let result = async {
        while let Some(chunk) = input.next_chunk().await? {
            file.write_all(&chunk).await?;
            progress.inc(chunk.len() as u64);
        }
        file.flush().await?;
        file.sync_all().await?;
        Ok(())
    }
    .await;
    progress.finish_and_clear();
    result
}

#[derive(Debug, Args)]
pub(super) struct Cat {
    /// Files to print, in order.
    #[arg(required = true)]
    paths: Vec<String>,
}

impl Cat {
    pub(super) async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        let mut stdout = match StdoutWriter::start() {
            Ok(stdout) => stdout,
            Err(e) => {
                outcome.check::<()>(Err(e.into()));
                return;
            }
        };
        for path in &self.paths {
            let printed = match client.open(path).await {
                Ok(mut input) => stdout.copy_from(&mut input).await,
                Err(e) => Err(e),
            };
            if is_broken_pipe(&printed) {
                return;
            }
            outcome.check(printed);
        }
        let flushed = stdout.stop().await;
        if !is_broken_pipe(&flushed) {
            outcome.check(flushed);
        }
    }
}

/// Stdout for file contents: one thread writes each chunk to fd 1 with a
/// plain blocking `write_all`. `tokio::io::stdout` would copy every 64 KiB
/// chunk into its own buffer and hand it to the blocking pool one at a time.
#[derive(Debug)]
struct StdoutWriter {
    /// `None` once stopped.
    chunks: Option<mpsc::Sender<Bytes>>,
    /// Ends with the first write error, or once `chunks` closes.
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl StdoutWriter {
    /// Chunks queued for the writer thread.
    const QUEUE: usize = 8;

    fn start() -> std::io::Result<Self> {
        use std::io::Write;
        use std::os::fd::AsFd;
        // A dup of fd 1: unbuffered, unlike std's line-buffered `Stdout`.
        let mut out = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
        let (chunks, mut rx) = mpsc::channel::<Bytes>(Self::QUEUE);
        let thread = std::thread::Builder::new()
            .name("stdout".into())
            .spawn(move || {
                while let Some(chunk) = rx.blocking_recv() {
                    out.write_all(&chunk)?;
                }
                Ok(())
            })?;
        Ok(StdoutWriter {
            chunks: Some(chunks),
            thread: Some(thread),
        })
    }

    /// Queues the rest of `input` for stdout.
    ///
    /// # Errors
    /// Reading failed, or an earlier write did ([`Error::Io`]; `BrokenPipe`
    /// when the reader went away).
    async fn copy_from(&mut self, input: &mut InputStream) -> Result<(), Error> {
        while let Some(chunk) = input.next_chunk().await? {
            let sent = match &self.chunks {
                Some(chunks) => chunks.send(chunk).await.is_ok(),
                None => false,
            };
            if !sent {
                self.stop().await?;
                return Err(Error::Io(std::io::Error::new(
                    IoKind::BrokenPipe,
                    "stdout is closed",
                )));
            }
        }
        Ok(())
    }

    /// Waits until everything queued is written; returns the write error
    /// that stopped the thread, if any.
    async fn stop(&mut self) -> Result<(), Error> {
        self.chunks = None;
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?
            .map_err(|_| Error::Io(std::io::Error::other("the stdout writer panicked")))?
            .map_err(Error::Io)
    }
}

#[derive(Debug, Args)]
pub(super) struct Checksum {
    /// Files to checksum.
    #[arg(required = true)]
    paths: Vec<String>,
}

impl Checksum {
    pub(super) async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        for path in &self.paths {
            if let Some(sum) = outcome.check(client.checksum(path).await) {
                println!("{}", checksum_line(path, &sum));
            }
        }
    }
}

/// A reader that stopped early (`dfs cat f | head`): not an error.
fn is_broken_pipe(result: &Result<(), Error>) -> bool {
    matches!(result, Err(Error::Io(e)) if e.kind() == IoKind::BrokenPipe)
}

/// `PATH<TAB>COMPOSITE-CRC32C<TAB>hex`, as `hdfs dfs -checksum` prints it.
fn checksum_line(path: &str, sum: &FileChecksum) -> String {
    format!("{path}\t{}\t{}", FileChecksum::ALGORITHM, sum.hex())
}

/// Parses a size: plain bytes, or a number with a binary unit (`k`, `m`,
/// `g`, `t`, `p`, optionally followed by `b` or `ib`, any case), as HDFS
/// reads `-Ddfs.blocksize=128m`: `1M` = `1MiB` = 1048576.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("'{text}': not a size (e.g. 1048576, 1M, 64MiB)"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(format!("'{text}': unknown size unit")),
    };
    number
        .checked_mul(1 << shift)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("'{text}': size out of range"))
}

/// The last component of a local or dfs path.
fn base_name(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_owned()
}

/// The last component of a local path, resolving `.` and `..` (`put .
/// /dest` copies the current directory under its own name).
fn local_base_name(path: &str) -> String {
    match Path::new(path).file_name() {
        Some(name) => name.to_string_lossy().into_owned(),
        None => std::fs::canonicalize(path)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| base_name(path)),
    }
}

pub(super) fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

pub(super) fn local_error(path: &str, e: &std::io::Error) -> Error {
    let reason = match e.kind() {
        IoKind::NotFound => "No such file or directory".to_owned(),
        IoKind::PermissionDenied => "Permission denied".to_owned(),
        IoKind::AlreadyExists => "File exists".to_owned(),
        _ => e.to_string(),
    };
    Error::Local {
        path: path.to_owned(),
        reason,
    }
}

/// Bytes, rate and ETA on stderr; hidden when stderr is not a terminal.
fn progress_bar(length: Option<u64>, label: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(length, ProgressDrawTarget::stderr());
    let template = if length.is_some() {
        "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}"
    } else {
        "{msg} {spinner} {binary_bytes} {binary_bytes_per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_owned());
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_plain_bytes_and_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("128K"), Ok(128 << 10));
        assert_eq!(parse_size("2gb"), Ok(2 << 30));
        assert_eq!(parse_size(" 3 t "), Ok(3 << 40));
    }

    #[test]
    fn sizes_reject_nonsense() {
        for bad in ["", "M", "1.5M", "-1", "12Q", "0", "99999999999P"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn base_names_ignore_trailing_slashes() {
        assert_eq!(base_name("/a/b/c.txt"), "c.txt");
        assert_eq!(base_name("c.txt"), "c.txt");
        assert_eq!(base_name("/a/dir/"), "dir");
        assert_eq!(join("/d/", "f"), "/d/f");
        assert_eq!(join("/", "f"), "/f");
    }

    #[test]
    fn checksums_print_like_hdfs() {
        let sum = FileChecksum {
            crc32c: 0xe306_9283,
            length: 9,
        };
        assert_eq!(checksum_line("/f", &sum), "/f\tCOMPOSITE-CRC32C\te3069283");
    }
}
