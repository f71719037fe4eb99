//! `wisp config`: what configuration wisp reads.

use clap::{Args, Subcommand};
use wisp::Config;

use crate::Failure;

#[derive(Args)]
pub struct ConfigCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Print the effective configuration (the file, the defaults, and the
    /// environment overrides) as YAML, with every secret masked.
    Show,
}

impl ConfigCommand {
    pub async fn run(self) -> Result<(), Failure> {
        match self.action {
            Action::Show => {
                let config = Config::load()?;
                let source = config.source.as_ref().map_or_else(
                    || "the defaults (no config file; ~/.wisp/config.yaml or WISP_CONFIG names one)".to_owned(),
                    |p| format!("the file {}", p.display()),
                );
                println!("# from {source}");
                let overrides = Config::env_overrides();
                if !overrides.is_empty() {
                    println!("# overridden by the environment: {}", overrides.join(", "));
                }
                let yaml = config.to_masked_yaml();
                if yaml.contains(wisp::config::MASK) {
                    println!(
                        "# each secret shows as {}: put the real one back before wisp reads \
                         this as its config file",
                        wisp::config::MASK
                    );
                }
                print!("{yaml}");
            }
        }
        Ok(())
    }
}
