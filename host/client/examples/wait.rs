//! Waiting: for the first call to finish, for all of them with a time
//! limit, and looking at each call's state meanwhile.
//!
//! ```sh
//! cargo run -p wisp --example wait
//! ```

use std::time::Duration;

use wisp::WaitFor;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let exec = wisp::FunctionExecutor::new().await?;
    let f = exec.function(repo().join("examples/pi"))?;
    let inputs: Vec<(u64, u64)> = (1..=8).map(|seed| (seed, 2_000_000)).collect();
    let futures = exec.map(&f, "sample", inputs).await?;

    let first = exec.wait(&futures, WaitFor::AnyCompleted, None).await;
    println!("first done: {} of {}", first.done.len(), futures.len());
    let states: Vec<String> = futures.iter().map(|f| format!("{:?}", f.state())).collect();
    println!("states now: {}", states.join(" "));

    let all = exec
        .wait(
            &futures,
            WaitFor::AllCompleted,
            Some(Duration::from_secs(60)),
        )
        .await;
    println!(
        "after waiting: {} done, {} pending",
        all.done.len(),
        all.pending.len()
    );
    let job = exec.reduce(&f, futures, "estimate").await?;
    let pi: serde_json::Value = exec.get_result(&job.reduce).await?;
    println!("pi ≈ {}", pi["pi"]);
    exec.close().await?;
    Ok(())
}

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
