//! `meniscus`: the Meniscus worker binary.
//!
//! `meniscus standalone` runs every persona in one process (the default way to try Meniscus
//! and the way tests run it). Grid personas over the network come with the operator.

use clap::{Parser, Subcommand};

mod api;
mod columnar;
mod config;
mod correlator;
mod normalizer;
mod pipeline;
mod standalone;
mod storage;
mod telemetry;

// Ingest makes and frees a few small strings per message on several threads; glibc's malloc
// spent a fifth of the ingest threads' CPU on that (perf, bench/e2e). mimalloc's per-thread
// free lists make it a small cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// Turns transparent huge pages off for this process. Stored batches are allocated on the
/// ingest threads and freed after their flush on another, so the allocator keeps taking fresh
/// memory from the OS; with huge pages each first touch zeroes 2 MiB, which cost about an
/// eighth of the server's CPU during ingest (perf: clear_page_erms under
/// do_huge_pmd_anonymous_page; bench/e2e 4 connections, 3.9 -> 3.4 s of CPU per 2 M messages).
fn disable_transparent_huge_pages() {
    // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integer arguments and touches no
    // memory of ours; failure (an old kernel) only means huge pages stay as they were.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
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
