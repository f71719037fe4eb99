//! # wisp-openwhisk-emulator
//!
//! An **emulator** of the Apache OpenWhisk controller and invoker, for wisp's
//! tests: OpenWhisk itself cannot run on our machines. It serves the REST
//! subset wisp uses (`/api/v1`: namespaces, packages, actions, invoke,
//! activations) with the platform's status codes and bodies, and runs
//! actions the way the invoker does: a container per action version,
//! `/init` once, `/run` with the activation context, replies classified as
//! the platform classifies them, logs read up to the sentinels.
//!
//! Containers come from the Docker engine ([`Invoker::Docker`]) or, where no
//! engine runs, from a child process that stands in for the container
//! ([`Invoker::Process`]). The deviations from upstream are listed in this
//! crate's README.
//!
//! ```no_run
//! # async fn demo() -> Result<(), wisp_openwhisk_emulator::EmulatorError> {
//! use wisp_openwhisk_emulator::{Emulator, EmulatorConfig, Invoker};
//! let emulator = Emulator::start(EmulatorConfig {
//!     invoker: Invoker::Process { binary: "target/debug/wisp-action".into() },
//!     ..EmulatorConfig::default()
//! })
//! .await?;
//! println!("{} {}", emulator.url(), wisp_openwhisk_emulator::GUEST_KEY);
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod container;
mod invoker;
mod store;
mod util;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::task::JoinHandle;

pub use container::SENTINEL;
pub use invoker::MAX_RESULT_BYTES;

/// The emulator's well-known key for the `guest` namespace, `uuid:secret`.
pub const GUEST_KEY: &str = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:wIsP0eMuLaToRkEy7f3c9a1d5b8e2f4a6c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b";

/// How the emulator is started.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Where the REST API listens (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The namespace of the only key.
    pub namespace: String,
    /// The only key, `uuid:secret`.
    pub auth: String,
    /// Where action containers come from.
    pub invoker: Invoker,
    /// The invoker's memory pool; 1024 MB holds 4 containers of 256 MB.
    pub user_memory_mb: u64,
    /// The largest action memory limit accepted (the smallest is 128 MB).
    pub max_memory_mb: u64,
    /// The largest `limits.concurrency` accepted.
    pub max_concurrency: u32,
    /// Per-namespace invocation limits; `None` turns throttling off.
    pub throttle: Option<Throttle>,
    /// How long a container may stay idle before it is removed.
    pub idle_timeout: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            namespace: "guest".into(),
            auth: GUEST_KEY.into(),
            invoker: Invoker::Docker,
            user_memory_mb: 1024,
            max_memory_mb: 2048,
            max_concurrency: 500,
            throttle: None,
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// Where action containers come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invoker {
    /// Runs each action container through the Docker engine (the local
    /// socket, or `DOCKER_HOST`), on the host network.
    Docker,
    /// Where no engine runs: starts `binary` as a child process in place of
    /// the image, with the environment the container would get.
    Process { binary: PathBuf },
}

/// Invocation limits of the namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    pub invocations_per_minute: u32,
    pub concurrent_invocations: u32,
}

/// A fault the next invoke requests answer with instead of running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 with the platform's "Too many requests in the last minute" body.
    Throttled { count: usize },
    /// 503, as when no invoker is available.
    Unavailable { count: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot reach the Docker engine: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("the action binary {0} does not exist")]
    MissingBinary(PathBuf),
}

/// A running emulator. Dropping it kills its containers (best effort);
/// [`Emulator::shutdown`] does it properly.
pub struct Emulator {
    url: String,
    shared: Arc<api::Shared>,
    server: JoinHandle<()>,
    reaper: JoinHandle<()>,
    docker: Option<bollard::Docker>,
    instance: String,
    stopped: bool,
}

impl Emulator {
    /// Starts the REST API and the invoker.
    pub async fn start(config: EmulatorConfig) -> Result<Emulator, EmulatorError> {
        let (engine, docker) = match &config.invoker {
            Invoker::Docker => {
                let docker = bollard::Docker::connect_with_defaults()?;
                docker.ping().await?;
                (invoker::Engine::Docker(docker.clone()), Some(docker))
            }
            Invoker::Process { binary } => {
                if !binary.is_file() {
                    return Err(EmulatorError::MissingBinary(binary.clone()));
                }
                (invoker::Engine::Process(binary.clone()), None)
            }
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| EmulatorError::Listen {
                addr: config.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Listen {
                addr: config.listen,
                source,
            })?;
        let url = format!("http://{addr}");
        let instance = util::random_hex(12);
        let pool = Arc::new(invoker::Pool::new(
            engine,
            instance.clone(),
            url.clone(),
            config.user_memory_mb,
            config.idle_timeout,
        ));
        let shared = Arc::new(api::Shared::new(
            config.namespace,
            config.auth,
            config.max_memory_mb,
            config.max_concurrency,
            config.throttle,
            pool.clone(),
        ));
        let server = {
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| api::handle(shared.clone(), req));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        let reaper = {
            let pool = pool.clone();
            let every =
                (config.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    pool.reap_idle();
                }
            })
        };
        tracing::info!(%url, %instance, "OpenWhisk emulator listening");
        Ok(Emulator {
            url,
            shared,
            server,
            reaper,
            docker,
            instance,
            stopped: false,
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:43121` (the API is under `/api/v1`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The next `count` invoke requests answer with this fault.
    pub fn inject(&self, fault: Fault) {
        self.shared
            .faults
            .lock()
            .expect("faults poisoned")
            .push_back(fault);
    }

    /// How many containers were started so far (cold starts).
    pub fn containers_started(&self) -> usize {
        self.shared.pool.containers_started()
    }

    /// Stops serving and removes every container this emulator started.
    pub async fn shutdown(mut self) {
        self.stopped = true;
        self.server.abort();
        self.reaper.abort();
        for c in self.shared.pool.drain() {
            c.destroy().await;
        }
        if let Some(docker) = &self.docker {
            container::remove_labelled(docker, &self.instance).await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        self.server.abort();
        self.reaper.abort();
        self.shared.pool.kill_all_now();
        if let Some(docker) = self.docker.clone() {
            let instance = self.instance.clone();
            // A runtime of its own: Drop may run inside or outside one.
            let cleanup = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(container::remove_labelled(&docker, &instance));
                }
            });
            let _ = cleanup.join();
        }
    }
}
