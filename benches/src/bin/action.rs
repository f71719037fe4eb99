//! wisp's OpenWhisk action server benchmark: what `/init`, a cold start
//! and a warm `/run` of `wisp-action` cost, in one run.
//!
//! ```text
//! cargo build -p wisp-runtime --bin wisp-action
//! cargo run -p wisp-bench --bin action -- [--runs R]
//! ```
//!
//! Each run starts a fresh `wisp-action` process on a free loopback port
//! and, as OpenWhisk's invoker would, sends it `/init` with the `faults`
//! fixture (base64, `main` = `echo`), then `/run`s with a tiny value:
//!
//! - `/init` alone, from request to its 200, and the cold start, from the
//!   process's spawn to the first `/run`'s answer (the `/init` included);
//! - the same cold start in Docker, when an engine answers and a runtime
//!   image is there: `docker run` on the host network to the first answer;
//! - warm `/run` round trips on one keep-alive connection, against
//!   `wisp_engine::Engine::call` of `echo` in this process;
//! - calls per second through the server, one request at a time and with
//!   8 connections at once.
//!
//! Each figure is the median over the runs with the smallest and the
//! largest; each ratio is taken within one run. Progress goes to stderr,
//! the table to stdout. Every process and container it starts, it stops.

#[path = "../machine.rs"]
#[allow(
    dead_code,
    reason = "shared with the main benchmark, which uses all of it"
)]
mod system;
#[path = "../stats.rs"]
#[allow(
    dead_code,
    reason = "shared by the benchmark binaries; each uses part of it"
)]
mod table;

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use base64::Engine as _;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use wisp_engine::{CallLimits, Engine, EngineConfig, Module};

use table::{Row, Unit};

/// The function of the `faults` fixture that every `/run` calls: it
/// returns its argument, and writes nothing.
const FUNCTION: &str = "echo";
/// The value of each `/run`, and so what `echo` answers.
const VALUE: &str = r#"{"n":1}"#;
/// The image OpenWhisk pulls for wisp's runtime, at this version.
const RUNTIME_IMAGE: &str = concat!(
    "127.0.0.1:5000/wisp/runtime-openwhisk:",
    env!("CARGO_PKG_VERSION")
);
/// How long a server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Measures `wisp-action`, wisp's OpenWhisk action server: `/init`, cold
/// starts as a process and in Docker, warm `/run`s and throughput; prints
/// one Markdown table.
#[derive(Debug, Clone, Parser)]
#[command(name = "action")]
struct Args {
    /// Runs; each figure is the median over them, with min and max.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Warm `/run`s per run, one after another on one connection; also
    /// the number of `Engine::call`s it is compared with.
    #[arg(long, default_value_t = 2000)]
    calls: usize,
    /// Connections sending `/run`s at once in the concurrent figure.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// The `wisp-action` binary (default: the workspace's target/debug).
    #[arg(long)]
    action: Option<PathBuf>,
    /// The runtime image for the Docker cold start (default: wisp's
    /// OpenWhisk runtime image, else the newest local wisp runtime image).
    #[arg(long)]
    image: Option<String>,
    /// Leave Docker out.
    #[arg(long)]
    no_docker: bool,
}

/// What one run measured.
struct Run {
    /// `/init` from request to 200, on a fresh process.
    init: Duration,
    /// Spawn until the port accepts a connection.
    listen: Duration,
    /// Spawn until the first `/run` answered.
    cold: Duration,
    /// The same in Docker, with its `/init`, when Docker was measured.
    docker: Option<(Duration, Duration)>,
    /// Median of the warm `/run` round trips.
    warm_run: Duration,
    /// `Engine::load` of the module on a fresh engine in this process.
    engine_load: Duration,
    /// Median of the in-process `Engine::call`s.
    engine_call: Duration,
    /// Warm `/run`s per second, one at a time.
    sequential: f64,
    /// Warm `/run`s per second over several connections at once.
    concurrent: f64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.runs > 0, "--runs must be at least 1");
    ensure!(args.calls > 0, "--calls must be at least 1");
    ensure!(args.connections > 0, "--connections must be at least 1");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let action = match &args.action {
        Some(path) => path.clone(),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root.join("target"), PathBuf::from)
            .join("debug/wisp-action"),
    };
    ensure!(
        action.is_file(),
        "{} is not there: build it with `cargo build -p wisp-runtime --bin wisp-action`",
        action.display()
    );

    let guest = root.join("tests/guests/faults");
    eprintln!("building {} for wasm32-wasip1…", guest.display());
    let wasm_path =
        wisp::builder::build_crate(&guest).context("the faults fixture does not build")?;
    let wasm = std::fs::read(&wasm_path)
        .with_context(|| format!("cannot read {}", wasm_path.display()))?;
    let init_body = Bytes::from(
        serde_json::json!({"value": {
            "name": "b",
            "main": FUNCTION,
            "binary": true,
            "code": base64::engine::general_purpose::STANDARD.encode(&wasm),
        }})
        .to_string(),
    );

    let docker = if args.no_docker {
        Err("--no-docker".to_owned())
    } else {
        docker_image(args.image.as_deref())
    };
    match &docker {
        Ok(image) => eprintln!("Docker cold starts with {image}"),
        Err(why) => eprintln!("skipping the Docker cold start: {why}"),
    }

    // The engine alone, as the server sets it up; on this thread, since
    // `Engine::call` must not run inside the async runtime.
    let engine = Engine::new(EngineConfig::default()).context("cannot set up wisp's engine")?;
    let module = engine
        .load(&wasm)
        .context("wisp's engine cannot load the faults fixture")?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let load_before = system::load_average();
    let mut runs = Vec::with_capacity(args.runs);
    for r in 1..=args.runs {
        eprintln!("run {r} of {}…", args.runs);
        let engine_call = engine_calls(&engine, &module, args.calls)?;
        let mut run = runtime.block_on(process_run(&args, &action, &init_body))?;
        run.engine_call = engine_call;
        run.engine_load = engine_load(&wasm)?;
        if let Ok(image) = &docker {
            run.docker = Some(runtime.block_on(docker_run(image, &init_body))?);
        }
        eprintln!(
            "  /init {:.2} ms, cold {:.1} ms, warm /run {:.1} µs, engine {:.1} µs",
            ms(run.init),
            ms(run.cold),
            us(run.warm_run),
            us(run.engine_call)
        );
        runs.push(run);
    }
    let load_after = system::load_average();
    let image_size = docker.as_ref().ok().and_then(|image| image_bytes(image));

    println!("## wisp OpenWhisk action server benchmark\n");
    println!("- wisp {}", env!("CARGO_PKG_VERSION"));
    println!(
        "- {} on {} cores",
        system::cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "- {} runs; each: a fresh `wisp-action`, `/init` with `faults` ({} KB, `main` = `{FUNCTION}`), \
         {} warm `/run`s of `{VALUE}` one at a time, then {} on {} connections",
        args.runs,
        wasm.len() / 1000,
        args.calls,
        args.calls * 2,
        args.connections
    );
    println!("- server: {}", action.display());
    match &docker {
        Ok(image) => println!("- Docker image: {image}"),
        Err(why) => println!("- Docker cold start skipped: {why}"),
    }
    println!("- load average (1, 5, 15 min) before: {load_before}; after: {load_after}");
    println!();
    let mut out = table::markdown(&rows(&args), &runs);
    if let Some(bytes) = image_size {
        out.push_str(&format!(
            "| runtime image size (goal < 30 MB) | MB | {0:.1} | {0:.1} | {0:.1} |\n",
            bytes as f64 / 1e6
        ));
    }
    print!("{out}");
    println!();
    let median = |f: &dyn Fn(&Run) -> f64| {
        table::Summary::of(runs.iter().map(f)).map_or(f64::NAN, |s| s.median)
    };
    let goal = |met: bool| if met { "met" } else { "not met" };
    let init = median(&|r| ms(r.init));
    let overhead = median(&|r| us(r.warm_run) - us(r.engine_call));
    println!("- goal `/init` < 5 ms: {} ({init:.2} ms)", goal(init < 5.0));
    println!(
        "- goal warm `/run` overhead < 1 ms: {} ({overhead:.1} µs)",
        goal(overhead < 1000.0)
    );
    if let Some(bytes) = image_size {
        let mb = bytes as f64 / 1e6;
        println!("- goal image < 30 MB: {} ({mb:.1} MB)", goal(mb < 30.0));
    }
    Ok(())
}

fn rows<'a>(args: &Args) -> Vec<Row<'a, Run>> {
    let (calls, conns) = (args.calls, args.connections);
    vec![
        Row::section("Start-up"),
        Row::figure(
            "`/init` (base64 decode, compile, set-up), request to 200 (goal < 5 ms)",
            Unit::Millis,
            |r: &Run| ms(r.init),
        ),
        Row::figure(
            "`Engine::load` of the same module in process, fresh engine",
            Unit::Millis,
            |r: &Run| ms(r.engine_load),
        ),
        Row::figure(
            "process spawn to port accepting",
            Unit::Millis,
            |r: &Run| ms(r.listen),
        ),
        Row::figure(
            "cold start, process: spawn → `/init` → first `/run` answered",
            Unit::Millis,
            |r: &Run| ms(r.cold),
        ),
        Row::maybe(
            "`/init` in Docker, request to 200",
            Unit::Millis,
            |r: &Run| r.docker.map(|(init, _)| ms(init)),
        ),
        Row::maybe(
            "cold start, Docker: `docker run` → `/init` → first `/run` answered",
            Unit::Millis,
            |r: &Run| r.docker.map(|(_, cold)| ms(cold)),
        ),
        Row::section(format!("Warm calls of `{FUNCTION}` ({calls} per run)")),
        Row::figure(
            "warm `/run` round trip, keep-alive (median)",
            Unit::Micros,
            |r: &Run| us(r.warm_run),
        ),
        Row::figure(
            "`Engine::call` in process (median)",
            Unit::Micros,
            |r: &Run| us(r.engine_call),
        ),
        Row::figure(
            "`/run` overhead over `Engine::call` (goal < 1,000 µs)",
            Unit::Micros,
            |r: &Run| us(r.warm_run) - us(r.engine_call),
        ),
        Row::figure("`/run` ÷ `Engine::call`", Unit::Ratio, |r: &Run| {
            r.warm_run.as_secs_f64() / r.engine_call.as_secs_f64().max(f64::MIN_POSITIVE)
        }),
        Row::section("Throughput through one server"),
        Row::figure(
            "`/run`s, 1 connection, one at a time",
            Unit::CallsPerSecond,
            |r: &Run| r.sequential,
        ),
        Row::figure(
            format!("`/run`s, {conns} connections at once"),
            Unit::CallsPerSecond,
            |r: &Run| r.concurrent,
        ),
    ]
}

/// How long a fresh engine, set up as the server's, takes to load `wasm`.
fn engine_load(wasm: &[u8]) -> Result<Duration> {
    let engine = Engine::new(EngineConfig::default()).context("cannot set up wisp's engine")?;
    let started = Instant::now();
    engine
        .load(wasm)
        .context("wisp's engine cannot load the faults fixture")?;
    Ok(started.elapsed())
}

/// The median of `calls` calls of `echo` on the engine alone.
fn engine_calls(engine: &Engine, module: &Module, calls: usize) -> Result<Duration> {
    let limits = CallLimits::default();
    let call = || -> Result<()> {
        let output = engine
            .call(module, FUNCTION, VALUE.as_bytes(), &limits)
            .result
            .map_err(|e| anyhow!("engine call of {FUNCTION} failed: {e}"))?;
        ensure!(
            output == VALUE.as_bytes(),
            "engine call of {FUNCTION} returned {:?}",
            String::from_utf8_lossy(&output)
        );
        Ok(())
    };
    for _ in 0..calls.min(100) {
        call()?;
    }
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        call()?;
        times.push(started.elapsed());
    }
    Ok(median(times))
}

/// Kills the server when dropped, whatever happened.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One run on a fresh `wisp-action` process.
async fn process_run(args: &Args, action: &Path, init_body: &Bytes) -> Result<Run> {
    let addr = free_addr()?;
    let started = Instant::now();
    let child = Command::new(action)
        .env(wisp_runtime::action::ADDR_VAR, addr.to_string())
        .env(wisp_runtime::action::PRELOAD_VAR, "/nonexistent/wisp-bench")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", action.display()))?;
    let _server = Server(child);
    let stream = connect_when_listening(addr).await?;
    let listen = started.elapsed();
    let mut conn = handshake(stream).await?;
    let init = init(&mut conn, init_body).await?;
    run_once(&mut conn).await?;
    let cold = started.elapsed();

    // Warm: one connection, one request after another.
    for _ in 0..args.calls.min(100) {
        run_once(&mut conn).await?;
    }
    let mut times = Vec::with_capacity(args.calls);
    let all = Instant::now();
    for _ in 0..args.calls {
        let t = Instant::now();
        run_once(&mut conn).await?;
        times.push(t.elapsed());
    }
    let sequential = args.calls as f64 / all.elapsed().as_secs_f64();
    let warm_run = median(times);

    // Several connections at once, each one request after another.
    let total = args.calls * 2;
    let per = total.div_ceil(args.connections);
    let mut conns = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let mut c = handshake(TcpStream::connect(addr).await?).await?;
        run_once(&mut c).await?;
        conns.push(c);
    }
    let all = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                for _ in 0..per {
                    run_once(&mut c).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await.context("a client task panicked")??;
    }
    let concurrent = (per * args.connections) as f64 / all.elapsed().as_secs_f64();

    Ok(Run {
        init,
        listen,
        cold,
        docker: None,
        warm_run,
        engine_call: Duration::ZERO,
        engine_load: Duration::ZERO,
        sequential,
        concurrent,
    })
}

/// Removes the container when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `/init` and the cold start in a container of `image`.
async fn docker_run(image: &str, init_body: &Bytes) -> Result<(Duration, Duration)> {
    let addr = free_addr()?;
    let started = Instant::now();
    let output = Command::new("docker")
        .args(["run", "-d", "--network", "host", "-e"])
        .arg(format!("{}={addr}", wisp_runtime::action::ADDR_VAR))
        .arg(image)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run docker")?;
    ensure!(output.status.success(), "docker run {image} failed");
    let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    ensure!(!id.is_empty(), "docker run {image} gave no container id");
    let _container = Container(id);
    let stream = connect_when_listening(addr).await?;
    let mut conn = handshake(stream).await?;
    let init = init(&mut conn, init_body).await?;
    run_once(&mut conn).await?;
    Ok((init, started.elapsed()))
}

/// The runtime image to start, or why there is none.
fn docker_image(wanted: Option<&str>) -> Result<String, String> {
    let info = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !info.is_ok_and(|s| s.success()) {
        return Err("no Docker engine answers `docker info`".to_owned());
    }
    let exists = |image: &str| image_bytes(image).is_some();
    if let Some(image) = wanted {
        return if exists(image) {
            Ok(image.to_owned())
        } else {
            Err(format!("no local image {image}"))
        };
    }
    if exists(RUNTIME_IMAGE) {
        return Ok(RUNTIME_IMAGE.to_owned());
    }
    // Otherwise the newest image that wisp built of its runtime (`docker
    // images` lists the newest first): its entry point is `/wisp-action`.
    let listed = Command::new("docker")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .output()
        .map_err(|e| format!("cannot list images: {e}"))?;
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|name| name.contains("wisp") && !name.contains("<none>"))
        .find(|name| {
            Command::new("docker")
                .args([
                    "image",
                    "inspect",
                    "--format",
                    "{{json .Config.Entrypoint}}",
                ])
                .arg(name)
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("/wisp-action"))
        })
        .map(str::to_owned)
        .ok_or_else(|| format!("neither {RUNTIME_IMAGE} nor another wisp runtime image is here"))
}

/// The image's size in bytes, if it is there.
fn image_bytes(image: &str) -> Option<u64> {
    let output = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", image])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

/// A loopback address with a port that was free a moment ago.
fn free_addr() -> Result<SocketAddr> {
    let listener =
        StdListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot find a free port")?;
    Ok(listener.local_addr()?)
}

/// Connects as soon as something listens on `addr`.
async fn connect_when_listening(addr: SocketAddr) -> Result<TcpStream> {
    let started = Instant::now();
    loop {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) if started.elapsed() > START_TIMEOUT => {
                bail!("nothing listens on {addr} after {START_TIMEOUT:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

/// An HTTP/1.1 keep-alive connection over `stream`.
async fn handshake(stream: TcpStream) -> Result<SendRequest<Full<Bytes>>> {
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake failed")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// POSTs `body` to `path`; the status and the body of the answer.
async fn post(
    conn: &mut SendRequest<Full<Bytes>>,
    path: &str,
    body: Bytes,
) -> Result<(StatusCode, Bytes)> {
    conn.ready().await.context("the connection closed")?;
    let request = Request::post(path)
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))?;
    let response = conn.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// `/init`, checked; how long it took.
async fn init(conn: &mut SendRequest<Full<Bytes>>, body: &Bytes) -> Result<Duration> {
    let started = Instant::now();
    let (status, answer) = post(conn, "/init", body.clone()).await?;
    let took = started.elapsed();
    ensure!(
        status == StatusCode::OK,
        "/init answered {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(took)
}

/// One `/run`, its answer checked.
async fn run_once(conn: &mut SendRequest<Full<Bytes>>) -> Result<()> {
    let body = Bytes::from(format!(r#"{{"value":{VALUE}}}"#));
    let (status, answer) = post(conn, "/run", body).await?;
    ensure!(
        status == StatusCode::OK && answer == VALUE.as_bytes(),
        "/run answered {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
