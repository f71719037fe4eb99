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
    ///
    /// Under a directory, hidden entries (names starting with `.`, such as
    /// `.git`) and symbolic links are left out, each named on stderr:
    /// links are not followed, so nothing outside the directory is
    /// uploaded. Name such a file itself to upload it.
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
    /// Delete an object, or with --recursive every object under a prefix
    /// (wisp's own objects under `wisp/` only when the prefix names them).
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
            } => get(&storage, &bucket, &key, output.as_deref()).await?,
            Action::List { bucket, prefix } => {
                let objects = storage.list(&bucket, &prefix).await?;
                let mut stdout = std::io::stdout().lock();
                for object in &objects {
                    let _ = writeln!(stdout, "{:>12}  {}", object.size, object.key);
                }
                let total: u64 = objects.iter().map(|o| o.size).sum();
                eprintln!(
                    "{}, {}",
                    count(objects.len() as u64, "object"),
                    count(total, "byte")
                );
            }
            Action::Delete {
                bucket,
                key,
                recursive,
            } => {
                if recursive {
                    if key.is_empty() {
                        return Err(anyhow::anyhow!(
                            "refusing to delete a whole bucket's objects with an empty prefix; \
                             name a prefix, such as `books/`"
                        )
                        .into());
                    }
                    let removed = storage.delete_prefix(&bucket, &key).await?;
                    eprintln!("deleted {} under `{key}`", count(removed as u64, "object"));
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
                                "there is no object `{key}`, but {} {} with it: add \
                                 --recursive to delete {}",
                                count(under as u64, "object"),
                                if under == 1 { "starts" } else { "start" },
                                if under == 1 { "it" } else { "them all" }
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

/// How much of an object a download holds in memory at once.
const GET_PIECE: u64 = 8 << 20;

/// Downloads an object in pieces, so memory stays bounded whatever its
/// size; the ETag check makes a concurrent replacement fail instead of
/// mixing two versions.
async fn get(
    storage: &Arc<dyn Storage>,
    bucket: &str,
    key: &str,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let Some(meta) = storage.head(bucket, key).await? else {
        anyhow::bail!("there is no object `{key}` in bucket `{bucket}`");
    };
    let etag = Some(meta.etag.as_str()).filter(|e| !e.is_empty());
    let mut sink: Box<dyn Write> = match output {
        Some(path) => {
            let path = if path.is_dir() {
                path.join(key.rsplit('/').next().unwrap_or(key))
            } else {
                path.to_owned()
            };
            Box::new(std::io::BufWriter::new(
                std::fs::File::create(&path)
                    .with_context(|| format!("cannot write {}", path.display()))?,
            ))
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let bar = byte_bar(meta.size);
    let mut offset = 0;
    while offset < meta.size {
        let piece = storage
            .get_range_if(
                bucket,
                key,
                offset..(offset + GET_PIECE).min(meta.size),
                etag,
            )
            .await?;
        if piece.is_empty() {
            break;
        }
        match sink.write_all(&piece) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other.context("cannot write the object out")?,
        }
        offset += piece.len() as u64;
        bar.set_position(offset);
    }
    match sink.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).context("cannot write the object out");
        }
        _ => {}
    }
    bar.finish_and_clear();
    Ok(())
}

fn byte_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} [{bar:25}] {bytes_per_sec} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
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
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        walk(path, &mut files, &mut skipped)?;
        for (entry, why) in &skipped {
            eprintln!("skipped {}: {why}", entry.display());
        }
        files
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
    let bar = byte_bar(total);
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
        "uploaded {}, {}, to bucket `{bucket}`",
        count(uploads.len() as u64, "file"),
        count(done, "byte")
    );
    Ok(())
}

/// `n` and the noun, plural unless `n` is 1: `1 file`, `2 files`.
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The regular files under the directory `dir`, in name order, and the
/// entries left out with the reason: hidden ones, symbolic links (never
/// followed, so nothing outside `dir` is reached) and anything that is
/// neither a file nor a directory.
fn walk(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    skipped: &mut Vec<(PathBuf, &'static str)>,
) -> anyhow::Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .and_then(|entries| entries.collect::<std::io::Result<Vec<_>>>())
        .with_context(|| format!("cannot read the directory {}", dir.display()))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let kind = entry
            .file_type()
            .with_context(|| format!("cannot read {}", path.display()))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            skipped.push((path, "hidden (its name starts with `.`)"));
        } else if kind.is_symlink() {
            skipped.push((path, "a symbolic link, not followed"));
        } else if kind.is_dir() {
            walk(&path, files, skipped)?;
        } else if kind.is_file() {
            files.push(path);
        } else {
            skipped.push((path, "not a regular file or a directory"));
        }
    }
    Ok(())
}
