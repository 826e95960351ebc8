//! `meniscus`: the Meniscus worker binary.
//!
//! `meniscus standalone` runs every persona in one process (the default way to try Meniscus
//! and the way tests run it). Grid personas over the network come with the operator.

use clap::{Parser, Subcommand};

mod allocator;
mod api;
mod columnar;
mod config;
mod correlator;
mod normalizer;
mod pipeline;
mod standalone;
mod storage;
mod telemetry;

#[derive(Debug, Parser)]
#[command(name = "meniscus", version, about = "Meniscus: logging as a service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every persona in one process with an embedded store.
    Standalone(standalone::StandaloneArgs),
    /// Checks a configuration file and exits: 0 when valid, 1 with the reason otherwise.
    CheckConfig {
        /// The file to check.
        config: std::path::PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    allocator::disable_transparent_huge_pages();
    let cli = Cli::parse();
    telemetry::init_logging();
    let outcome = match cli.command {
        Command::Standalone(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("ingest")
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(standalone::run(args))),
        Command::CheckConfig { config } => config::Config::load(&config)
            .map(|_| println!("{}: valid", config.display()))
            .map_err(Into::into),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("meniscus: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
