//! `wisp hello`: one tiny call through the configured backend and storage,
//! the first thing to run on a new set-up.
//!
//! The function is the one of `examples/hello`, `my_function(x) = x + 7`,
//! as the 400-byte module of [`wisp::hello`], which needs no build.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use wisp::config::{BackendKind, StorageKind};
use wisp::{Config, Error, FunctionExecutor};

use crate::Failure;

#[derive(Args)]
pub struct Hello {
    /// The argument of `my_function`.
    #[arg(default_value_t = 3, allow_negative_numbers = true)]
    x: i64,
    /// Where the call runs: localhost or openwhisk (default: the config's
    /// `wisp.backend`).
    #[arg(short, long, value_name = "BACKEND")]
    backend: Option<BackendKind>,
    /// Where the job is kept: localhost, minio, aws_s3 or ceph (default:
    /// the config's `wisp.storage`).
    #[arg(short, long, value_name = "STORAGE")]
    storage: Option<StorageKind>,
    /// How long to wait for the result, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    wait: u64,
}

impl Hello {
    pub async fn run(self) -> Result<(), Failure> {
        let mut config = Config::load()?;
        if let Some(backend) = self.backend {
            config.use_backend(backend);
        }
        if let Some(storage) = self.storage {
            config.storage = storage;
        }
        let source = config.source.as_ref().map_or_else(
            || "the defaults (no config file)".to_owned(),
            |p| p.display().to_string(),
        );
        println!("config   {source}");
        let backend = match config.backend {
            BackendKind::Localhost => format!("localhost, {} workers", config.workers),
            BackendKind::Openwhisk => format!(
                "openwhisk at {}",
                config
                    .openwhisk
                    .endpoint
                    .as_deref()
                    .unwrap_or("(no endpoint)")
            ),
        };
        println!("backend  {backend}");
        let exec = FunctionExecutor::builder()
            .config(config.clone())
            .build()
            .await
            .map_err(|e| explain_setup(&config, e))?;
        println!(
            "storage  {}, bucket `{}`",
            exec.storage().describe(),
            exec.bucket()
        );
        let outcome = call(&exec, self.x, Duration::from_secs(self.wait)).await;
        let closed = exec.close().await;
        let y = outcome.map_err(|e| explain_call(&config, e))?;
        closed.context("the call ran, but its job's data could not be removed")?;
        println!("result   my_function({}) = {y}", self.x);
        println!("wisp works: try `wisp submit examples/hello --function my_function --args 3`");
        Ok(())
    }
}

async fn call(exec: &FunctionExecutor, x: i64, wait: Duration) -> Result<i64, Error> {
    let f = exec.function_from_bytes("wisp hello's built-in my_function", wisp::hello::module())?;
    let future = exec.call_async(&f, "my_function", x).await?;
    exec.get_result_timeout(&future, wait).await
}

/// Says which part of the set-up failed and how to fix it.
fn explain_setup(config: &Config, error: Error) -> anyhow::Error {
    let storage = config.storage;
    let hint = match &error {
        Error::Config(_) => "fix the config (`wisp config show` prints what wisp reads)".to_owned(),
        Error::Storage(wisp_storage::StorageError::NoSuchBucket { bucket }) => {
            format!("create the bucket with `wisp storage create-bucket {bucket} -s {storage}`")
        }
        Error::Storage(wisp_storage::StorageError::Denied { .. }) => format!(
            "{storage} storage refused the credentials: check `access_key_id` and \
             `secret_access_key` in the `{storage}` section (or AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY)"
        ),
        Error::Storage(_) if storage != StorageKind::Localhost => format!(
            "{storage} storage is not reachable: is the server running, and are `endpoint` \
             and the credentials in the `{storage}` section right?"
        ),
        Error::Storage(_) => format!(
            "local storage in {} cannot be used: check that the directory is writable, \
             or set `localhost.storage_dir` / WISP_STORAGE_DIR",
            config.storage_dir.display()
        ),
        Error::OpenWhisk(_) => "OpenWhisk is not reachable or refused the key: check \
             `openwhisk.endpoint` and `openwhisk.api_key`"
            .to_owned(),
        _ => String::new(),
    };
    with_hint(
        anyhow::Error::new(error).context("wisp is not set up yet"),
        &hint,
    )
}

/// Says why the call did not give a result.
fn explain_call(config: &Config, error: Error) -> anyhow::Error {
    use wisp::openwhisk::OpenWhiskError as Ow;
    const RUNTIME: &str = "the runtime is not built or not deployed: `wisp runtime build` and \
         `wisp runtime deploy` set it up (see docs/openwhisk.md)";
    let hint = match (&error, config.backend) {
        (
            Error::OpenWhisk(Ow::Unreachable { .. } | Ow::Interrupted { .. } | Ow::Timeout { .. }),
            _,
        ) => "OpenWhisk is not reachable",
        (Error::OpenWhisk(Ow::Unauthorized { .. } | Ow::Forbidden { .. }), _) => {
            "OpenWhisk refused the API key"
        }
        (Error::Timeout { .. }, BackendKind::Openwhisk) => {
            "no outcome arrived: the runtime action may be failing (`wisp runtime list \
             -b openwhisk`), or its containers cannot reach the storage endpoint"
        }
        (Error::Docker(_) | Error::OpenWhisk(Ow::NotFound { .. }), _) => RUNTIME,
        (Error::Unsupported(message), BackendKind::Openwhisk) if message.contains("runtime") => {
            RUNTIME
        }
        _ => "",
    };
    with_hint(
        anyhow::Error::new(error).context(format!("the hello call on {} failed", config.backend)),
        hint,
    )
}

fn with_hint(error: anyhow::Error, hint: &str) -> anyhow::Error {
    if hint.is_empty() {
        error
    } else {
        error.context(format!("wisp is not set up yet: {hint}"))
    }
}
