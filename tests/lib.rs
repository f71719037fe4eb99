//! Helpers shared by wisp's end-to-end tests: the guest fixtures, built
//! once per test process, and executors on throwaway storage.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use wisp::FunctionExecutor;

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
}

/// A guest crate's directory, relative to the repository root.
pub fn crate_dir(relative: &str) -> PathBuf {
    repo().join(relative)
}

/// Builds a guest crate once per test process and returns its module.
pub fn module(relative: &'static str) -> Vec<u8> {
    static BUILT: OnceLock<std::sync::Mutex<std::collections::HashMap<&'static str, PathBuf>>> =
        OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = built.entry(relative).or_insert_with(|| {
        wisp::builder::build_crate(&crate_dir(relative))
            .unwrap_or_else(|e| panic!("fixture {relative} does not build: {e}"))
    });
    std::fs::read(path).expect("built module is readable")
}

/// The module of the test fixtures with one function per fault.
pub fn faults() -> Vec<u8> {
    module("tests/guests/faults")
}

/// An executor on fresh local storage, with `workers` workers and a short
/// time limit, plus the directory that holds its storage.
pub async fn executor(workers: usize, timeout: Duration) -> (tempfile::TempDir, FunctionExecutor) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = wisp::Config {
        storage_dir: dir.path().join("storage"),
        workers,
        runtime_timeout: timeout,
        ..wisp::Config::default()
    };
    let exec = FunctionExecutor::builder()
        .config(config)
        .build()
        .await
        .expect("executor starts");
    (dir, exec)
}

/// The action server binary, built once per test process with the same
/// profile as the tests: the stand-in for a runtime container where the
/// emulator runs actions as processes.
pub fn action_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let status = std::process::Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "wisp-runtime",
                    "--bin",
                    "wisp-action",
                ])
                .current_dir(repo())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "wisp-action does not build");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| repo().join("target"), PathBuf::from);
            let binary = target.join("debug").join("wisp-action");
            assert!(binary.is_file(), "no binary at {}", binary.display());
            binary
        })
        .clone()
}
