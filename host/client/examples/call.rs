//! One call: build a guest crate, call a function once, read the result.
//!
//! ```sh
//! cargo run -p wisp --example call
//! ```

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let exec = wisp::FunctionExecutor::new().await?;
    let f = exec.function(repo().join("examples/hello"))?;
    let future = exec.call_async(&f, "my_function", 3).await?;
    let y: i64 = exec.get_result(&future).await?;
    println!("my_function(3) = {y}");
    if let Some(t) = future.timings() {
        println!(
            "ran in {} µs, {} µs after it was submitted",
            t.function_end_us - t.function_start_us,
            t.function_end_us - t.submitted_us
        );
    }
    exec.close().await?;
    Ok(())
}

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
