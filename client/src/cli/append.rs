//! `dfs append` (alias `appendToFile`): local files, in order, onto the end
//! of a dfs file through one stream, as HDFS's `appendToFile` does. A
//! missing destination is created first.

use clap::Args;
use dfs_proto::status::ErrorKind;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::Outcome;
use super::data::local_error;
use crate::error::Error;
use crate::fs::{AppendOptions, CreateOptions, DfsClient};
use crate::output_stream::OutputStream;

/// Bytes read from a local file per write call.
const LOCAL_BUFFER: usize = 1024 * 1024;

#[derive(Debug, Args)]
pub(super) struct Append {
    /// Start a new block rather than filling the last one (the file then
    /// holds a short block in the middle).
    #[arg(long)]
    new_block: bool,
    /// Local files (`-` = stdin), appended in order, then the dfs file.
    #[arg(required = true, num_args = 2..)]
    paths: Vec<String>,
}

impl Append {
    pub(super) async fn run(self, client: &DfsClient, outcome: &mut Outcome) {
        outcome.check(self.append(client).await);
    }

    async fn append(&self, client: &DfsClient) -> Result<(), Error> {
        let Some((dest, sources)) = self.paths.split_last() else {
            return Ok(());
        };
        // Every source is checked before the file is opened, so a typo
        // appends nothing.
        for source in sources.iter().filter(|s| *s != "-") {
            let metadata = tokio::fs::metadata(source)
                .await
                .map_err(|e| local_error(source, &e))?;
            if metadata.is_dir() {
                return Err(Error::Local {
                    path: source.clone(),
                    reason: "Is a directory".into(),
                });
            }
        }
        let options = AppendOptions {
            new_block: self.new_block,
        };
        let mut out = match client.append(dest, &options).await {
            Err(e) if e.kind() == Some(ErrorKind::NotFound) => {
                client.create_file(dest, &CreateOptions::default()).await?
            }
            opened => opened?,
        };
        for source in sources {
            let reader: Box<dyn AsyncRead + Unpin + Send> = if source == "-" {
                Box::new(tokio::io::stdin())
            } else {
                let file = tokio::fs::File::open(source)
                    .await
                    .map_err(|e| local_error(source, &e))?;
                Box::new(file)
            };
            copy(reader, &mut out).await?;
        }
        out.close().await
    }
}

async fn copy(
    mut reader: Box<dyn AsyncRead + Unpin + Send>,
    out: &mut OutputStream,
) -> Result<(), Error> {
    let mut buffer = vec![0; LOCAL_BUFFER];
    loop {
        let n = reader.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        out.write(&buffer[..n]).await?;
    }
}
