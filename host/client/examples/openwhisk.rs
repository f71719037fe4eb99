//! The same map on OpenWhisk: only the executor's backend and storage
//! change. Needs the `openwhisk` and `minio` sections of the config (see
//! docs/openwhisk.md); the runtime is deployed by the first job.
//!
//! ```sh
//! cargo run -p wisp --example openwhisk
//! ```

use wisp::config::{BackendKind, StorageKind};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let exec = wisp::FunctionExecutor::builder()
        .backend(BackendKind::Openwhisk)
        .storage(StorageKind::Minio)
        .runtime_memory(256)
        .build()
        .await?;
    let f = exec.function(repo().join("examples/hello"))?;
    let futures = exec.map(&f, "my_function", 0..1_000).await?;
    let ys: Vec<i64> = exec.get_results(&futures).await?;
    println!(
        "{} results from OpenWhisk, the last {}",
        ys.len(),
        ys[ys.len() - 1]
    );
    exec.close().await?;
    Ok(())
}

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
