//! Where the coordinator keeps its state across restarts ([`StateStore`]): on disk for
//! standalone and `meniscus worker --persona coordinator` ([`StateFile`]: one JSON file,
//! replaced atomically after every change), so a restarted coordinator knows its workers (ids,
//! credential hashes, addresses) and tenants; the operator keeps it in a Kubernetes Secret.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::state::State;

/// Saves the coordinator's state after each change that must survive a restart.
pub trait StateStore: Send + Sync {
    /// An error means the change is not made (or, for heartbeats, is saved with the next).
    fn save(&self, state: &State) -> io::Result<()>;
}

impl StateStore for StateFile {
    fn save(&self, state: &State) -> io::Result<()> {
        StateFile::save(self, state)
    }
}

pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: &Path) -> StateFile {
        StateFile {
            path: path.to_path_buf(),
        }
    }

    /// The saved state, or an empty one when there is none yet. A file that does not parse
    /// is an error, never a silent fresh start: that would forget every worker and tenant.
    pub fn load(&self) -> io::Result<State> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is not a coordinator state file: {error}",
                        self.path.display()
                    ),
                )
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(error) => Err(error),
        }
    }

    /// Replaces the file (it holds credential hashes and tenant tokens: mode 0600).
    pub fn save(&self, state: &State) -> io::Result<()> {
        replace_private_file(
            &self.path,
            &serde_json::to_vec_pretty(state).map_err(io::Error::other)?,
        )
    }
}

/// Replaces `path` with `bytes`, readable only by this user, after any crash either the old
/// file or the whole new one: a temporary written and fsynced, renamed over it, the directory
/// fsynced. Workers keep their grid identity the same way.
pub fn replace_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    {
        let mut file = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&temporary, path)?;
    fs::File::open(dir)?.sync_all()
}
