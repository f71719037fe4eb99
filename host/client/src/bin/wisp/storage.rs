//! `wisp storage`: move data in and out of the configured storage.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use wisp::Config;
use wisp::config::StorageKind;
use wisp_storage::Storage;

use crate::Failure;

#[derive(Args)]
pub struct StorageCommand {
    /// Which storage: localhost, minio, aws_s3 or ceph (default: the
    /// config's `wisp.storage`).
    #[arg(short, long, global = true, value_name = "STORAGE")]
    storage: Option<StorageKind>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Upload a file, or every file under a directory, to KEY (a key ending
    /// in `/` is a prefix: the file names are appended).
    Put {
        bucket: String,
        key: String,
        path: PathBuf,
    },
    /// Download an object to a file, or to stdout.
    Get {
        bucket: String,
        key: String,
        /// The file to write; default: standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// List the objects under a prefix.
    List {
        bucket: String,
        #[arg(default_value = "")]
        prefix: String,
    },
    /// Delete an object, or with --recursive every object under a prefix.
    Delete {
        bucket: String,
        key: String,
        #[arg(short, long)]
        recursive: bool,
    },
    /// Create a bucket.
    CreateBucket { bucket: String },
}

impl StorageCommand {
    pub async fn run(self) -> Result<(), Failure> {
        let mut config = Config::load()?;
        if let Some(storage) = self.storage {
            config.storage = storage;
        }
        let storage = wisp::storage::connect(&config).await?;
        match self.action {
            Action::Put { bucket, key, path } => put(&storage, &bucket, &key, &path).await?,
            Action::Get {
                bucket,
                key,
                output,
            } => {
                let data = storage.get(&bucket, &key).await?;
                match output {
                    Some(path) => std::fs::write(&path, &data)
                        .with_context(|| format!("cannot write {}", path.display()))?,
                    None => {
                        let mut stdout = std::io::stdout().lock();
                        match stdout.write_all(&data).and_then(|()| stdout.flush()) {
                            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                                return Err(anyhow::Error::from(e)
                                    .context("cannot write to stdout")
                                    .into());
                            }
                            _ => {}
                        }
                    }
                }
            }
            Action::List { bucket, prefix } => {
                let objects = storage.list(&bucket, &prefix).await?;
                let mut stdout = std::io::stdout().lock();
                for object in &objects {
                    let _ = writeln!(stdout, "{:>12}  {}", object.size, object.key);
                }
                let total: u64 = objects.iter().map(|o| o.size).sum();
                eprintln!("{} objects, {total} bytes", objects.len());
            }
            Action::Delete {
                bucket,
                key,
                recursive,
            } => {
                if recursive {
                    let removed = storage.delete_prefix(&bucket, &key).await?;
                    eprintln!("deleted {removed} objects under `{key}`");
                } else {
                    // A key ending in `/` names a prefix, never an object.
                    let object = if key.ends_with('/') {
                        None
                    } else {
                        storage.head(&bucket, &key).await?
                    };
                    if object.is_none() {
                        let under = storage.list(&bucket, &key).await?.len();
                        if under > 0 {
                            return Err(anyhow::anyhow!(
                                "there is no object `{key}`, but {under} objects start with it: \
                                 add --recursive to delete them all"
                            )
                            .into());
                        }
                        return Err(anyhow::anyhow!(
                            "there is no object `{key}` in bucket `{bucket}`"
                        )
                        .into());
                    }
                    storage.delete(&bucket, &key).await?;
                }
            }
            Action::CreateBucket { bucket } => {
                storage.create_bucket(&bucket).await?;
                eprintln!("bucket `{bucket}` is ready in {}", storage.describe());
            }
        }
        Ok(())
    }
}

async fn put(
    storage: &Arc<dyn Storage>,
    bucket: &str,
    key: &str,
    path: &Path,
) -> anyhow::Result<()> {
    let metadata =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let uploads: Vec<(PathBuf, String)> = if metadata.is_dir() {
        let prefix = if key.is_empty() || key.ends_with('/') {
            key.to_owned()
        } else {
            format!("{key}/")
        };
        wisp::partition::files_under(path)?
            .into_iter()
            .map(|file| {
                let relative = file
                    .strip_prefix(path)
                    .unwrap_or(&file)
                    .to_string_lossy()
                    .replace('\\', "/");
                let key = format!("{prefix}{relative}");
                (file, key)
            })
            .collect()
    } else if key.ends_with('/') {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        vec![(path.to_owned(), format!("{key}{name}"))]
    } else {
        vec![(path.to_owned(), key.to_owned())]
    };
    let total: u64 = uploads
        .iter()
        .map(|(file, _)| std::fs::metadata(file).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} [{bar:30}] {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut done = 0;
    for (file, key) in &uploads {
        bar.set_message(key.clone());
        let base = done;
        let progress = |sent: u64, _total: u64| bar.set_position(base + sent);
        done += storage
            .put_file(bucket, key, file, Some(&progress))
            .await
            .with_context(|| format!("cannot upload {} to `{key}`", file.display()))?;
        bar.set_position(done);
    }
    bar.finish_and_clear();
    eprintln!(
        "uploaded {} files, {done} bytes, to bucket `{bucket}`",
        uploads.len()
    );
    Ok(())
}
