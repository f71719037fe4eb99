//! A map: one call per input, results in input order, and a failed call
//! reported by name.
//!
//! ```sh
//! cargo run -p wisp --example map
//! ```

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let exec = wisp::FunctionExecutor::builder()
        .runtime_memory(128)
        .build()
        .await?;
    let f = exec.function(repo().join("examples/hello"))?;
    let futures = exec.map(&f, "my_function", 0..10_000).await?;
    let ys: Vec<i64> = exec.get_results(&futures).await?;
    println!("{} results, the last {}", ys.len(), ys[ys.len() - 1]);

    // Bad input fails its own call only; the error names it.
    let futures = exec
        .map(
            &f,
            "my_function",
            [serde_json::json!(1), serde_json::json!("two")],
        )
        .await?;
    match exec.get_results::<i64>(&futures).await {
        Ok(_) => println!("unexpectedly, every call succeeded"),
        Err(e) => println!("as expected: {e}"),
    }
    exec.close().await?;
    Ok(())
}

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
