//! `wisp-action`: the process of wisp's OpenWhisk runtime image.
//!
//! Listens on port 8080 (or `WISP_ACTION_ADDR`) and speaks OpenWhisk's
//! action container protocol; see `wisp_runtime::action`. Its own log goes
//! to stderr at warning level, or as `WISP_LOG` says, since stderr is also
//! the activations' log.

use std::process::ExitCode;
use std::sync::Arc;

use wisp_engine::{Engine, EngineConfig};
use wisp_runtime::action::{self, ActionServer};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a container's log is plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WISP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("wisp-action: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve() -> Result<(), String> {
    let addr = action::listen_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        // Listen first: the invoker may probe the port before `/init`.
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let engine = Engine::new(EngineConfig::default())
            .map_err(|e| format!("cannot set up the engine: {e}"))?;
        let server = Arc::new(ActionServer::new(Arc::new(engine)));
        let preload = std::env::var_os(action::PRELOAD_VAR).map_or_else(
            || action::DEFAULT_PRELOAD_DIR.into(),
            std::path::PathBuf::from,
        );
        let loaded = server.preload(&preload);
        tracing::info!(%addr, preloaded = loaded, "serving");
        tokio::select! {
            served = server.serve(listener) => served.map_err(|e| e.to_string()),
            () = shutdown() => Ok(()),
        }
    })
}

/// Resolves on SIGTERM or Ctrl-C: the platform removes containers with
/// SIGTERM, and exiting at once is all the server needs to do.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
