//! The `meniscus` command line: `meniscus standalone` runs every persona in one process (the
//! default way to try Meniscus and the way tests run it); `check-config` and
//! `recover-manifest` are tools. Grid personas over the network come with the grid.

use clap::{Parser, Subcommand};

use crate::{allocator, config, standalone, telemetry};

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
    /// Rebuilds a lost hot-store manifest (`DATA_DIR/hot/MANIFEST.json`) from the Parquet
    /// files under `DATA_DIR/hot`, when Meniscus refuses to start without it. Every file then
    /// counts as live; run it with Meniscus stopped.
    RecoverManifest {
        /// The data directory Meniscus runs with.
        #[arg(long, default_value = "meniscus-data")]
        data_dir: std::path::PathBuf,
    },
}

/// Runs the command line; what the `meniscus` binary's `main` calls.
pub fn main() -> std::process::ExitCode {
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
        Command::RecoverManifest { data_dir } => {
            let hot = data_dir.join("hot");
            meniscus_store::hot::rebuild_manifest(&hot, &meniscus_store::disk::LocalDisk)
                .map(|files| {
                    println!(
                        "{}: manifest rebuilt with {files} live file(s); start Meniscus again",
                        hot.display()
                    )
                })
                .map_err(Into::into)
        }
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("meniscus: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
