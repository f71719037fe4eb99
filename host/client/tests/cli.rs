//! `wisp submit` as a user runs it: output on stdout, errors on stderr,
//! and exit codes a script can rely on (0 ok, 1 some calls failed, 2 the
//! job could not run).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `wisp` from the repository root with an empty config and its own
/// storage.
fn wisp(args: &[&str]) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "").expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_wisp"))
        .args(args)
        .current_dir(repo())
        .env("WISP_CONFIG", &config)
        .env("WISP_STORAGE_DIR", dir.path().join("storage"))
        .output()
        .expect("wisp runs");
    (dir, output)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn results_print_as_json_lines_in_input_order() {
    let cases: [(&[&str], &str); 3] = [
        (&["--args", "3"], "10\n"),
        (&["--map-json", "[1,2,3]"], "8\n9\n10\n"),
        (&["--map-json", "[]"], ""),
    ];
    for (input, expected) in cases {
        let mut args = vec!["submit", "examples/hello", "--function", "my_function"];
        args.extend_from_slice(input);
        let (_dir, out) = wisp(&args);
        assert_eq!(stdout(&out), expected, "{input:?}: {}", stderr(&out));
        assert_eq!(out.status.code(), Some(0), "{input:?}");
    }
}

#[test]
fn a_map_file_takes_one_json_argument_per_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lines = dir.path().join("args.jsonl");
    std::fs::write(&lines, "[1, 2]\n\n{\"a\": 5, \"b\": 6}\n").expect("write");
    let (_dir, out) = wisp(&[
        "submit",
        "tests/guests/faults",
        "--function",
        "add",
        "--map-file",
        lines.to_str().expect("UTF-8 path"),
    ]);
    assert_eq!(stdout(&out), "3\n11\n", "{}", stderr(&out));
}

#[test]
fn failed_calls_exit_1_with_a_summary_naming_them() {
    let (_dir, out) = wisp(&[
        "submit",
        "tests/guests/faults",
        "--function",
        "add",
        "--map-json",
        r#"[[1, 1], ["x", 1], [2, 2]]"#,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "one line per input: {text}");
    assert_eq!((lines[0], lines[2]), ("2", "4"));
    let failed: serde_json::Value = serde_json::from_str(lines[1]).expect("JSON");
    assert_eq!(failed["call"], "00001");
    let message = failed["error"].as_str().unwrap_or_default();
    assert!(message.contains("invalid type"), "{failed}");
    let err = stderr(&out);
    assert!(err.contains("1 of 3 calls failed"), "{err}");
    assert!(err.contains("call 00001"), "{err}");
    assert!(err.contains("invalid type"), "{err}");
}

#[test]
fn bad_input_exits_2_with_a_message_saying_what_to_do() {
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "submit",
                "examples/hello",
                "--function",
                "my_function",
                "--args",
                "hello",
            ],
            "--args must be JSON",
        ),
        (
            &[
                "submit",
                "examples/wordcount",
                "--function",
                "count_words",
                "--data",
                "examples/data",
                "--chunk-size",
                "0",
            ],
            "at least one byte",
        ),
        (
            &[
                "submit",
                "examples/hello",
                "--function",
                "nope",
                "--args",
                "1",
            ],
            "my_function",
        ),
        (
            &["submit", "no/such/dir", "--function", "f", "--args", "1"],
            "neither a .wasm file nor a crate directory",
        ),
    ];
    for (args, expected) in cases {
        let (_dir, out) = wisp(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn a_sleeping_call_is_stopped_at_its_time_limit() {
    // Build the fixture first, so that the timing below is the job's alone.
    let (_dir, warm) = wisp(&[
        "submit",
        "tests/guests/faults",
        "--function",
        "noop",
        "--args",
        "null",
    ]);
    assert_eq!(warm.status.code(), Some(0), "{}", stderr(&warm));
    let started = std::time::Instant::now();
    let (_dir, out) = wisp(&[
        "submit",
        "tests/guests/faults",
        "--function",
        "sleep_ms",
        "--map-json",
        "[20000, 5]",
        "--timeout",
        "1",
    ]);
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("time limit of 1 s"),
        "{}",
        stderr(&out)
    );
    // The short sleep succeeds and reports how long it slept, which a loaded
    // machine may stretch past the 5 ms asked for, but never to the limit.
    let out_text = stdout(&out);
    let lines: Vec<&str> = out_text.lines().collect();
    assert_eq!(lines.len(), 2, "one line per call: {out_text}");
    let slept: u64 = lines[1]
        .parse()
        .unwrap_or_else(|_| panic!("the short sleep succeeds: {out_text}"));
    assert!((5..1000).contains(&slept), "slept {slept} ms: {out_text}");
    assert!(
        elapsed < std::time::Duration::from_secs(10),
        "took {elapsed:?}"
    );
}

#[test]
fn flags_out_of_range_are_refused_by_name() {
    for (flag, value) in [("--memory", "0"), ("--timeout", "0"), ("--workers", "0")] {
        let (_dir, out) = wisp(&[
            "submit",
            "examples/hello",
            "--function",
            "my_function",
            "--args",
            "1",
            flag,
            value,
        ]);
        assert_eq!(out.status.code(), Some(2), "{flag}");
        assert!(stderr(&out).contains(flag), "{flag}: {}", stderr(&out));
    }
}

#[test]
fn word_count_over_a_directory_reduces_to_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("a.txt"), "The cat\nthe dog\n").expect("write");
    std::fs::write(dir.path().join("b.txt"), "Dog, cat; CAT!\n").expect("write");
    let (_store, out) = wisp(&[
        "submit",
        "examples/wordcount",
        "--function",
        "count_words",
        "--data",
        dir.path().to_str().expect("UTF-8 path"),
        "--chunk-size",
        "8",
        "--reduce",
        "merge_counts",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one reduce result");
    let result: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON");
    assert_eq!(result["total_words"], 7);
    assert_eq!(result["counts"]["cat"], 3);
    assert_eq!(result["counts"]["the"], 2);
}
