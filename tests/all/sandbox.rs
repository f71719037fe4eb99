//! Hostile and broken modules: each one fails its own call with an error
//! that says what went wrong, the host's memory stays bounded, and the
//! next call of the same executor runs.
//!
//! The modules are written by hand in WAT (or as raw bytes where the text
//! would be too large), so each test shows exactly what the guest does.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wisp::{CallError, Error, Failure, FunctionExecutor};
use wisp_tests::faults;

const WASI: &str = "wasi_snapshot_preview1";

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap_or_else(|e| panic!("invalid WAT: {e}"))
}

fn call_error(err: &Error) -> &CallError {
    match err {
        Error::Call(failure) => match &failure.failure {
            Failure::Call(error) => error,
            other => panic!("not a call error: {other:?}"),
        },
        other => panic!("not a call failure: {other:?}"),
    }
}

/// An executor on fresh local storage with one worker and a memory limit
/// of `memory_mb` per call.
async fn executor(memory_mb: u64) -> (tempfile::TempDir, FunctionExecutor) {
    let dir = tempfile::tempdir().expect("temp dir");
    let exec = FunctionExecutor::builder()
        .storage_dir(dir.path())
        .runtime_memory(memory_mb)
        .runtime_timeout(Duration::from_secs(60))
        .workers(1)
        .build()
        .await
        .expect("executor");
    (dir, exec)
}

/// Shows that the executor still works: a call of a sound module.
async fn next_call_runs(exec: &FunctionExecutor) {
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let fut = exec.call_async(&f, "add", (20, 22)).await.expect("submit");
    assert_eq!(exec.get_result::<i64>(&fut).await.expect("runs"), 42);
}

/// The process's peak resident memory so far (VmHWM), in MiB. nextest
/// runs each test in a process of its own, so this is this test's peak.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM in kB");
    kib / 1024
}

/// Escapes text for a WAT string literal.
fn wat_string(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b' '..=b'~' if b != b'"' && b != b'\\' => char::from(b).to_string(),
            _ => format!("\\{b:02x}"),
        })
        .collect()
}

/// A wisp function module (ABI 1) with a manifest naming `functions`;
/// `body` holds their exports, the imports and any data. Arguments are
/// written at 64 KiB, in the module's second page.
fn abi_module(functions: &[String], imports: &str, body: &str) -> Vec<u8> {
    let manifest: String = functions
        .iter()
        .map(|f| format!("{{\"abi\":1,\"sdk\":\"0.1.0\",\"function\":\"{f}\",\"params\":[]}}\n"))
        .collect();
    wat(&format!(
        r#"(module
             (@custom "wisp-manifest" "{manifest}")
             {imports}
             (memory (export "memory") 2)
             (func (export "wisp_alloc") (param i32) (result i32) i32.const 65536)
             {body})"#,
        manifest = wat_string(&manifest)
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_declared_past_the_limit_names_runtime_memory() {
    let (_dir, exec) = executor(256).await;
    let cases = [
        // 4 GiB up front: all a 32-bit module can address.
        ("initial 4 GiB", r#"(memory (export "memory") 65536)"#, ""),
        // 512 MiB up front, over the call's 256 MiB.
        ("initial 512 MiB", r#"(memory (export "memory") 8192)"#, ""),
        // One page, a maximum of 4 GiB, and a grow to it that is refused:
        // `memory.grow` gives -1, and the guest traps on that.
        (
            "grown to 4 GiB",
            r#"(memory (export "memory") 1 65536)"#,
            "(if (i32.eq (memory.grow (i32.const 65535)) (i32.const -1)) (then unreachable))",
        ),
    ];
    for (name, memory, code) in cases {
        let bytes = wat(&format!(
            r#"(module {memory} (func (export "_start") {code}))"#
        ));
        let f = exec
            .function_from_bytes(name, bytes)
            .unwrap_or_else(|e| panic!("{name}: loads, fails per call: {e}"));
        let fut = exec.call_async(&f, "_start", ()).await.expect("submit");
        let err = exec.get_result::<Value>(&fut).await.expect_err(name);
        let CallError::MemoryLimit {
            limit_bytes,
            requested_bytes,
        } = call_error(&err)
        else {
            panic!("{name}: {err:?}")
        };
        assert_eq!(*limit_bytes, 256 << 20, "{name}");
        assert!(
            requested_bytes.is_some_and(|r| r > 256 << 20),
            "{name}: {requested_bytes:?}"
        );
        let message = err.to_string();
        assert!(message.contains("runtime_memory"), "{name}: {message}");
        assert!(message.contains("256 MiB"), "{name}: {message}");
        next_call_runs(&exec).await;
    }
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_exports_load_and_run() {
    const COUNT: usize = 10_000;
    let (_dir, exec) = executor(256).await;
    let names: Vec<String> = (0..COUNT).map(|i| format!("f{i}")).collect();
    // Function i returns the JSON number i: its output (a tag byte, then
    // the digits) lies at its own place in one data segment.
    let mut data = Vec::new();
    let mut funcs = String::new();
    for (i, name) in names.iter().enumerate() {
        let result = format!("\0{i}");
        let packed = ((1024 + data.len() as u64) << 32) | result.len() as u64;
        data.extend_from_slice(result.as_bytes());
        funcs.push_str(&format!(
            "(func (export \"wisp:fn:{name}\") (param i32 i32) (result i64) i64.const {packed})\n"
        ));
    }
    let body = format!(
        "{funcs}(data (i32.const 1024) \"{}\")",
        wat_string(std::str::from_utf8(&data).expect("text"))
    );
    let bytes = abi_module(&names, "", &body);

    let started = Instant::now();
    let f = exec
        .function_from_bytes("exports.wasm", bytes.clone())
        .expect("loads");
    let load = started.elapsed();
    assert_eq!(f.manifest().functions.len(), COUNT);
    let futs = exec.map(&f, "f9999", [(), ()]).await.expect("submit f9999");
    let first = exec.call_async(&f, "f0", ()).await.expect("submit f0");
    assert_eq!(
        exec.get_results::<u64>(&futs).await.expect("runs"),
        [9999, 9999]
    );
    assert_eq!(exec.get_result::<u64>(&first).await.expect("runs"), 0);
    eprintln!(
        "{COUNT} exports: module {} KiB, compiled and checked in {load:?}",
        bytes.len() / 1024
    );
    assert!(load < Duration::from_secs(60), "took {load:?}");

    // An unknown name lists the module's functions, but not all 10,000.
    let err = exec
        .call_async(&f, "nope", ())
        .await
        .expect_err("no such function");
    let message = err.to_string();
    assert!(message.contains("no function `nope`"), "{message}");
    assert!(message.contains("f0"), "{message}");
    assert!(message.len() < 4096, "{} bytes of message", message.len());
    next_call_runs(&exec).await;
    exec.close().await.expect("close");
}

/// A WASI command whose memory of `pages` pages holds a data segment of
/// `data_len` bytes at offset 0 (the byte 0x5a), and whose `_start` prints
/// the JSON number of the segment's last byte. Written as bytes: a 100 MB
/// string would make a WAT text of the same size.
fn module_with_data(pages: u32, data_len: usize) -> Vec<u8> {
    fn leb(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn section(id: u8, body: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        leb(body.len() as u64, out);
        out.extend_from_slice(body);
    }
    // Everything but the data comes from WAT: `_start` writes "90\n" (the
    // decimal of 0x5a, read from the segment's last byte) to stdout.
    let last = (data_len - 1) as i32;
    let head = wat(&format!(
        r#"(module
             (import "{WASI}" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") {pages})
             (func (export "_start")
               (local $b i32)
               (local.set $b (i32.load8_u (i32.const {last})))
               ;; Three bytes at 0: two digits and a newline, then the
               ;; iovec at 16 points to them; the data is overwritten,
               ;; which the guest may do.
               (i32.store8 (i32.const 0) (i32.add (i32.const 48) (i32.div_u (local.get $b) (i32.const 10))))
               (i32.store8 (i32.const 1) (i32.add (i32.const 48) (i32.rem_u (local.get $b) (i32.const 10))))
               (i32.store8 (i32.const 2) (i32.const 10))
               (i32.store (i32.const 16) (i32.const 0))
               (i32.store (i32.const 20) (i32.const 3))
               (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))))"#
    ));
    let mut module = head;
    let mut data = Vec::with_capacity(data_len + 16);
    data.push(1); // one segment
    data.extend_from_slice(&[0x00, 0x41, 0x00, 0x0b]); // active, memory 0, at i32.const 0
    leb(data_len as u64, &mut data);
    data.resize(data.len() + data_len, 0x5a);
    section(11, &data, &mut module);
    module
}

#[tokio::test(flavor = "multi_thread")]
async fn a_100_mb_data_segment_runs_within_the_limit_or_names_it() {
    const SIZE: usize = 100_000_000;
    let pages = SIZE.div_ceil(65536) as u32;
    let before = peak_rss_mib();
    let bytes = module_with_data(pages, SIZE);
    let (_dir, small) = executor(64).await;
    let started = Instant::now();
    let f = small
        .function_from_bytes("data.wasm", bytes.clone())
        .expect("loads");
    let load = started.elapsed();
    let fut = small.call_async(&f, "_start", ()).await.expect("submit");
    let err = small
        .get_result::<Value>(&fut)
        .await
        .expect_err("100 MB of data in 64 MiB");
    assert!(
        matches!(call_error(&err), CallError::MemoryLimit { limit_bytes, .. } if *limit_bytes == 64 << 20),
        "{err:?}"
    );
    assert!(err.to_string().contains("runtime_memory"), "{err}");
    next_call_runs(&small).await;
    small.close().await.expect("close");

    let (_dir, large) = executor(256).await;
    let f = large
        .function_from_bytes("data.wasm", bytes)
        .expect("loads");
    let fut = large.call_async(&f, "_start", ()).await.expect("submit");
    assert_eq!(
        large
            .get_result::<u64>(&fut)
            .await
            .expect("fits in 256 MiB"),
        0x5a
    );
    next_call_runs(&large).await;
    large.close().await.expect("close");
    let after = peak_rss_mib();
    eprintln!(
        "100 MB data segment: compiled in {load:?}; peak RSS {before} MiB before, {after} MiB after"
    );
    assert!(after < 2048, "peak RSS {after} MiB");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_segment_outside_the_memory_is_the_modules_error() {
    let (_dir, exec) = executor(256).await;
    // One page of memory, and data at 64 KiB - 2 that runs past it.
    let bytes = wat(r#"(module
         (memory (export "memory") 1)
         (data (i32.const 65534) "four")
         (func (export "_start")))"#);
    match exec.function_from_bytes("past.wasm", bytes) {
        Err(err) => {
            let message = err.to_string();
            assert!(
                message.contains("invalid") || message.contains("out of bounds"),
                "{message}"
            );
        }
        Ok(f) => {
            let fut = exec.call_async(&f, "_start", ()).await.expect("submit");
            let err = exec
                .get_result::<Value>(&fut)
                .await
                .expect_err("out of bounds");
            let error = call_error(&err);
            assert!(error.is_user_error(), "the module's fault: {error:?}");
            let message = err.to_string();
            assert!(
                message.contains("trapped: while its instance was set up"),
                "{message}"
            );
            assert!(message.contains("out of bounds"), "{message}");
        }
    }
    next_call_runs(&exec).await;
    exec.close().await.expect("close");
}

/// A command that prints `{"exited":CODE}` and then exits with `code`.
fn exiting_command(code: i32) -> Vec<u8> {
    let text = format!("{{\"exited\":{code}}}");
    wat(&format!(
        r#"(module
             (import "{WASI}" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
             (import "{WASI}" "proc_exit" (func $exit (param i32)))
             (memory (export "memory") 1)
             (data (i32.const 64) "{data}")
             (data (i32.const 128) "giving up\n")
             (func (export "_start")
               (i32.store (i32.const 0) (i32.const 64))
               (i32.store (i32.const 4) (i32.const {len}))
               (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
               (i32.store (i32.const 0) (i32.const 128))
               (i32.store (i32.const 4) (i32.const 10))
               (if (i32.ne (i32.const {code}) (i32.const 0))
                 (then (drop (call $write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))))
               (call $exit (i32.const {code}))
               unreachable))"#,
        data = wat_string(&text),
        len = text.len()
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn proc_exit_from_a_command_and_from_a_function() {
    let (_dir, exec) = executor(256).await;
    // A command that exits 0 succeeds with what it printed.
    let ok = exec
        .function_from_bytes("exit0.wasm", exiting_command(0))
        .expect("loads");
    let fut = exec.call_async(&ok, "_start", ()).await.expect("submit");
    assert_eq!(
        exec.get_result::<Value>(&fut)
            .await
            .expect("exit 0 is success"),
        json!({"exited": 0})
    );
    // A command that exits 3 fails, naming the code and its last words.
    let three = exec
        .function_from_bytes("exit3.wasm", exiting_command(3))
        .expect("loads");
    let fut = exec.call_async(&three, "_start", ()).await.expect("submit");
    let err = exec.get_result::<Value>(&fut).await.expect_err("exit 3");
    assert_eq!(
        call_error(&err),
        &CallError::Exit {
            code: 3,
            command: true,
            last_words: "giving up".to_owned()
        }
    );
    assert!(
        err.to_string().contains("exited with code 3: giving up"),
        "{err}"
    );
    next_call_runs(&exec).await;

    // A function export that exits, with either code, has not returned a
    // result: an error that says so.
    let names = ["exit0".to_owned(), "exit3".to_owned()];
    let module = abi_module(
        &names,
        &format!(r#"(import "{WASI}" "proc_exit" (func $exit (param i32)))"#),
        r#"(func (export "wisp:fn:exit0") (param i32 i32) (result i64)
             (call $exit (i32.const 0)) unreachable)
           (func (export "wisp:fn:exit3") (param i32 i32) (result i64)
             (call $exit (i32.const 3)) unreachable)"#,
    );
    let f = exec
        .function_from_bytes("exits.wasm", module)
        .expect("loads");
    for code in [0, 3] {
        let fut = exec
            .call_async(&f, &format!("exit{code}"), ())
            .await
            .expect("submit");
        let err = exec.get_result::<Value>(&fut).await.expect_err("exits");
        assert!(
            matches!(call_error(&err), CallError::Exit { code: c, command: false, .. } if *c == code),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!("exited with code {code} instead of returning")),
            "{message}"
        );
        next_call_runs(&exec).await;
    }
    exec.close().await.expect("close");
}

/// A guest that writes `chunks` times 64 KiB to `fd` and then, as a
/// function, returns `null`; as a command it just ends.
fn printer(command: bool, fd: u32, chunks: u32) -> Vec<u8> {
    let imports = format!(
        r#"(import "{WASI}" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))"#
    );
    // Memory from 64 KiB on is the 64 KiB printed (the arguments land
    // there too, which does not matter); the result `\0null` is at 16.
    let print = format!(
        r#"(func $print
             (local $i i32)
             (i32.store (i32.const 0) (i32.const 65536))
             (i32.store (i32.const 4) (i32.const 65536))
             (memory.fill (i32.const 65536) (i32.const 120) (i32.const 65536))
             (loop $more
               (drop (call $write (i32.const {fd}) (i32.const 0) (i32.const 1) (i32.const 8)))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $more (i32.lt_u (local.get $i) (i32.const {chunks})))))"#
    );
    if command {
        wat(&format!(
            r#"(module {imports} (memory (export "memory") 2) {print}
                 (func (export "_start") call $print))"#
        ))
    } else {
        abi_module(
            &["shout".to_owned()],
            &imports,
            &format!(
                r#"{print}
                   (data (i32.const 16) "\00null")
                   (func (export "wisp:fn:shout") (param i32 i32) (result i64)
                     call $print
                     i64.const {packed})"#,
                packed = (16u64 << 32) | 5
            ),
        )
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gigabytes_of_printing_are_cut_off_and_cost_the_host_little() {
    const CHUNKS: u32 = 32 * 1024; // 2 GiB in 64 KiB writes
    let (_dir, exec) = executor(256).await;
    let before = peak_rss_mib();
    let f = exec
        .function_from_bytes("shout.wasm", printer(false, 1, CHUNKS))
        .expect("loads");
    let started = Instant::now();
    let fut = exec.call_async(&f, "shout", ()).await.expect("submit");
    exec.get_result::<Value>(&fut)
        .await
        .expect("printing is no error");
    let elapsed = started.elapsed();
    let log = fut.log().expect("done");
    assert!(log.len() <= (1 << 20) + 200, "log kept {} bytes", log.len());
    let dropped = (u64::from(CHUNKS) << 16) - (1 << 20);
    assert!(
        log.contains(&format!(
            "log cut off here, {dropped} more bytes were dropped"
        )),
        "{}",
        &log[log.len().saturating_sub(200)..]
    );
    let after = peak_rss_mib();
    eprintln!("2 GiB printed in {elapsed:?}; peak RSS {before} MiB before, {after} MiB after");
    assert!(
        after < before + 256,
        "printing 2 GiB raised the peak from {before} to {after} MiB"
    );
    next_call_runs(&exec).await;

    // A command's stdout is its result: past the 64 MiB of results it is
    // an error that names the limit.
    let f = exec
        .function_from_bytes("shout-command.wasm", printer(true, 1, 2048))
        .expect("loads");
    let fut = exec.call_async(&f, "_start", ()).await.expect("submit");
    let err = exec
        .get_result::<Value>(&fut)
        .await
        .expect_err("128 MiB of result");
    assert_eq!(
        call_error(&err),
        &CallError::OutputTooLarge {
            bytes: 128 << 20,
            limit: 64 << 20
        }
    );
    let message = err.to_string();
    assert!(message.contains("limited to 64 MiB"), "{message}");
    assert!(
        message.contains("write large results to storage"),
        "{message}"
    );
    next_call_runs(&exec).await;
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_result_past_the_output_limit_is_an_error_naming_it() {
    use wisp_engine::{CallLimits, Engine, EngineConfig};
    let engine = Engine::new(EngineConfig {
        instance_slots: 2,
        ..EngineConfig::default()
    })
    .expect("engine");
    let module = engine.load(&faults()).expect("loads");
    let limits = CallLimits {
        output_bytes: 1 << 20,
        ..CallLimits::default()
    };
    let big = engine.call(&module, "big_output", b"2097152", &limits);
    let error = big.result.expect_err("2 MiB over 1 MiB");
    assert_eq!(
        error,
        CallError::OutputTooLarge {
            bytes: (2 << 20) + 2,
            limit: 1 << 20
        }
    );
    assert!(error.to_string().contains("limited to 1 MiB"), "{error}");
    let fits = engine.call(&module, "big_output", b"1000", &limits);
    assert_eq!(fits.result.expect("fits").len(), 1002);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_reaches_no_host_file_network_or_environment() {
    let (_dir, exec) = executor(256).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    assert!(
        std::path::Path::new("/etc/passwd").is_file(),
        "the host has it"
    );
    for path in [
        "/etc/passwd",
        "/",
        ".",
        "../../etc/hostname",
        "/proc/self/environ",
    ] {
        let fut = exec
            .call_async(&f, "read_host_file", path)
            .await
            .expect("submit");
        let err = exec.get_result::<String>(&fut).await.expect_err(path);
        let CallError::Function { message } = call_error(&err) else {
            panic!("{path}: {err:?}")
        };
        // With no preopened directory, wasi-libc resolves no path at all.
        assert!(message.starts_with(&format!("{path}: ")), "{message}");
        assert!(
            message.contains("No such file or directory") || message.contains("pre-opened"),
            "{path}: {message}"
        );
    }
    let fut = exec
        .call_async(&f, "connect", "127.0.0.1:1")
        .await
        .expect("submit");
    let err = exec.get_result::<()>(&fut).await.expect_err("no sockets");
    assert!(err.to_string().contains("127.0.0.1:1: "), "{err}");
    assert!(err.to_string().contains("not supported"), "{err}");
    let fut = exec
        .call_async(&f, "action_env", ["PATH", "HOME", "USER"])
        .await
        .expect("submit");
    assert_eq!(
        exec.get_result::<Value>(&fut).await.expect("runs"),
        json!({"PATH": null, "HOME": null, "USER": null}),
        "the host's environment stays outside"
    );
    next_call_runs(&exec).await;
    exec.close().await.expect("close");
}

/// The raw WASI calls, without a libc in between: there is no descriptor
/// past stdin, stdout and stderr, so no directory to open a path in.
#[tokio::test(flavor = "multi_thread")]
async fn raw_wasi_calls_find_no_preopened_directory() {
    let (_dir, exec) = executor(256).await;
    let bytes = wat(&format!(
        r#"(module
             (import "{WASI}" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
             (import "{WASI}" "path_open"
               (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
             (import "{WASI}" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (data (i32.const 256) "/etc/passwd")
             (data (i32.const 512) "[\"00\",\"00\",\"00\"]")
             (func $digits (param $at i32) (param $n i32)
               (i32.store8 (local.get $at) (i32.add (i32.const 48) (i32.div_u (local.get $n) (i32.const 10))))
               (i32.store8 (i32.add (local.get $at) (i32.const 1))
                 (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10)))))
             (func (export "_start")
               ;; ["aa","bb","cc"]: the errno of fd_prestat_get(3), of
               ;; path_open(3, "/etc/passwd") and of path_open(0, ...).
               (call $digits (i32.const 514) (call $prestat (i32.const 3) (i32.const 64)))
               (call $digits (i32.const 519)
                 (call $open (i32.const 3) (i32.const 0) (i32.const 256) (i32.const 11)
                   (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 128)))
               (call $digits (i32.const 524)
                 (call $open (i32.const 0) (i32.const 0) (i32.const 256) (i32.const 11)
                   (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 128)))
               (i32.store (i32.const 0) (i32.const 512))
               (i32.store (i32.const 4) (i32.const 16))
               (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
    ));
    let f = exec.function_from_bytes("open.wasm", bytes).expect("loads");
    let fut = exec.call_async(&f, "_start", ()).await.expect("submit");
    let errnos: Vec<u32> = exec
        .get_result::<Vec<String>>(&fut)
        .await
        .expect("runs")
        .iter()
        .map(|n| n.parse().expect("a number"))
        .collect();
    // WASI errno 8 is `badf`: descriptor 3 does not exist, and stdin is no
    // directory (`notdir`, 54, or `badf`).
    assert_eq!(errnos[..2], [8, 8], "{errnos:?}");
    assert!([8, 54].contains(&errnos[2]), "{errnos:?}");
    next_call_runs(&exec).await;
    exec.close().await.expect("close");
}

/// What no call could be given, whatever its limit (a 64-bit memory of
/// 64 GiB, a second memory, a table of ten million entries), is refused
/// when the module is loaded, before any job.
#[tokio::test(flavor = "multi_thread")]
async fn memories_and_tables_past_the_engine_are_refused_at_load() {
    let (_dir, exec) = executor(256).await;
    for (name, text, says) in [
        (
            "memory64",
            r#"(module (memory (export "memory") i64 1048576) (func (export "_start")))"#,
            "minimum byte size of 68719476736",
        ),
        (
            "two memories",
            r#"(module (memory 1) (memory (export "memory") 1) (func (export "_start")))"#,
            "defined memories count of 2",
        ),
        (
            "table",
            r#"(module (table 10000000 funcref) (func (export "_start")))"#,
            "minimum element size of 10000000",
        ),
    ] {
        let err = exec.function_from_bytes(name, wat(text)).expect_err(name);
        let message = err.to_string();
        assert!(message.contains(says), "{name}: {message}");
        assert!(message.contains("exceeds the"), "{name}: {message}");
    }
    next_call_runs(&exec).await;
    exec.close().await.expect("close");
}

/// Flips a byte in the middle of the module stored under `digest`, and
/// returns the bytes it had.
async fn alter_stored_module(exec: &FunctionExecutor, digest: &wisp_engine::Digest) -> Vec<u8> {
    let key = wisp_runtime::protocol::module_key(digest);
    let storage = exec.storage();
    let original = storage.get(exec.bucket(), &key).await.expect("stored");
    let mut altered = original.to_vec();
    let middle = altered.len() / 2;
    altered[middle] ^= 0xff;
    storage
        .put(exec.bucket(), &key, altered.into())
        .await
        .expect("alter");
    original.to_vec()
}

/// A worker on a fresh engine (as in another process) refuses a module
/// whose stored bytes no longer hash to the digest in its key; the
/// executor that stored it runs on, and the next executor on that storage
/// stores the module again.
#[tokio::test(flavor = "multi_thread")]
async fn a_stored_module_altered_under_its_digest_is_refused() {
    use std::sync::Arc;
    use wisp_engine::{Engine, EngineConfig};
    use wisp_runtime::Worker;
    use wisp_runtime::protocol::{JobSpec, job_spec_key, module_key};

    let dir = tempfile::tempdir().expect("temp dir");
    let build = || async {
        FunctionExecutor::builder()
            .storage_dir(dir.path())
            .keep_job_data(true)
            .workers(1)
            .build()
            .await
    };
    let exec = build().await.expect("executor");
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let fut = exec.call_async(&f, "add", (1, 2)).await.expect("submit");
    assert_eq!(exec.get_result::<i64>(&fut).await.expect("runs"), 3);
    let original = alter_stored_module(&exec, &f.digest()).await;

    let storage = exec.storage().clone();
    let bucket = exec.bucket().to_owned();
    let spec = storage
        .get(&bucket, &job_spec_key(fut.job_id()))
        .await
        .expect("job spec");
    let spec: JobSpec = serde_json::from_slice(&spec).expect("a job spec");
    let engine = Arc::new(
        Engine::new(EngineConfig {
            instance_slots: 2,
            ..EngineConfig::default()
        })
        .expect("engine"),
    );
    let worker = Arc::new(Worker::new(
        engine,
        storage.clone(),
        bucket.clone(),
        tokio::runtime::Handle::current(),
        "another process",
    ));
    let load = {
        let (worker, spec) = (worker.clone(), spec.clone());
        move || worker.module(&spec).map(drop).map_err(|e| e.to_string())
    };
    let message = tokio::task::spawn_blocking(load.clone())
        .await
        .expect("joins")
        .expect_err("altered");
    assert!(
        message.contains(&format!(
            "module {} in storage has been altered",
            f.digest()
        )),
        "{message}"
    );
    assert!(message.contains("refusing to run it"), "{message}");
    assert!(message.contains("delete the object"), "{message}");

    // The executor that stored the module holds its own compiled copy.
    next_call_runs(&exec).await;
    exec.close().await.expect("close");

    // A new executor checks the stored copy once and replaces it.
    let exec = build().await.expect("executor");
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let fut = exec.call_async(&f, "add", (2, 3)).await.expect("submit");
    assert_eq!(exec.get_result::<i64>(&fut).await.expect("runs"), 5);
    let key = module_key(&f.digest());
    assert_eq!(
        storage.get(&bucket, &key).await.expect("stored")[..],
        original[..]
    );
    tokio::task::spawn_blocking(load)
        .await
        .expect("joins")
        .expect("the module is whole again");
    exec.close().await.expect("close");
}
