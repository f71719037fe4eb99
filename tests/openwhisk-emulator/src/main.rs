//! `wisp-openwhisk-emulator`: the OpenWhisk emulator as a program, for
//! trying wisp's OpenWhisk backend by hand.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use wisp_openwhisk_emulator::{Emulator, EmulatorConfig, GUEST_KEY, Invoker};

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Docker,
    Process,
}

/// An emulator of the OpenWhisk controller and invoker (not OpenWhisk itself).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the REST API.
    #[arg(long, default_value = "127.0.0.1:3233")]
    listen: SocketAddr,
    /// Where action containers come from.
    #[arg(long, value_enum, default_value = "docker")]
    invoker: Mode,
    /// The action server to run as a process (with `--invoker process`).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Seconds before an idle container is removed.
    #[arg(long, default_value_t = 600)]
    idle_timeout: u64,
    /// The invoker's memory pool in MB.
    #[arg(long, default_value_t = 1024)]
    user_memory: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let invoker = match args.invoker {
        Mode::Docker => Invoker::Docker,
        Mode::Process => Invoker::Process {
            binary: args
                .binary
                .ok_or_else(|| anyhow::anyhow!("--invoker process needs --binary PATH"))?,
        },
    };
    let emulator = Emulator::start(EmulatorConfig {
        listen: args.listen,
        invoker,
        idle_timeout: Duration::from_secs(args.idle_timeout),
        user_memory_mb: args.user_memory,
        ..EmulatorConfig::default()
    })
    .await?;
    println!("OpenWhisk emulator (not OpenWhisk) at {}", emulator.url());
    println!("auth key: {GUEST_KEY}");
    tokio::signal::ctrl_c().await?;
    eprintln!("stopping; removing containers");
    emulator.shutdown().await;
    Ok(())
}
