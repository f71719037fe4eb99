//! `wisp`: run functions from the command line.

mod config;
mod hello;
mod jobs;
mod runtime;
mod storage;
mod submit;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Run Rust functions as WebAssembly jobs, on this machine or a cluster.
#[derive(Parser)]
#[command(name = "wisp", version, about)]
struct Cli {
    /// Log more: -v for what wisp decides, -vv for everything.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a function once or over many inputs and print the results as
    /// JSON lines.
    Submit(Box<submit::Submit>),
    /// Put, get, list and delete objects in the configured storage.
    Storage(storage::StorageCommand),
    /// Build, deploy, update, delete and list runtime images (OpenWhisk).
    Runtime(runtime::RuntimeCommand),
    /// Remove what wisp left behind: jobs' data in storage and, on
    /// OpenWhisk, its runtime actions and package.
    Clean(runtime::CleanCommand),
    /// List the jobs kept in storage, with their calls' outcomes.
    Jobs(jobs::JobsCommand),
    /// Print what the calls of a kept job printed, with each call's
    /// outcome.
    Logs(jobs::LogsCommand),
    /// Run one tiny function through the configured backend and storage,
    /// to check the set-up.
    Hello(hello::Hello),
    /// Show the configuration wisp reads.
    Config(config::ConfigCommand),
}

/// What went wrong, and so the exit code.
pub enum Failure {
    /// Some calls failed; the summary was printed.
    Calls,
    /// A signal (Ctrl-C, SIGTERM) stopped it; the exit status to end with.
    Interrupted(u8),
    /// wisp could not run the job at all.
    Setup(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Self::Setup(error.into())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match cli.verbose {
        0 => "warn",
        1 => "wisp=debug,wisp_engine=debug,wisp_runtime=debug,info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("WISP_LOG").unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a file or a pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Submit(submit) => submit.run().await,
            Command::Storage(storage) => storage.run().await,
            Command::Runtime(runtime) => runtime.run().await,
            Command::Clean(clean) => clean.run().await,
            Command::Jobs(jobs) => jobs.run().await,
            Command::Logs(logs) => logs.run().await,
            Command::Hello(hello) => hello.run().await,
            Command::Config(config) => config.run().await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Calls) => ExitCode::from(1),
        Err(Failure::Interrupted(code)) => ExitCode::from(code),
        Err(Failure::Setup(error)) => {
            let top = error.to_string();
            eprintln!("error: {top}");
            // Print the causes that the message does not already spell out.
            for cause in error.chain().skip(1) {
                let cause = cause.to_string();
                if !top.contains(&cause) {
                    eprintln!("  caused by: {cause}");
                }
            }
            ExitCode::from(2)
        }
    }
}
