//! The `meniscus` command line: `meniscus standalone` runs every persona in one process (the
//! default way to try Meniscus and the way tests run it); `check-config`,
//! `recover-manifest`, `purge`, `keys rotate` and `archive rebuild` are tools. `meniscus worker --persona …`
//! runs personas of a grid as a process of their own (see `grid::WorkerArgs`).

use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::{allocator, config, grid, standalone, telemetry};

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
    /// Personas of a grid as a process of their own (coordinator, broadcaster, correlator,
    /// normalizer, storage, tenant-api).
    Worker(grid::WorkerArgs),
    /// Checks a configuration file and exits: 0 when valid, 1 with the reason otherwise.
    CheckConfig {
        /// The file to check.
        config: std::path::PathBuf,
    },
    /// Rebuilds a lost hot-store manifest (`DATA_DIR/hot/MANIFEST.json`) from the Parquet
    /// files under `DATA_DIR/hot`, when Meniscus refuses to start without it. Every file then
    /// counts as live; run it with Meniscus stopped.
    RecoverManifest {
        /// The configuration file Meniscus runs with (its key directory opens sealed files).
        #[arg(long, env = "MENISCUS_CONFIG")]
        config: Option<std::path::PathBuf>,
        /// The data directory Meniscus runs with.
        #[arg(long, default_value = "meniscus-data")]
        data_dir: std::path::PathBuf,
    },
    /// Deletes everything this data directory holds of TENANT: its hot-store files, its
    /// events still in the write-ahead log, its archived objects and its keys. Run it
    /// with Meniscus stopped (it refuses while Meniscus runs) and the tenant taken out of the
    /// configuration first, or its new events are stored again. On a grid, delete the Tenant
    /// (or `PUT /v1/admin/purges/TENANT`) instead: every storage worker purges it.
    Purge {
        tenant: String,
        /// The configuration file Meniscus runs with (its `storage` and `archive` sections).
        #[arg(long, env = "MENISCUS_CONFIG")]
        config: Option<std::path::PathBuf>,
        /// The data directory Meniscus runs with.
        #[arg(long, env = "MENISCUS_DATA_DIR", default_value = "meniscus-data")]
        data_dir: std::path::PathBuf,
    },
    /// Tenant keys (of the archive, and of hot-store files of `encrypted` producers).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The long-term archive.
    Archive {
        #[command(subcommand)]
        command: ArchiveCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ArchiveCommand {
    /// Makes the archive's manifest (`DATA_DIR/archive/ARCHIVE.json`) again from a listing of
    /// its target, after the data directory was lost or damaged: every object that opens with
    /// a key in the key directory is recorded, and queries read it again. Run it with Meniscus
    /// stopped. The key directory must have survived (keep it apart from the data directory,
    /// such as a mounted Secret): objects whose keys are gone cannot be read by anyone.
    Rebuild {
        /// The configuration file Meniscus runs with (its `archive` section).
        #[arg(long, env = "MENISCUS_CONFIG")]
        config: Option<std::path::PathBuf>,
        /// The data directory Meniscus runs with.
        #[arg(long, env = "MENISCUS_DATA_DIR", default_value = "meniscus-data")]
        data_dir: std::path::PathBuf,
        /// The origin (`DATA_DIR/archive/ORIGIN` of the lost data directory; the first part
        /// of its objects' names) whose objects to take. Needed only when storage workers of
        /// a grid share the target: each must take only its own.
        #[arg(long = "origin")]
        origins: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Makes a new key current for TENANT and re-wraps the data key of every object archived
    /// for it and of every sealed hot-store file it has (neither is rewritten). Safe while
    /// Meniscus runs: uploads and new files pick the new key up at once, and old objects and
    /// files stay readable throughout.
    Rotate {
        tenant: String,
        /// The configuration file Meniscus runs with (its `archive` section).
        #[arg(long, env = "MENISCUS_CONFIG")]
        config: Option<std::path::PathBuf>,
        /// The data directory Meniscus runs with (the default key directory is under it).
        #[arg(long, env = "MENISCUS_DATA_DIR", default_value = "meniscus-data")]
        data_dir: std::path::PathBuf,
        /// Then drop the old keys (after a listing finds no object that still needs them).
        #[arg(long)]
        retire_old: bool,
    },
}

/// The configuration a tool runs with: the file Meniscus runs with, or the defaults.
fn tool_config(config: Option<&std::path::Path>) -> anyhow::Result<config::Config> {
    Ok(match config {
        Some(path) => config::Config::load(path)?,
        None => config::Config::default(),
    })
}

/// A tool's TENANT argument, refused before anything opens when it is not a tenant id (a
/// path, say).
fn tenant_id(text: &str) -> anyhow::Result<meniscus_grid::TenantId> {
    meniscus_grid::TenantId::parse(text)
        .map_err(|error| anyhow::anyhow!("{text:?} is not a tenant id: {error}"))
}

/// `meniscus keys rotate`.
fn rotate_key(
    tenant: &str,
    config: Option<&std::path::Path>,
    data_dir: &std::path::Path,
    retire_old: bool,
) -> anyhow::Result<()> {
    use meniscus_store::archive::{crypto::Keyring, rotation, target};
    use meniscus_store::hot::sealed;
    let tenant = tenant_id(tenant)?;
    let tenant = tenant.as_str();
    let config = tool_config(config)?;
    let keyring = Keyring::open(&config.archive.key_dir(data_dir)?)?;
    let key = keyring.rotate(tenant)?;
    let hot = data_dir.join("hot");
    let mut files = sealed::rewrap_tenant(&hot, tenant, &keyring, &key)?;
    let target = match config.archive.archive_options(data_dir)? {
        Some(options) => Some(target::build(
            &options.url,
            options.credentials_file.as_deref(),
            &options.options,
        )?),
        None => None,
    };
    let objects = match &target {
        Some(target) => {
            // The archive's local copies of the objects' skip indexes.
            files += rotation::rewrap_local_skip_copies(data_dir, target, tenant, &keyring, &key)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            // The key made above is current: the rotation re-wraps with it, not another.
            runtime.block_on(rotation::rewrap_all(
                target, &keyring, tenant, &key, retire_old,
            ))?
        }
        None => 0,
    };
    if retire_old {
        // Under the key directory's exclusive lock no file is being sealed (writers hold a
        // shared one from reading the key until their file is in place): what was written
        // under an older key since the pass above is re-wrapped now, and then nothing needs
        // the old keys. (Local copies of skip indexes under an old key are dropped: they are
        // fetched again.)
        let retired = keyring.retire_old_when(tenant, || {
            sealed::rewrap_tenant(&hot, tenant, &keyring, &key)?;
            if let Some(target) = &target {
                rotation::drop_local_skip_copies_under_other_keys(
                    data_dir, target, tenant, &key.id,
                )?;
            }
            Ok(sealed::sealed_with_other_keys(&hot, tenant, &key.id)?.is_empty())
        })?;
        if retired.is_none() {
            anyhow::bail!(
                "hot-store files of {tenant} still use an older key; old keys kept (run the command again)"
            );
        }
    }
    println!(
        "tenant {tenant}: key {} is current; {files} local file key(s) and {objects} object key(s) re-wrapped{}",
        key.id,
        if retire_old { "; old keys dropped" } else { "" }
    );
    Ok(())
}

/// `meniscus archive rebuild`.
fn rebuild_archive(
    config: Option<&std::path::Path>,
    data_dir: &std::path::Path,
    origins: &[String],
) -> anyhow::Result<()> {
    use meniscus_store::archive::Archive;
    let config = tool_config(config)?;
    let Some(options) = config.archive.archive_options(data_dir)? else {
        anyhow::bail!("the archive is off in this configuration (archive.enabled: false)");
    };
    std::fs::create_dir_all(data_dir)?;
    let _lock = meniscus_store::lock_data_dir(data_dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rebuilt = runtime.block_on(async {
        let metrics = meniscus_metrics::Registry::new();
        // Retention plays no part here: the janitor applies it once Meniscus runs.
        let archive = Archive::open(data_dir, options, &metrics, Arc::new(|_: &str| None))?;
        archive.rebuild(origins).await
    })?;
    println!(
        "archive rebuilt from a listing: {} object(s) recorded ({} rows) of origin(s) {}; {} already recorded",
        rebuilt.recorded,
        rebuilt.rows,
        if rebuilt.adopted.is_empty() {
            "(none: the target holds no objects)".to_string()
        } else {
            rebuilt.adopted.join(", ")
        },
        rebuilt.known
    );
    for (origin, count) in &rebuilt.other_origins {
        println!("left alone: {count} object(s) of origin {origin} (another storage worker's)");
    }
    if !rebuilt.unreadable.is_empty() {
        for (key, reason) in &rebuilt.unreadable {
            eprintln!("not recorded: {key}: {reason}");
        }
        anyhow::bail!(
            "{} object(s) could not be opened and are not recorded (is the key directory the one they were sealed with?); run the command again once that is fixed",
            rebuilt.unreadable.len()
        );
    }
    Ok(())
}

/// `meniscus purge`: what a grid's storage worker does for a purge order (its memory flushed
/// first, so the write-ahead log cannot bring the tenant back; then its files, then the
/// archive's objects, orphans and keys).
fn purge_tenant(
    tenant: &str,
    config: Option<&std::path::Path>,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    use meniscus_store::archive::Archive;
    let tenant = tenant_id(tenant)?;
    let config = tool_config(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let metrics = meniscus_metrics::Registry::new();
        let store =
            meniscus_store::Store::open(data_dir, config.store_options(data_dir)?, &metrics)?;
        let archive = match config.archive.archive_options(data_dir)? {
            // Retention plays no part in a purge.
            Some(options) => Some(Archive::open(
                data_dir,
                options,
                &metrics,
                Arc::new(|_: &str| None),
            )?),
            None => None,
        };
        let (files, objects) = grid::purge::purge(&store, archive.as_deref(), &tenant).await?;
        println!(
            "tenant {tenant}: purged {files} hot-store file(s) and {objects} archived object(s); its keys are deleted"
        );
        anyhow::Ok(())
    })
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
        Command::Worker(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(grid::run(args))),
        Command::CheckConfig { config } => config::Config::load(&config)
            .map(|_| println!("{}: valid", config.display()))
            .map_err(Into::into),
        Command::Keys {
            command:
                KeysCommand::Rotate {
                    tenant,
                    config,
                    data_dir,
                    retire_old,
                },
        } => rotate_key(&tenant, config.as_deref(), &data_dir, retire_old),
        Command::Archive {
            command:
                ArchiveCommand::Rebuild {
                    config,
                    data_dir,
                    origins,
                },
        } => rebuild_archive(config.as_deref(), &data_dir, &origins),
        Command::Purge {
            tenant,
            config,
            data_dir,
        } => purge_tenant(&tenant, config.as_deref(), &data_dir),
        Command::RecoverManifest { config, data_dir } => {
            let hot = data_dir.join("hot");
            tool_config(config.as_deref())
                .and_then(|config| config.archive.key_dir(&data_dir))
                .and_then(|key_dir| {
                    let keyring = meniscus_store::archive::crypto::Keyring::open(&key_dir)?;
                    let disk = meniscus_store::disk::LocalDisk;
                    Ok(meniscus_store::hot::rebuild_manifest(
                        &hot, &disk, &keyring,
                    )?)
                })
                .map(|files| {
                    println!(
                        "{}: manifest rebuilt with {files} live file(s); start Meniscus again",
                        hot.display()
                    )
                })
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
