//! A map-reduce over data: the word count over the First Folio, cut into
//! chunks that end at line ends.
//!
//! ```sh
//! cargo run -p wisp --example map_reduce
//! ```

use wisp::partition::{Chunking, files_under, partition};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let exec = wisp::FunctionExecutor::new().await?;
    let files = files_under(&repo().join("examples/data/first-folio"))?;
    let chunks = partition(&files, Chunking::Size(256 << 10))?
        .iter()
        .map(|chunk| chunk.read_text())
        .collect::<Result<Vec<_>, _>>()?;
    let f = exec.function(repo().join("examples/wordcount"))?;
    let job = exec
        .map_reduce(&f, "count_words", chunks, "merge_counts")
        .await?;
    let counts: serde_json::Value = exec.get_result(&job.reduce).await?;
    println!(
        "{} words, {} distinct, over {} chunks",
        counts["total_words"],
        counts["distinct_words"],
        job.map.len()
    );
    exec.close().await?;
    Ok(())
}

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
