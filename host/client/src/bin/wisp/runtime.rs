//! `wisp runtime` and `wisp clean`: runtime images on OpenWhisk, and
//! removing what wisp left behind.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use wisp::Config;
use wisp::config::{BackendKind, StorageKind};
use wisp::openwhisk::runtime::{self, DEFAULT_RUNTIME};
use wisp::openwhisk::{Runtimes, Selection};

use crate::Failure;

/// The backend and storage a runtime command works on.
#[derive(Args)]
pub struct Target {
    /// The compute backend: openwhisk (default: the config's
    /// `wisp.backend`).
    #[arg(short, long, global = true, value_name = "BACKEND")]
    backend: Option<BackendKind>,
    /// The storage the runtime reaches jobs in: localhost, minio, aws_s3
    /// or ceph (default: the config's `wisp.storage`).
    #[arg(short, long, global = true, value_name = "STORAGE")]
    storage: Option<StorageKind>,
}

impl Target {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::load()?;
        if let Some(backend) = self.backend {
            config.use_backend(backend);
        }
        if let Some(storage) = self.storage {
            config.storage = storage;
        }
        config.check()?;
        Ok(config)
    }

    /// The configuration, refusing backends that have no runtimes.
    fn openwhisk(&self) -> anyhow::Result<Config> {
        let config = self.config()?;
        if config.backend != BackendKind::Openwhisk {
            bail!(
                "the {} backend runs functions in this process and has no runtime images; \
                 pass `-b openwhisk` (or set `wisp.backend: openwhisk` in the config)",
                config.backend
            );
        }
        Ok(config)
    }
}

#[derive(Args)]
pub struct RuntimeCommand {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Build a runtime image from wisp's action server and push it to its
    /// registry.
    Build {
        /// The image, such as 127.0.0.1:5000/me/wisp-runtime:0.1, or
        /// `default` for wisp's own runtime in the configured registry.
        #[arg(default_value = DEFAULT_RUNTIME)]
        image: String,
        /// A Dockerfile to build from instead of wisp's (see the skeletons
        /// in runtimes/openwhisk/); its directory is the build context.
        #[arg(short = 'f', long, value_name = "DOCKERFILE")]
        file: Option<PathBuf>,
        /// Build only; do not push.
        #[arg(long)]
        no_push: bool,
    },
    /// Deploy a runtime image as an action, and check that it answers.
    Deploy {
        /// The image, or `default`.
        #[arg(default_value = DEFAULT_RUNTIME)]
        image: String,
        /// Memory of each container, in MB (default: runtime_memory), within
        /// the platform's range: openwhisk.min_memory to max_memory (128 to
        /// 512 unless set).
        #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(1..=4096))]
        memory: Option<u64>,
        /// Time limit of each activation, in seconds (default:
        /// runtime_timeout).
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: Option<u64>,
    },
    /// Deploy runtimes again with this wisp version and the current
    /// storage settings.
    Update {
        /// An image, `default`, or `all`.
        image: String,
    },
    /// Remove deployed runtimes.
    Delete {
        /// An image, `default`, or `all`.
        image: String,
    },
    /// List the deployed runtimes.
    List,
}

impl RuntimeCommand {
    pub async fn run(self) -> Result<(), Failure> {
        let config = self.target.openwhisk()?;
        match self.action {
            Action::Build {
                image,
                file,
                no_push,
            } => build(&config, &image, file, no_push).await?,
            Action::Deploy {
                image,
                memory,
                timeout,
            } => {
                let mut config = config;
                if let Some(timeout) = timeout {
                    config.runtime_timeout = Duration::from_secs(timeout);
                }
                if let Some(memory) = memory {
                    config.check_openwhisk_memory(memory, "--memory")?;
                }
                let memory = memory.unwrap_or(config.runtime_memory);
                let image = runtime::resolve_image(&config, Some(&image));
                if image.ends_with(":latest")
                    || !image.rsplit('/').next().unwrap_or("").contains(':')
                {
                    eprintln!(
                        "warning: {image} has no tag or the tag `latest`: OpenWhisk pulls such an \
                         image at every cold start and fails the activation when the pull fails; \
                         tag it, e.g. {}:1",
                        image.trim_end_matches(":latest")
                    );
                }
                let runtimes = runtimes(&config).await?;
                let spinner = crate::submit::spinner(&format!("deploying {image}"));
                let deployed = runtimes.deploy(&image, memory).await;
                spinner.finish_and_clear();
                let info = deployed?;
                println!(
                    "deployed {} ({} MB) as action {}/{}",
                    info.image,
                    info.memory_mb,
                    runtime::PACKAGE,
                    info.action
                );
            }
            Action::Update { image } => {
                let runtimes = runtimes(&config).await?;
                let which = selection(&config, &image);
                let updated = runtimes.update(&which).await?;
                if updated.is_empty() {
                    return Err(Failure::Setup(anyhow::anyhow!(
                        "no deployed runtime matches `{image}`: see `wisp runtime list`"
                    )));
                }
                for info in updated {
                    println!("updated {} ({} MB)", info.image, info.memory_mb);
                }
            }
            Action::Delete { image } => {
                let runtimes = runtimes(&config).await?;
                let which = selection(&config, &image);
                let removed = runtimes.delete(&which).await?;
                if removed.is_empty() {
                    eprintln!("no deployed runtime matches `{image}`; nothing to delete");
                }
                for info in removed {
                    println!("deleted {} ({} MB)", info.image, info.memory_mb);
                }
            }
            Action::List => {
                let runtimes = runtimes(&config).await?;
                let list = runtimes.list().await?;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(
                    out,
                    "{:<60} {:>8}  {:<10} ACTION",
                    "IMAGE", "MEMORY", "WISP"
                );
                for info in list {
                    let _ = writeln!(
                        out,
                        "{:<60} {:>5} MB  {:<10} {}/{}",
                        info.image,
                        info.memory_mb,
                        info.wisp_version,
                        runtime::PACKAGE,
                        info.action
                    );
                }
            }
        }
        Ok(())
    }
}

fn selection(config: &Config, image: &str) -> Selection {
    if image == "all" {
        Selection::All
    } else {
        Selection::Image(runtime::resolve_image(config, Some(image)))
    }
}

async fn runtimes(config: &Config) -> anyhow::Result<Runtimes> {
    let storage = wisp::storage::open(config).await?;
    Ok(Runtimes::new(config, storage)?)
}

async fn build(
    config: &Config,
    image: &str,
    file: Option<PathBuf>,
    no_push: bool,
) -> anyhow::Result<()> {
    let tag = runtime::resolve_image(config, Some(image));
    wisp::docker::validate_tag(&tag)?;
    let docker = wisp::docker::connect().await?;
    eprintln!("building wisp-action for x86_64-unknown-linux-musl");
    let binary = tokio::task::spawn_blocking(|| wisp::docker::build_action_binary(None))
        .await
        .context("the build thread failed")??;
    let info = wisp::docker::build_image(&docker, &tag, file.as_deref(), &binary, true).await?;
    eprintln!(
        "built {} ({:.1} MB)",
        info.tag,
        info.size_bytes as f64 / 1e6
    );
    if !no_push {
        let ow = &config.openwhisk;
        let credentials = match (&ow.docker_user, &ow.docker_password) {
            (Some(user), Some(password)) => Some(wisp::docker::RegistryCredentials {
                server: wisp::docker::validate_tag(&tag)?
                    .registry_or_default()
                    .to_owned(),
                user: user.clone(),
                password: password.clone(),
            }),
            _ => None,
        };
        wisp::docker::push_image(&docker, &tag, credentials.as_ref(), true).await?;
        eprintln!("pushed {tag}");
    }
    println!("{tag}");
    Ok(())
}

/// `wisp clean`: everything wisp left in storage and on the backend.
#[derive(Args)]
pub struct CleanCommand {
    #[command(flatten)]
    target: Target,
    /// Clean even while jobs are running (their calls then fail, or their
    /// client waits for outcomes that never come).
    #[arg(long)]
    force: bool,
}

impl CleanCommand {
    pub async fn run(self) -> Result<(), Failure> {
        let config = self.target.config()?;
        let storage = wisp::storage::open(&config).await?;
        if !self.force {
            let jobs = wisp::jobs::list(storage.as_ref(), &config.bucket()).await?;
            let running: Vec<&str> = jobs
                .iter()
                .filter(|job| job.state() == wisp::jobs::JobState::Running)
                .map(|job| job.job_id.as_str())
                .collect();
            if !running.is_empty() {
                return Err(anyhow::anyhow!(
                    "{} job(s) are still running ({}): wait for them, or stop them, and clean \
                     again; `wisp clean --force` removes their data anyway",
                    running.len(),
                    running.join(", ")
                )
                .into());
            }
        }
        if config.backend == BackendKind::Openwhisk {
            let runtimes = Runtimes::new(&config, storage)?;
            let report = runtimes.clean().await?;
            println!(
                "removed {} runtime action(s){}, {} job object(s), {} module(s) and {} runtime \
                 metadata object(s)",
                report.actions,
                if report.package {
                    " and wisp's package"
                } else {
                    ""
                },
                report.job_objects,
                report.module_objects,
                report.metadata_objects
            );
        } else {
            let bucket = config.bucket();
            let jobs = storage
                .delete_prefix(&bucket, &wisp_runtime::protocol::jobs_prefix())
                .await?;
            let modules = storage
                .delete_prefix(&bucket, &wisp_runtime::protocol::modules_prefix())
                .await?;
            // Compiled code is kept only by OpenWhisk runtimes; a local
            // job never writes it, but a shared bucket may hold some.
            storage
                .delete_prefix(&bucket, &wisp_runtime::protocol::code_prefix())
                .await?;
            println!("removed {jobs} job object(s) and {modules} module(s)");
        }
        Ok(())
    }
}
