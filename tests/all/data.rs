//! The main job: a word count mapped over the real corpus, reduced to one
//! result, checked against the same count done natively.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use wisp::partition;
use wisp_tests::{crate_dir, executor, module};

#[derive(Deserialize)]
struct WordCounts {
    total_words: u64,
    distinct_words: u64,
    counts: BTreeMap<String, u64>,
}

fn native_counts(text: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *counts.entry(word.to_lowercase()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn word_count_over_the_corpus_matches_a_native_count() {
    let corpus = crate_dir("examples/data/first-folio");
    let files = partition::files_under(&corpus).expect("corpus");
    assert!(files.len() > 30, "the corpus ships {} files", files.len());
    let mut expected = BTreeMap::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("UTF-8 corpus");
        for (word, n) in native_counts(&text) {
            *expected.entry(word).or_insert(0) += n;
        }
    }

    let (_dir, exec) = executor(2, Duration::from_secs(60)).await;
    let f = exec
        .function_from_bytes("wordcount", module("examples/wordcount"))
        .expect("loads");
    let chunks =
        partition::partition(&files, partition::Chunking::Size(64 * 1024)).expect("partition");
    assert!(chunks.len() > files.len(), "files are split");
    let inputs: Vec<_> = chunks
        .iter()
        .map(|c| c.read_text().expect("text"))
        .collect();
    let job = exec
        .map_reduce(&f, "count_words", inputs, "merge_counts")
        .await
        .expect("map-reduce");
    let result: WordCounts = exec.get_result(&job.reduce).await.expect("reduce");
    assert_eq!(result.counts, expected);
    assert_eq!(result.total_words, expected.values().sum::<u64>());
    assert_eq!(result.distinct_words, expected.len() as u64);
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_map_call_stops_the_reduce_and_names_the_call() {
    let (_dir, exec) = executor(2, Duration::from_secs(60)).await;
    let f = exec
        .function_from_bytes("wordcount", module("examples/wordcount"))
        .expect("loads");
    let inputs = vec![
        serde_json::json!({"text": "one two"}),
        serde_json::json!({"txt": "misspelled field"}),
    ];
    let err = exec
        .map_reduce(&f, "count_words", inputs, "merge_counts")
        .await
        .expect_err("second call has bad arguments");
    let message = err.to_string();
    assert!(message.contains("1 of 2 calls failed"), "{message}");
    assert!(message.contains("call 00001"), "{message}");
    assert!(message.contains("text"), "{message}");
    let unknown = exec
        .map_reduce(
            &f,
            "count_words",
            [serde_json::json!({"text": "x"})],
            "merge",
        )
        .await
        .expect_err("no reduce of that name");
    assert!(unknown.to_string().contains("merge_counts"), "{unknown}");
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn monte_carlo_pi_is_close_to_pi() {
    let (_dir, exec) = executor(2, Duration::from_secs(60)).await;
    let f = exec
        .function_from_bytes("pi", module("examples/pi"))
        .expect("loads");
    let inputs: Vec<(u64, u64)> = (1..=8).map(|seed| (seed, 250_000)).collect();
    let job = exec
        .map_reduce(&f, "sample", inputs, "estimate")
        .await
        .expect("map-reduce");
    let estimate: serde_json::Value = exec.get_result(&job.reduce).await.expect("estimate");
    let pi = estimate["pi"].as_f64().expect("pi is a number");
    assert!((pi - std::f64::consts::PI).abs() < 0.01, "{estimate}");
    exec.close().await.expect("close");
}
