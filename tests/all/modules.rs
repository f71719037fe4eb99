//! Modules that cannot be run, each refused before any job with a message
//! that says what is wrong and what to do.

use std::time::Duration;

use wisp::Error;
use wisp_engine::ModuleError;
use wisp_tests::{crate_dir, executor};

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid WAT")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_that_is_not_wasm_is_refused() {
    let (dir, exec) = executor(1, Duration::from_secs(5)).await;
    let path = dir.path().join("notes.wasm");
    std::fs::write(&path, "hello, I am text").expect("write");
    let err = exec.function(&path).expect_err("text is not wasm");
    assert!(
        matches!(
            &err,
            Error::Module {
                error: ModuleError::NotWasm(_),
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("not a WebAssembly module"), "{message}");
    assert!(message.contains("notes.wasm"), "{message}");
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_module_with_neither_manifest_nor_start_is_refused() {
    let (_dir, exec) = executor(1, Duration::from_secs(5)).await;
    let bytes = wat(r#"(module (func (export "compute") (result i32) i32.const 1))"#);
    let err = exec
        .function_from_bytes("bare.wasm", bytes)
        .expect_err("nothing to call");
    let message = err.to_string();
    assert!(
        message.contains("neither a wisp manifest nor a `_start`"),
        "{message}"
    );
    assert!(message.contains("#[wisp_guest::function]"), "{message}");
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_module_for_another_abi_names_both_versions_and_the_fix() {
    let (_dir, exec) = executor(1, Duration::from_secs(5)).await;
    let bytes = wat(r#"(module
             (@custom "wisp-manifest" "{\"abi\":7,\"sdk\":\"9.1.0\",\"function\":\"f\",\"params\":[]}\n")
             (memory (export "memory") 1)
             (func (export "wisp_alloc") (param i32) (result i32) i32.const 8)
             (func (export "wisp:fn:f") (param i32 i32) (result i64) i64.const 0))"#);
    let err = exec
        .function_from_bytes("future.wasm", bytes)
        .expect_err("ABI 7");
    let message = err.to_string();
    assert!(message.contains("ABI version 7"), "{message}");
    assert!(message.contains("wisp-guest 9.1.0"), "{message}");
    assert!(message.contains("speaks ABI 1"), "{message}");
    assert!(message.contains("rebuild"), "{message}");
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_that_promises_a_missing_export_is_refused() {
    let (_dir, exec) = executor(1, Duration::from_secs(5)).await;
    let bytes = wat(r#"(module
             (@custom "wisp-manifest" "{\"abi\":1,\"sdk\":\"0.1.0\",\"function\":\"ghost\",\"params\":[]}\n")
             (memory (export "memory") 1)
             (func (export "wisp_alloc") (param i32) (result i32) i32.const 8))"#);
    let message = exec
        .function_from_bytes("ghost.wasm", bytes)
        .expect_err("no wisp:fn:ghost")
        .to_string();
    assert!(message.contains("wisp:fn:ghost"), "{message}");
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_module_importing_the_unknown_is_refused_at_load() {
    let (_dir, exec) = executor(1, Duration::from_secs(5)).await;
    let bytes = wat(r#"(module
             (import "env" "launch_missiles" (func))
             (func (export "_start") call 0))"#);
    let message = exec
        .function_from_bytes("rogue.wasm", bytes)
        .expect_err("unknown import")
        .to_string();
    assert!(message.contains("launch_missiles"), "{message}");
    assert!(message.contains("wasi_snapshot_preview1"), "{message}");
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crate_that_does_not_build_reports_cargos_message() {
    let (dir, exec) = executor(1, Duration::from_secs(5)).await;
    let krate = dir.path().join("broken");
    std::fs::create_dir_all(krate.join("src")).expect("mkdir");
    let sdk = crate_dir("guest-sdk/wisp-guest");
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            "[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
             [lib]\ncrate-type = [\"cdylib\"]\n[dependencies]\nwisp-guest = {{ path = {:?} }}\n\
             [workspace]\n",
            sdk.display().to_string()
        ),
    )
    .expect("write");
    std::fs::write(
        krate.join("src/lib.rs"),
        "#[wisp_guest::function]\nfn f(x: i64) -> i64 { x + undefined_name }\n",
    )
    .expect("write");
    let err = exec.function(&krate).expect_err("does not compile");
    assert!(matches!(err, Error::Build(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("does not build"), "{message}");
    assert!(
        message.contains("undefined_name"),
        "cargo's message is kept: {message}"
    );
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_without_a_crate_says_so() {
    let (dir, exec) = executor(1, Duration::from_secs(5)).await;
    let message = exec.function(dir.path()).expect_err("no crate").to_string();
    assert!(
        message.contains("neither a .wasm file nor a crate directory"),
        "{message}"
    );
    exec.close().await.expect("close");
}

/// A second process (here: a second engine) loads the compiled code that a
/// first one left in the cache, and runs it; code in the cache that this
/// user's key does not vouch for is compiled afresh instead.
#[test]
fn compiled_modules_are_reused_across_engines_only_when_authentic() {
    use wisp_engine::{CallLimits, Engine, EngineConfig};
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("code");
    let engine = || {
        Engine::new(EngineConfig {
            code_cache: Some(cache.clone()),
            instance_slots: 2,
            ..EngineConfig::default()
        })
        .expect("engine")
    };
    let bytes = wisp_tests::faults();
    let first = engine().load(&bytes).expect("compiles");
    assert!(!first.from_code_cache());
    let second_engine = engine();
    let started = std::time::Instant::now();
    let second = second_engine.load(&bytes).expect("loads");
    let cold = started.elapsed();
    assert!(
        second.from_code_cache(),
        "the second engine reuses the code"
    );
    let out = second_engine.call(&second, "add", b"[2, 3]", &CallLimits::default());
    assert_eq!(out.result.expect("runs"), b"5");
    eprintln!("load from the code cache: {cold:?}");

    // Tamper with every entry: the next engine compiles instead.
    for entry in std::fs::read_dir(&cache).expect("cache dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let mut code = std::fs::read(&path).expect("read");
            let middle = code.len() / 2;
            code[middle] ^= 0xff;
            std::fs::write(&path, code).expect("tamper");
        }
    }
    let third = engine().load(&bytes).expect("compiles again");
    assert!(!third.from_code_cache(), "tampered code is never loaded");
}
