//! Plots of a finished job: its timeline and histogram of call durations
//! (SVG and PNG) and one CSV row per call.
//!
//! ```sh
//! cargo run -p wisp --example plots -- /tmp/wisp-plots
//! ```

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| std::env::temp_dir().join("wisp-plots"), Into::into);
    let exec = wisp::FunctionExecutor::new().await?;
    let f = exec.function(repo().join("examples/pi"))?;
    let inputs: Vec<(u64, u64)> = (1..=32).map(|seed| (seed, 500_000)).collect();
    let futures = exec.map(&f, "sample", inputs).await?;
    exec.wait(&futures, wisp::WaitFor::AllCompleted, None).await;
    let files = wisp::plots::write_job_plots(&futures, &dir)?;
    println!("{files:#?}");
    exec.close().await?;
    Ok(())
}

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
