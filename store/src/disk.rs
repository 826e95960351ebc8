//! The store's writes to disk, behind one small interface, so tests can make any of them fail
//! the way real disks fail (a full disk, an fsync that reports a writeback error, a directory
//! that cannot be synced) and check that nothing acknowledged is lost.
//!
//! Reads do not go through here: replay and queries read files directly, and tests damage
//! those files on disk instead.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// A file being written.
pub trait DiskFile: Write + Send {
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Makes the file's data and metadata durable (`fsync`).
    fn sync_all(&mut self) -> io::Result<()>;
    /// Cuts or extends the file.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// The file's size in bytes.
    fn size(&self) -> io::Result<u64>;
}

/// Where the store writes.
pub trait Disk: Send + Sync + 'static {
    /// Creates a file that must not exist yet, for appending.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn DiskFile>>;
    /// Creates or truncates a file.
    fn create(&self, path: &Path) -> io::Result<Box<dyn DiskFile>>;
    /// Makes the creation, rename or removal of entries in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Creates one directory whose parent exists.
    fn create_dir(&self, dir: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes a file someone else wrote durable (`fsync`): an archived object a `file://`
    /// target wrote without syncing.
    fn sync_file(&self, path: &Path) -> io::Result<()>;
}

/// The local filesystem.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalDisk;

struct LocalFile(File);

impl Write for LocalFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl DiskFile for LocalFile {
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl Disk for LocalDisk {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)?;
        Ok(Box::new(LocalFile(file)))
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        Ok(Box::new(LocalFile(File::create(path)?)))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn sync_file(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
}

/// Creates `relative` (and any missing parents) under `root`, fsyncing each new directory's
/// parent, so a file made inside it and named by a manifest cannot vanish with its directory
/// after a power loss.
pub fn create_dirs_durably(disk: &dyn Disk, root: &Path, relative: &Path) -> io::Result<()> {
    let mut current = root.to_path_buf();
    for component in relative.components() {
        let parent = current.clone();
        current.push(component);
        match disk.create_dir(&current) {
            Ok(()) => disk.sync_dir(&parent)?,
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Whether `error` says a directory cannot be written to: a read-only mount (a Secret's).
pub fn is_read_only(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    )
}

/// Opens (creating it) a file used only for its `flock`: `DATA_DIR/LOCK`, the key
/// directory's `.lock`. The lock goes with the open file, so closing it, or the process
/// dying, lets go.
pub fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

/// Writes `bytes` to `path` via a temporary name, fsynced, then renamed and the directory
/// fsynced: the file is either the old one or the whole new one, after any crash.
pub fn replace_file(disk: &dyn Disk, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("a file to replace needs a directory"))?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = std::path::PathBuf::from(temporary);
    {
        let mut file = disk.create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    disk.rename(&temporary, path)?;
    disk.sync_dir(dir)
}

#[cfg(test)]
pub mod faults {
    //! A disk whose operations fail on demand, and that records what it did.

    use super::*;
    use parking_lot::Mutex;
    use std::path::PathBuf;
    use std::sync::Arc;

    /// Operations that can be made to fail.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Op {
        /// Creating a file (a WAL segment, a Parquet file, a manifest).
        Create,
        Write,
        /// `fdatasync` or `fsync` of a file.
        SyncFile,
        SyncDir,
        CreateDir,
        Rename,
    }

    #[derive(Default)]
    struct State {
        /// Operation -> how many more times it fails (u32::MAX: until cleared).
        failing: Vec<(Op, u32, Option<String>)>,
        /// What happened, in order: (operation, path, succeeded).
        log: Vec<(Op, PathBuf, bool)>,
    }

    /// [`LocalDisk`] with injectable failures.
    #[derive(Clone, Default)]
    pub struct FaultyDisk {
        state: Arc<Mutex<State>>,
    }

    impl FaultyDisk {
        /// Makes the next `times` operations of this kind fail (on paths containing
        /// `path_part`, if given).
        pub fn fail(&self, op: Op, times: u32, path_part: Option<&str>) {
            self.state
                .lock()
                .failing
                .push((op, times, path_part.map(String::from)));
        }

        /// Makes every operation of this kind fail until [`FaultyDisk::heal`].
        pub fn fail_always(&self, op: Op) {
            self.fail(op, u32::MAX, None);
        }

        pub fn heal(&self) {
            self.state.lock().failing.clear();
        }

        /// Operations done so far: (kind, path, succeeded).
        pub fn log(&self) -> Vec<(Op, PathBuf, bool)> {
            self.state.lock().log.clone()
        }

        fn check(&self, op: Op, path: &Path) -> io::Result<()> {
            let mut state = self.state.lock();
            let text = path.to_string_lossy();
            let mut fail = false;
            for (failing_op, times, part) in state.failing.iter_mut() {
                let matches = *failing_op == op
                    && *times > 0
                    && part
                        .as_ref()
                        .is_none_or(|part| text.contains(part.as_str()));
                if matches {
                    if *times != u32::MAX {
                        *times -= 1;
                    }
                    fail = true;
                    break;
                }
            }
            state.log.push((op, path.to_path_buf(), !fail));
            if fail {
                // EIO is what a failed writeback reports; ENOSPC what a full disk does.
                let error = match op {
                    Op::Write => io::Error::from_raw_os_error(28),
                    _ => io::Error::from_raw_os_error(5),
                };
                return Err(error);
            }
            Ok(())
        }
    }

    struct FaultyFile {
        disk: FaultyDisk,
        path: PathBuf,
        inner: Box<dyn DiskFile>,
    }

    impl Write for FaultyFile {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.disk.check(Op::Write, &self.path)?;
            self.inner.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.inner.flush()
        }
    }

    impl DiskFile for FaultyFile {
        fn sync_data(&mut self) -> io::Result<()> {
            self.disk.check(Op::SyncFile, &self.path)?;
            self.inner.sync_data()
        }
        fn sync_all(&mut self) -> io::Result<()> {
            self.disk.check(Op::SyncFile, &self.path)?;
            self.inner.sync_all()
        }
        fn set_len(&mut self, len: u64) -> io::Result<()> {
            self.inner.set_len(len)
        }
        fn size(&self) -> io::Result<u64> {
            self.inner.size()
        }
    }

    impl Disk for FaultyDisk {
        fn create_new(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
            self.check(Op::Create, path)?;
            Ok(Box::new(FaultyFile {
                disk: self.clone(),
                path: path.to_path_buf(),
                inner: LocalDisk.create_new(path)?,
            }))
        }
        fn create(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
            self.check(Op::Create, path)?;
            Ok(Box::new(FaultyFile {
                disk: self.clone(),
                path: path.to_path_buf(),
                inner: LocalDisk.create(path)?,
            }))
        }
        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            self.check(Op::SyncDir, dir)?;
            LocalDisk.sync_dir(dir)
        }
        fn create_dir(&self, dir: &Path) -> io::Result<()> {
            self.check(Op::CreateDir, dir)?;
            LocalDisk.create_dir(dir)
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            self.check(Op::Rename, to)?;
            LocalDisk.rename(from, to)
        }
        fn remove_file(&self, path: &Path) -> io::Result<()> {
            LocalDisk.remove_file(path)
        }
        fn sync_file(&self, path: &Path) -> io::Result<()> {
            self.check(Op::SyncFile, path)?;
            LocalDisk.sync_file(path)
        }
    }
}
