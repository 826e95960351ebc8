//! Envelope encryption of archived objects.
//!
//! Every object gets a 256-bit data key of its own and is sealed with AES-256-GCM in chunks
//! of [`CHUNK_BYTES`], each authenticated on its own, so a query can fetch and open just the
//! byte ranges Parquet asks for (its footer, the column chunks it reads) with ranged GETs.
//! The object's key (its path in the bucket) is every chunk's associated data, so an object
//! copied under another tenant's prefix or name does not open; each chunk's nonce holds its
//! index and whether it is the last, so chunks cannot be reordered, dropped or cut off at the
//! end without the read failing (the STREAM construction). The data key is wrapped
//! (AES-256-GCM again) by the tenant's key and stored next to the object as a small sidecar
//! object (`….key`) with the tenant key's id and the chunk size. Rotating a tenant's key
//! rewrites only those sidecars, never the objects, and old objects stay readable throughout.
//!
//! Why chunks rather than one seal per object: a count per minute reads two small columns of
//! an hour, and a whole-object seal made it fetch and decrypt every byte of the hour (cold
//! queries took 4.6-5.0x the hot time in bench/archive). Why not Parquet modular encryption:
//! it needs the parquet crate's encryption feature, keys per column, and leaves the footer's
//! layout in clear unless that is encrypted too; sealing the bytes below Parquet keeps the
//! object opaque and the reader unchanged. Objects archived before chunks (`MNSARC1`, sealed
//! whole) stay readable; they are fetched whole.
//!
//! Tenant keys live in a key directory, one file per tenant (`TENANT.json`, mode 0600),
//! created on first use; the directory can be a mounted Secret.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, AeadCore, AeadInPlace, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use parking_lot::Mutex;
use ring::{digest, hmac};
use serde::{Deserialize, Serialize};

/// The first bytes of an object sealed whole (archived before chunks), and of every sealed
/// companion (a skip index).
pub const OBJECT_MAGIC: &[u8; 8] = b"MNSARC1\n";
/// The first bytes of an object sealed in chunks; the chunk size follows (u32, little-endian).
pub const CHUNKED_MAGIC: &[u8; 8] = b"MNSARC2\n";
/// Plain bytes per sealed chunk: a ranged read fetches whole chunks, so this is the smallest
/// read (Parquet asks for column chunks, typically tens of KB to MBs), and each costs 16 bytes
/// of tag at rest (0.02 %).
pub const CHUNK_BYTES: u32 = 64 * 1024;
pub const CHUNKED_HEADER_BYTES: u64 = CHUNKED_MAGIC.len() as u64 + 4;
pub const TAG_BYTES: u64 = 16;
const NONCE_BYTES: usize = 12;
const NONCE_PREFIX_BYTES: usize = 7;
const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("not an archived object (bad magic or too short)")]
    NotAnObject,
    #[error("the object's key sidecar is not valid: {0}")]
    BadSidecar(String),
    #[error("the object belongs to tenant {owner:?}, not {tenant:?}")]
    WrongTenant { owner: String, tenant: String },
    #[error("tenant {tenant:?} has no key {key_id:?} (deleted, or another key directory)")]
    UnknownKey { tenant: String, key_id: String },
    #[error("decryption failed: wrong key, or the object or its sidecar was altered")]
    Decrypt,
    #[error("the object's chunks do not match its size (cut short or altered)")]
    Layout,
    #[error("key file: {0}")]
    Io(#[from] io::Error),
}

/// One tenant key.
#[derive(Clone)]
pub struct TenantKey {
    pub id: String,
    key: [u8; KEY_BYTES],
}

impl std::fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKey").field("id", &self.id).finish()
    }
}

/// A tenant's key file: every key it has had that still wraps some data key, and which one
/// wraps new ones.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct KeyFile {
    current: String,
    /// Key id → base64 of the 32 key bytes.
    keys: BTreeMap<String, String>,
}

impl KeyFile {
    fn key(&self, id: &str) -> Option<TenantKey> {
        let bytes = BASE64.decode(self.keys.get(id)?).ok()?;
        let key: [u8; KEY_BYTES] = bytes.try_into().ok()?;
        Some(TenantKey {
            id: id.to_string(),
            key,
        })
    }
}

/// The tenants' keys, read from and written to one directory.
pub struct Keyring {
    dir: PathBuf,
    /// Serializes changes to key files made by this process; [`Keyring::exclusive`] also
    /// locks out other processes (`meniscus keys rotate` next to a running instance).
    lock: Mutex<()>,
}

/// An exclusive lock on the key directory (`flock` on its `.lock` file), held while a key
/// file is changed; released when dropped (the file closes).
struct DirLock {
    _file: fs::File,
}

/// A shared lock on the key directory, held by a writer from reading a tenant's current key
/// until the file it seals with it is in place: [`Keyring::retire_old_when`] (exclusive) then
/// never drops a key a file is being written under. `None` inside on a read-only key
/// directory (a mounted Secret), where no rotation can run either.
pub struct SealingGuard {
    _file: Option<fs::File>,
}

impl Keyring {
    /// Opens the key directory, creating it (mode 0700) when missing. An existing directory is
    /// left as it is: it may be a read-only mount of a Secret.
    pub fn open(dir: &Path) -> io::Result<Keyring> {
        if !dir.is_dir() {
            fs::create_dir_all(dir)?;
            restrict(dir, 0o700)?;
        }
        Ok(Keyring {
            dir: dir.to_path_buf(),
            lock: Mutex::new(()),
        })
    }

    fn exclusive(&self) -> io::Result<DirLock> {
        let file = crate::disk::open_lock_file(&self.dir.join(".lock"))?;
        // Blocks until the lock is free.
        file.lock()?;
        Ok(DirLock { _file: file })
    }

    fn path(&self, tenant: &str) -> PathBuf {
        self.dir.join(format!("{tenant}.json"))
    }

    fn read(&self, tenant: &str) -> io::Result<Option<KeyFile>> {
        match fs::read(self.path(tenant)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {error}", self.path(tenant).display()),
                )
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn write(&self, tenant: &str, file: &KeyFile) -> io::Result<()> {
        let path = self.path(tenant);
        let temporary = self
            .dir
            .join(format!(".{tenant}.json.{}.tmp", std::process::id()));
        let bytes = serde_json::to_vec_pretty(file).map_err(io::Error::other)?;
        {
            use std::io::Write;
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut out = options.open(&temporary)?;
            out.write_all(&bytes)?;
            out.sync_all()?;
        }
        restrict(&temporary, 0o600)?;
        fs::rename(&temporary, &path)?;
        fs::File::open(&self.dir)?.sync_all()
    }

    /// The key that wraps new data keys for `tenant`, made on first use.
    pub fn current(&self, tenant: &str) -> io::Result<TenantKey> {
        if let Some(file) = self.read(tenant)? {
            return file
                .key(&file.current)
                .ok_or_else(|| corrupt(tenant, &file.current));
        }
        let _guard = self.lock.lock();
        let _locked = self.exclusive()?;
        if let Some(file) = self.read(tenant)? {
            return file
                .key(&file.current)
                .ok_or_else(|| corrupt(tenant, &file.current));
        }
        let (file, key) = with_new_key(KeyFile::default());
        self.write(tenant, &file)?;
        Ok(key)
    }

    /// The current key of `tenant` for sealing a file, with the guard to hold until the file
    /// is in place (see [`SealingGuard`]). The key is made first if missing: making it takes
    /// the exclusive lock, which the guard (a shared lock of this process) would block.
    pub fn current_for_sealing(&self, tenant: &str) -> io::Result<(SealingGuard, TenantKey)> {
        self.current(tenant)?;
        let file = match crate::disk::open_lock_file(&self.dir.join(".lock")) {
            Ok(file) => {
                file.lock_shared()?;
                Some(file)
            }
            Err(error) if crate::disk::is_read_only(&error) => None,
            Err(error) => return Err(error),
        };
        // Read again under the lock: a rotation may have made another key current meanwhile.
        // Never made here (a purge deleted it meanwhile): that would need the exclusive lock.
        let key = self
            .read(tenant)?
            .and_then(|file| file.key(&file.current))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("tenant {tenant:?} has no key (purged meanwhile?)"),
                )
            })?;
        Ok((SealingGuard { _file: file }, key))
    }

    /// The key `id` of `tenant`, read from its file each time (a rotation by another process
    /// is seen at once).
    pub fn key(&self, tenant: &str, id: &str) -> Result<TenantKey, CryptoError> {
        self.read(tenant)?
            .and_then(|file| file.key(id))
            .ok_or_else(|| CryptoError::UnknownKey {
                tenant: tenant.to_string(),
                key_id: id.to_string(),
            })
    }

    /// Makes a new key current for `tenant`; older keys stay (they still wrap data keys until
    /// those are re-wrapped). Returns the new key.
    pub fn rotate(&self, tenant: &str) -> io::Result<TenantKey> {
        let _guard = self.lock.lock();
        let _locked = self.exclusive()?;
        let file = self.read(tenant)?.unwrap_or_default();
        let (file, key) = with_new_key(file);
        self.write(tenant, &file)?;
        Ok(key)
    }

    /// Drops every key of `tenant` but the current one (after every data key was re-wrapped).
    /// Returns how many were dropped.
    pub fn retire_old(&self, tenant: &str) -> io::Result<usize> {
        let _guard = self.lock.lock();
        let _locked = self.exclusive()?;
        let Some(mut file) = self.read(tenant)? else {
            return Ok(0);
        };
        let before = file.keys.len();
        let current = file.current.clone();
        file.keys.retain(|id, _| *id == current);
        self.write(tenant, &file)?;
        Ok(before - file.keys.len())
    }

    /// Drops every key of `tenant` but the current one, if `ready` says nothing needs them any
    /// more; `ready` runs under the exclusive lock, so no file is being sealed meanwhile (see
    /// [`SealingGuard`]). Returns how many were dropped, or `None` when not ready.
    pub fn retire_old_when(
        &self,
        tenant: &str,
        ready: impl FnOnce() -> io::Result<bool>,
    ) -> io::Result<Option<usize>> {
        let _guard = self.lock.lock();
        let _locked = self.exclusive()?;
        if !ready()? {
            return Ok(None);
        }
        let Some(mut file) = self.read(tenant)? else {
            return Ok(Some(0));
        };
        let before = file.keys.len();
        let current = file.current.clone();
        file.keys.retain(|id, _| *id == current);
        self.write(tenant, &file)?;
        Ok(Some(before - file.keys.len()))
    }

    /// Deletes the tenant's key file: what was archived for it can no longer be opened.
    pub fn purge(&self, tenant: &str) -> io::Result<()> {
        let _guard = self.lock.lock();
        let _locked = self.exclusive()?;
        match fs::remove_file(self.path(tenant)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }
}

fn corrupt(tenant: &str, id: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the key file of tenant {tenant:?} names current key {id:?} but does not hold it"),
    )
}

fn with_new_key(mut file: KeyFile) -> (KeyFile, TenantKey) {
    let key = DataKey::random_bytes();
    let id = ulid::Ulid::new().to_string().to_lowercase();
    file.keys.insert(id.clone(), BASE64.encode(key));
    file.current = id.clone();
    (file, TenantKey { id, key })
}

fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// The sidecar of an object: its data key, wrapped by a tenant key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sidecar {
    format: u32,
    tenant: String,
    key_id: String,
    /// base64 of nonce ‖ AES-256-GCM(tenant key, data key).
    wrapped: String,
    /// Plain bytes per sealed chunk; absent for an object sealed whole. Here as well as in
    /// the object's header so a ranged read needs no request for the header: a wrong value
    /// only makes every chunk fail to open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunk_bytes: Option<u32>,
}

fn sidecar_aad(object_key: &str) -> Vec<u8> {
    format!("meniscus-archive-data-key:{object_key}").into_bytes()
}

fn aead_seal(key: &[u8; KEY_BYTES], plain: &[u8], aad: &[u8], out: &mut Vec<u8>) {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    // Encryption with a valid key and nonce only fails for inputs over 64 GiB.
    let sealed = cipher
        .encrypt(&nonce, Payload { msg: plain, aad })
        .expect("AES-256-GCM encryption of an in-memory buffer");
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
}

fn aead_open(key: &[u8; KEY_BYTES], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_BYTES {
        return Err(CryptoError::Decrypt);
    }
    let (nonce, body) = sealed.split_at(NONCE_BYTES);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| CryptoError::Decrypt)
}

fn wrap(data_key: &DataKey, tenant: &str, key: &TenantKey, object_key: &str) -> Vec<u8> {
    let mut wrapped = Vec::new();
    aead_seal(
        &key.key,
        &data_key.key,
        &sidecar_aad(object_key),
        &mut wrapped,
    );
    let sidecar = Sidecar {
        format: 1,
        tenant: tenant.to_string(),
        key_id: key.id.clone(),
        wrapped: BASE64.encode(wrapped),
        chunk_bytes: data_key.chunk_bytes,
    };
    serde_json::to_vec(&sidecar).expect("a sidecar serializes")
}

/// The data key a sidecar wraps, with how its object is sealed.
pub fn unwrap(
    sidecar: &[u8],
    tenant: &str,
    object_key: &str,
    keyring: &Keyring,
) -> Result<DataKey, CryptoError> {
    let sidecar: Sidecar = serde_json::from_slice(sidecar)
        .map_err(|error| CryptoError::BadSidecar(error.to_string()))?;
    if sidecar.tenant != tenant {
        return Err(CryptoError::WrongTenant {
            owner: sidecar.tenant,
            tenant: tenant.to_string(),
        });
    }
    let key = keyring.key(tenant, &sidecar.key_id)?;
    let wrapped = BASE64
        .decode(&sidecar.wrapped)
        .map_err(|error| CryptoError::BadSidecar(error.to_string()))?;
    let key: [u8; KEY_BYTES] = aead_open(&key.key, &wrapped, &sidecar_aad(object_key))?
        .try_into()
        .map_err(|_| CryptoError::BadSidecar("the data key is not 32 bytes".into()))?;
    if sidecar.chunk_bytes == Some(0) {
        return Err(CryptoError::BadSidecar("a chunk size of 0".into()));
    }
    Ok(DataKey {
        key,
        chunk_bytes: sidecar.chunk_bytes,
    })
}

/// An object's data key (kept by the uploader to check the sidecar that reached the target,
/// and by the query cache to open the chunks it fetches), with the object's chunk size
/// (`None`: sealed whole).
#[derive(Clone)]
pub struct DataKey {
    key: [u8; KEY_BYTES],
    pub chunk_bytes: Option<u32>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("chunk_bytes", &self.chunk_bytes)
            .finish_non_exhaustive()
    }
}

impl DataKey {
    /// A data key drawn at random, for a file sealed in chunks of [`CHUNK_BYTES`] as it is
    /// written (a hot-store file of an `encrypted` producer): unlike an archived object, no
    /// file is ever sealed twice, so nothing needs the key to be derived.
    pub fn random() -> DataKey {
        DataKey {
            key: DataKey::random_bytes(),
            chunk_bytes: Some(CHUNK_BYTES),
        }
    }

    /// 32 random bytes: a data key's, a tenant key's, the write-ahead log's record key.
    pub fn random_bytes() -> [u8; KEY_BYTES] {
        Aes256Gcm::generate_key(&mut OsRng).into()
    }

    /// Seals chunk `index` of a file in place and returns its tag (see [`open_chunks`], which
    /// opens what this seals when given the same `aad`).
    pub fn seal_chunk(&self, aad: &[u8], index: u64, last: bool, chunk: &mut [u8]) -> [u8; 16] {
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.key));
        let nonce = chunk_nonce(&nonce_prefix(&self.key), index, last);
        // Encryption with a valid key and nonce only fails for inputs over 64 GiB.
        cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, chunk)
            .expect("AES-256-GCM encryption of an in-memory buffer")
            .into()
    }

    /// This key wrapped by `key` (nonce ‖ AES-256-GCM, [`WRAPPED_KEY_BYTES`]), bound to `aad`.
    pub fn wrap_with(&self, key: &TenantKey, aad: &[u8]) -> Vec<u8> {
        let mut wrapped = Vec::with_capacity(WRAPPED_KEY_BYTES);
        aead_seal(&key.key, &self.key, aad, &mut wrapped);
        wrapped
    }

    /// The data key `wrapped` holds (see [`DataKey::wrap_with`]), for chunks of
    /// [`CHUNK_BYTES`].
    pub fn unwrap_with(
        wrapped: &[u8],
        key: &TenantKey,
        aad: &[u8],
    ) -> Result<DataKey, CryptoError> {
        let key: [u8; KEY_BYTES] = aead_open(&key.key, wrapped, aad)?
            .try_into()
            .map_err(|_| CryptoError::Decrypt)?;
        Ok(DataKey {
            key,
            chunk_bytes: Some(CHUNK_BYTES),
        })
    }
}

/// Bytes of a data key wrapped by a tenant key: nonce, key, tag.
pub const WRAPPED_KEY_BYTES: usize = NONCE_BYTES + KEY_BYTES + TAG_BYTES as usize;

/// Where the chunks of an object sealed in chunks lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLayout {
    pub plain_bytes: u64,
    pub chunk_bytes: u64,
}

impl ChunkLayout {
    /// The layout of a stored object of `stored_bytes`, or why it cannot be one.
    pub fn of_stored(stored_bytes: u64, chunk_bytes: u32) -> Result<ChunkLayout, CryptoError> {
        let chunk_bytes = u64::from(chunk_bytes);
        let body = stored_bytes
            .checked_sub(CHUNKED_HEADER_BYTES)
            .ok_or(CryptoError::Layout)?;
        let sealed_chunk = chunk_bytes + TAG_BYTES;
        let chunks = body.div_ceil(sealed_chunk).max(1);
        let plain_bytes = body
            .checked_sub(chunks * TAG_BYTES)
            .ok_or(CryptoError::Layout)?;
        let layout = ChunkLayout {
            plain_bytes,
            chunk_bytes,
        };
        // Every chunk but the last is full, and the last holds at least one byte (or is the
        // only one, of an empty file).
        if layout.chunks() != chunks {
            return Err(CryptoError::Layout);
        }
        Ok(layout)
    }

    /// How many chunks: at least one, so an empty file still has a last chunk to authenticate.
    pub fn chunks(&self) -> u64 {
        self.plain_bytes.div_ceil(self.chunk_bytes).max(1)
    }

    /// The chunks holding the plain bytes `range` (not empty, within the file).
    pub fn chunks_of(&self, range: &std::ops::Range<u64>) -> std::ops::Range<u64> {
        let first = range.start / self.chunk_bytes;
        let last = (range.end.max(range.start + 1) - 1) / self.chunk_bytes;
        first..(last + 1).min(self.chunks())
    }

    /// Plain bytes of chunk `index`.
    pub fn plain_range(&self, index: u64) -> std::ops::Range<u64> {
        let start = index * self.chunk_bytes;
        start..(start + self.chunk_bytes).min(self.plain_bytes)
    }

    /// Bytes of the stored object that hold the chunks `chunks`.
    pub fn sealed_range(&self, chunks: &std::ops::Range<u64>) -> std::ops::Range<u64> {
        let start = CHUNKED_HEADER_BYTES + chunks.start * (self.chunk_bytes + TAG_BYTES);
        let last = self.plain_range(chunks.end - 1);
        let end = CHUNKED_HEADER_BYTES
            + (chunks.end - 1) * (self.chunk_bytes + TAG_BYTES)
            + (last.end - last.start)
            + TAG_BYTES;
        start..end
    }
}

/// The nonce of chunk `index`: a prefix derived from the data key, the index, and whether it
/// is the last chunk (a file cut after a full chunk then fails to open).
fn chunk_nonce(prefix: &[u8; NONCE_PREFIX_BYTES], index: u64, last: bool) -> [u8; NONCE_BYTES] {
    let mut nonce = [0u8; NONCE_BYTES];
    nonce[..NONCE_PREFIX_BYTES].copy_from_slice(prefix);
    // An object of 2^32 chunks would be 256 TiB: an hour of one tenant is never that.
    let index = u32::try_from(index).expect("fewer than 2^32 chunks");
    nonce[NONCE_PREFIX_BYTES..NONCE_BYTES - 1].copy_from_slice(&index.to_be_bytes());
    nonce[NONCE_BYTES - 1] = u8::from(last);
    nonce
}

fn nonce_prefix(data_key: &[u8; KEY_BYTES]) -> [u8; NONCE_PREFIX_BYTES] {
    let tag = derive(data_key, b"meniscus archive chunk nonce v2", &[]);
    let mut prefix = [0u8; NONCE_PREFIX_BYTES];
    prefix.copy_from_slice(&tag.as_ref()[..NONCE_PREFIX_BYTES]);
    prefix
}

fn derive(secret: &[u8], label: &[u8], parts: &[&[u8]]) -> hmac::Tag {
    let mut context = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, secret));
    context.update(label);
    for part in parts {
        context.update(&(part.len() as u64).to_le_bytes());
        context.update(part);
    }
    context.sign()
}

/// Opens consecutive chunks of an object sealed in chunks: `sealed` holds the stored bytes
/// [`ChunkLayout::sealed_range`] gives for `chunks`; returns their plain bytes.
pub fn open_chunks(
    sealed: &[u8],
    chunks: std::ops::Range<u64>,
    layout: &ChunkLayout,
    data_key: &DataKey,
    object_key: &str,
) -> Result<Vec<u8>, CryptoError> {
    let expected = layout.sealed_range(&chunks);
    if sealed.len() as u64 != expected.end - expected.start {
        return Err(CryptoError::Layout);
    }
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&data_key.key));
    let prefix = nonce_prefix(&data_key.key);
    let last_chunk = layout.chunks() - 1;
    let mut plain = Vec::with_capacity(sealed.len());
    let mut at = 0usize;
    for index in chunks {
        let range = layout.plain_range(index);
        let length = (range.end - range.start) as usize;
        let nonce = chunk_nonce(&prefix, index, index == last_chunk);
        let start = plain.len();
        plain.extend_from_slice(&sealed[at..at + length]);
        let tag = &sealed[at + length..at + length + TAG_BYTES as usize];
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                object_key.as_bytes(),
                &mut plain[start..],
                aes_gcm::Tag::from_slice(tag),
            )
            .map_err(|_| CryptoError::Decrypt)?;
        at += length + TAG_BYTES as usize;
    }
    Ok(plain)
}

/// Seals `plain` as the object `object_key` of `tenant`: returns the object's bytes, its
/// sidecar's, and its data key.
///
/// The data key and nonce are derived from the tenant key, the object's name and the
/// content (HMAC-SHA-256), not drawn at random: the same file sealed twice gives the same
/// object. An upload retried after a crash can then race a PUT of the killed attempt that
/// the server completes late (last writer wins) without leaving an object its sidecar does
/// not open: both attempts wrote the same bytes, and every sidecar wraps the same data key.
/// (Seen in tests/archive.rs: after `kill -9` mid-upload, an hour became unreadable.) What
/// this reveals, that two objects of a tenant under one key hold the same bytes, cannot
/// happen across names: the name is part of the derivation.
pub fn seal(
    plain: &[u8],
    tenant: &str,
    object_key: &str,
    key: &TenantKey,
) -> (Vec<u8>, Vec<u8>, DataKey) {
    let data_key = derive_data_key(plain, tenant, object_key, key, Some(CHUNK_BYTES));
    let layout = ChunkLayout {
        plain_bytes: plain.len() as u64,
        chunk_bytes: u64::from(CHUNK_BYTES),
    };
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&data_key.key));
    let prefix = nonce_prefix(&data_key.key);
    let everything = layout.sealed_range(&(0..layout.chunks()));
    let mut object = Vec::with_capacity(everything.end as usize);
    object.extend_from_slice(CHUNKED_MAGIC);
    object.extend_from_slice(&CHUNK_BYTES.to_le_bytes());
    for index in 0..layout.chunks() {
        let range = layout.plain_range(index);
        let start = object.len();
        object.extend_from_slice(&plain[range.start as usize..range.end as usize]);
        let nonce = chunk_nonce(&prefix, index, index == layout.chunks() - 1);
        // Encryption with a valid key and nonce only fails for inputs over 64 GiB.
        let tag = cipher
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                object_key.as_bytes(),
                &mut object[start..],
            )
            .expect("AES-256-GCM encryption of an in-memory buffer");
        object.extend_from_slice(&tag);
    }
    let sidecar = wrap(&data_key, tenant, key, object_key);
    (object, sidecar, data_key)
}

/// The data key of `plain` as the object `object_key`: derived, not drawn (see [`seal`]).
fn derive_data_key(
    plain: &[u8],
    tenant: &str,
    object_key: &str,
    key: &TenantKey,
    chunk_bytes: Option<u32>,
) -> DataKey {
    let content = digest::digest(&digest::SHA256, plain);
    let tag = derive(
        &key.key,
        b"meniscus archive data key v1",
        &[tenant.as_bytes(), object_key.as_bytes(), content.as_ref()],
    );
    let mut data_key = [0u8; KEY_BYTES];
    data_key.copy_from_slice(&tag.as_ref()[..KEY_BYTES]);
    DataKey {
        key: data_key,
        chunk_bytes,
    }
}

/// Seals `plain` whole, as objects were before chunks (`MNSARC1`): kept to prove those
/// objects stay readable.
#[cfg(test)]
pub(crate) fn seal_whole(
    plain: &[u8],
    tenant: &str,
    object_key: &str,
    key: &TenantKey,
) -> (Vec<u8>, Vec<u8>, DataKey) {
    let data_key = derive_data_key(plain, tenant, object_key, key, None);
    let nonce_tag = derive(&data_key.key, b"meniscus archive nonce v1", &[]);
    let nonce = Nonce::from_slice(&nonce_tag.as_ref()[..NONCE_BYTES]);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&data_key.key));
    let sealed = cipher
        .encrypt(
            nonce,
            Payload {
                msg: plain,
                aad: object_key.as_bytes(),
            },
        )
        .expect("AES-256-GCM encryption of an in-memory buffer");
    let mut object = Vec::with_capacity(OBJECT_MAGIC.len() + NONCE_BYTES + sealed.len());
    object.extend_from_slice(OBJECT_MAGIC);
    object.extend_from_slice(nonce);
    object.extend_from_slice(&sealed);
    let sidecar = wrap(&data_key, tenant, key, object_key);
    (object, sidecar, data_key)
}

/// Whether `sidecar` opens, with a key the tenant still has, to `data_key`.
pub fn sidecar_holds(
    sidecar: &[u8],
    tenant: &str,
    object_key: &str,
    keyring: &Keyring,
    data_key: &DataKey,
) -> bool {
    unwrap(sidecar, tenant, object_key, keyring)
        .is_ok_and(|key| key.key == data_key.key && key.chunk_bytes == data_key.chunk_bytes)
}

/// `data_key` wrapped again with `key`, as a sidecar.
pub fn wrap_again(data_key: &DataKey, tenant: &str, key: &TenantKey, object_key: &str) -> Vec<u8> {
    wrap(data_key, tenant, key, object_key)
}

/// Opens the whole object `object_key` of `tenant` with its sidecar (sealed in chunks or,
/// archived before chunks, whole).
pub fn open(
    object: &[u8],
    sidecar: &[u8],
    tenant: &str,
    object_key: &str,
    keyring: &Keyring,
) -> Result<Vec<u8>, CryptoError> {
    let data_key = unwrap(sidecar, tenant, object_key, keyring)?;
    open_whole(object, &data_key, object_key)
}

/// Opens the whole object `object_key` with its data key.
pub fn open_whole(
    object: &[u8],
    data_key: &DataKey,
    object_key: &str,
) -> Result<Vec<u8>, CryptoError> {
    if let Some(body) = object.strip_prefix(OBJECT_MAGIC.as_slice()) {
        return aead_open(&data_key.key, body, object_key.as_bytes());
    }
    let header = object
        .strip_prefix(CHUNKED_MAGIC.as_slice())
        .and_then(|rest| rest.get(..4))
        .ok_or(CryptoError::NotAnObject)?;
    let chunk_bytes = u32::from_le_bytes(header.try_into().expect("4 bytes"));
    if chunk_bytes == 0 || data_key.chunk_bytes != Some(chunk_bytes) {
        return Err(CryptoError::Layout);
    }
    let layout = ChunkLayout::of_stored(object.len() as u64, chunk_bytes)?;
    open_chunks(
        &object[CHUNKED_HEADER_BYTES as usize..],
        0..layout.chunks(),
        &layout,
        data_key,
        object_key,
    )
}

/// Seals a companion of an object (its skip index) with the object's data key, bound to the
/// companion's own name: it opens with the object's sidecar, so a key rotation (which
/// re-wraps only sidecars) keeps it readable, and it cannot pass for the object or another
/// object's companion.
pub fn seal_companion(plain: &[u8], data_key: &DataKey, companion_key: &str) -> Vec<u8> {
    let mut sealed = Vec::with_capacity(plain.len() + OBJECT_MAGIC.len() + NONCE_BYTES + 16);
    sealed.extend_from_slice(OBJECT_MAGIC);
    aead_seal(&data_key.key, plain, companion_key.as_bytes(), &mut sealed);
    sealed
}

/// Opens the companion `companion_key` of the object `object_key` with the object's sidecar.
pub fn open_companion(
    sealed: &[u8],
    sidecar: &[u8],
    tenant: &str,
    object_key: &str,
    companion_key: &str,
    keyring: &Keyring,
) -> Result<Vec<u8>, CryptoError> {
    let body = sealed
        .strip_prefix(OBJECT_MAGIC.as_slice())
        .ok_or(CryptoError::NotAnObject)?;
    let data_key = unwrap(sidecar, tenant, object_key, keyring)?;
    aead_open(&data_key.key, body, companion_key.as_bytes())
}

/// The sidecar re-wrapped with `key` (a rotation): the object itself is untouched.
pub fn rewrap(
    sidecar: &[u8],
    tenant: &str,
    object_key: &str,
    keyring: &Keyring,
    key: &TenantKey,
) -> Result<Vec<u8>, CryptoError> {
    let data_key = unwrap(sidecar, tenant, object_key, keyring)?;
    Ok(wrap(&data_key, tenant, key, object_key))
}

/// The id of the tenant key that wraps a sidecar's data key.
pub fn sidecar_key_id(sidecar: &[u8]) -> Result<String, CryptoError> {
    let sidecar: Sidecar = serde_json::from_slice(sidecar)
        .map_err(|error| CryptoError::BadSidecar(error.to_string()))?;
    Ok(sidecar.key_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_only_while_no_file_is_being_sealed() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let keyring = Arc::new(Keyring::open(dir.path()).unwrap());
        // A writer sealing a file holds a rotation back until its file is in place...
        let (guard, old) = keyring.current_for_sealing("acme").unwrap();
        let released = Arc::new(AtomicBool::new(false));
        let rotation = {
            let (keyring, released) = (keyring.clone(), released.clone());
            std::thread::spawn(move || {
                let new = keyring.rotate("acme").unwrap();
                assert!(released.load(Ordering::SeqCst), "rotated under a writer");
                new
            })
        };
        // (The pause only gives the rotation a chance to run too early.)
        std::thread::sleep(std::time::Duration::from_millis(100));
        released.store(true, Ordering::SeqCst);
        drop(guard);
        let new = rotation.join().unwrap();
        assert_ne!(new.id, old.id);
        // ...and so does one sealing under the new key hold back the retirement of old ones.
        let (guard, current) = keyring.current_for_sealing("acme").unwrap();
        assert_eq!(current.id, new.id);
        let released = Arc::new(AtomicBool::new(false));
        let writer = {
            let released = released.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(100));
                released.store(true, Ordering::SeqCst);
                drop(guard);
            })
        };
        let retired = keyring
            .retire_old_when("acme", || Ok(released.load(Ordering::SeqCst)))
            .unwrap();
        writer.join().unwrap();
        assert_eq!(retired, Some(1));
        assert!(keyring.key("acme", &old.id).is_err());
        // Not ready: nothing is dropped.
        keyring.rotate("acme").unwrap();
        assert_eq!(keyring.retire_old_when("acme", || Ok(false)).unwrap(), None);
        assert!(keyring.key("acme", &new.id).is_ok());
    }

    #[test]
    fn the_same_file_seals_to_the_same_object_and_its_companion_opens_with_its_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open(dir.path()).unwrap();
        let key = keyring.current("a").unwrap();
        let plain = b"one hour of logs".repeat(50);
        // A retried upload writes the very same bytes: a late PUT of a killed attempt
        // cannot leave an object its sidecar does not open.
        let (first, first_sidecar, data_key) = seal(&plain, "a", "a/h/obj", &key);
        let (second, second_sidecar, _) = seal(&plain, "a", "a/h/obj", &key);
        assert_eq!(first, second);
        assert_eq!(
            open(&first, &second_sidecar, "a", "a/h/obj", &keyring).unwrap(),
            plain
        );
        assert_eq!(
            open(&second, &first_sidecar, "a", "a/h/obj", &keyring).unwrap(),
            plain
        );
        // Another name or other content: another key, nothing in common.
        assert_ne!(seal(&plain, "a", "a/h/other", &key).0[8..40], first[8..40]);
        assert_ne!(
            seal(b"other content", "a", "a/h/obj", &key).0[8..40],
            first[8..40]
        );
        // The skip index travels sealed with the object's data key, under its own name.
        let companion = seal_companion(b"MNSKIP01 bits", &data_key, "a/h/obj.skip");
        assert_eq!(
            open_companion(
                &companion,
                &first_sidecar,
                "a",
                "a/h/obj",
                "a/h/obj.skip",
                &keyring
            )
            .unwrap(),
            b"MNSKIP01 bits"
        );
        assert!(open_companion(
            &companion,
            &first_sidecar,
            "a",
            "a/h/obj",
            "a/h/x.skip",
            &keyring
        )
        .is_err());
        assert!(
            open(&companion, &first_sidecar, "a", "a/h/obj", &keyring).is_err(),
            "not the object"
        );
    }

    #[test]
    fn objects_open_only_for_their_tenant_key_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open(dir.path()).unwrap();
        let a = keyring.current("a").unwrap();
        let plain = b"secret log line".repeat(100);
        let (object, sidecar, data_key) = seal(&plain, "a", "a/2026/obj", &a);
        assert!(sidecar_holds(
            &sidecar,
            "a",
            "a/2026/obj",
            &keyring,
            &data_key
        ));
        assert!(!object
            .windows(b"secret".len())
            .any(|window| window == b"secret"));
        assert_eq!(
            open(&object, &sidecar, "a", "a/2026/obj", &keyring).unwrap(),
            plain
        );
        // Another tenant's name for it, or the object under another name, does not open.
        assert!(matches!(
            open(&object, &sidecar, "b", "a/2026/obj", &keyring),
            Err(CryptoError::WrongTenant { .. })
        ));
        assert!(matches!(
            open(&object, &sidecar, "a", "a/2026/other", &keyring),
            Err(CryptoError::Decrypt)
        ));
        // Tenant b's key cannot unwrap a's data key, even with a forged sidecar naming b.
        let b = keyring.current("b").unwrap();
        let forged = String::from_utf8(sidecar.clone())
            .unwrap()
            .replace("\"tenant\":\"a\"", "\"tenant\":\"b\"")
            .replace(&a.id, &b.id);
        assert!(matches!(
            open(&object, forged.as_bytes(), "b", "a/2026/obj", &keyring),
            Err(CryptoError::Decrypt)
        ));
        // A flipped byte anywhere in the body is caught.
        let mut damaged = object.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(matches!(
            open(&damaged, &sidecar, "a", "a/2026/obj", &keyring),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn any_range_of_chunks_opens_alone_and_a_cut_or_shuffled_object_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open(dir.path()).unwrap();
        let key = keyring.current("a").unwrap();
        let chunk = CHUNK_BYTES as usize;
        for size in [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk, 3 * chunk + 17] {
            let plain: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let (object, sidecar, _) = seal(&plain, "a", "a/h/obj", &key);
            let data_key = unwrap(&sidecar, "a", "a/h/obj", &keyring).unwrap();
            assert_eq!(data_key.chunk_bytes, Some(CHUNK_BYTES));
            let layout = ChunkLayout::of_stored(object.len() as u64, CHUNK_BYTES).unwrap();
            assert_eq!(layout.plain_bytes, size as u64, "size {size}");
            assert_eq!(
                open(&object, &sidecar, "a", "a/h/obj", &keyring).unwrap(),
                plain
            );
            // Every run of chunks opens from its own bytes, as a ranged GET fetches them.
            for first in 0..layout.chunks() {
                for end in first + 1..=layout.chunks() {
                    let sealed = layout.sealed_range(&(first..end));
                    let opened = open_chunks(
                        &object[sealed.start as usize..sealed.end as usize],
                        first..end,
                        &layout,
                        &data_key,
                        "a/h/obj",
                    )
                    .unwrap();
                    let start = layout.plain_range(first).start as usize;
                    let stop = layout.plain_range(end - 1).end as usize;
                    assert_eq!(
                        opened,
                        plain[start..stop],
                        "size {size}, chunks {first}..{end}"
                    );
                }
            }
            // The chunks holding a byte range are the ones a read must fetch.
            if size > chunk {
                let range = (chunk as u64 - 1)..(chunk as u64 + 1);
                assert_eq!(layout.chunks_of(&range), 0..2);
            }
        }

        let plain = vec![7u8; 3 * chunk];
        let (object, sidecar, _) = seal(&plain, "a", "a/h/obj", &key);
        let data_key = unwrap(&sidecar, "a", "a/h/obj", &keyring).unwrap();
        // Cut after a whole chunk: the layout is valid, but the new last chunk was not sealed
        // as the last one.
        let cut = &object[..object.len() - (chunk + 16)];
        assert!(matches!(
            open(cut, &sidecar, "a", "a/h/obj", &keyring),
            Err(CryptoError::Decrypt)
        ));
        // Two chunks swapped: each is checked against its place.
        let layout = ChunkLayout::of_stored(object.len() as u64, CHUNK_BYTES).unwrap();
        let (first, second) = (layout.sealed_range(&(0..1)), layout.sealed_range(&(1..2)));
        let mut swapped = object.clone();
        swapped[first.start as usize..first.end as usize]
            .copy_from_slice(&object[second.start as usize..second.end as usize]);
        swapped[second.start as usize..second.end as usize]
            .copy_from_slice(&object[first.start as usize..first.end as usize]);
        assert!(open(&swapped, &sidecar, "a", "a/h/obj", &keyring).is_err());
        // A chunk read under another object's name does not open.
        assert!(matches!(
            open_chunks(
                &object[first.start as usize..first.end as usize],
                0..1,
                &layout,
                &data_key,
                "a/h/other"
            ),
            Err(CryptoError::Decrypt)
        ));
        // A sidecar that lies about the chunk size opens nothing.
        let lying = String::from_utf8(sidecar.clone())
            .unwrap()
            .replace("\"chunkBytes\":65536", "\"chunkBytes\":4096");
        assert!(open(&object, lying.as_bytes(), "a", "a/h/obj", &keyring).is_err());
    }

    #[test]
    fn objects_sealed_whole_before_chunks_still_open_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open(dir.path()).unwrap();
        let key = keyring.current("a").unwrap();
        let plain = b"archived last year".repeat(10_000);
        let (object, sidecar, _) = seal_whole(&plain, "a", "a/h/old", &key);
        assert!(object.starts_with(OBJECT_MAGIC));
        assert!(!String::from_utf8_lossy(&sidecar).contains("chunkBytes"));
        assert_eq!(
            unwrap(&sidecar, "a", "a/h/old", &keyring)
                .unwrap()
                .chunk_bytes,
            None
        );
        assert_eq!(
            open(&object, &sidecar, "a", "a/h/old", &keyring).unwrap(),
            plain
        );
        let new = keyring.rotate("a").unwrap();
        let rewrapped = rewrap(&sidecar, "a", "a/h/old", &keyring, &new).unwrap();
        assert_eq!(
            open(&object, &rewrapped, "a", "a/h/old", &keyring).unwrap(),
            plain
        );
        // A rotation keeps a chunked object's chunk size in its sidecar.
        let (chunked, chunked_sidecar, _) = seal(&plain, "a", "a/h/new", &new);
        let newer = keyring.rotate("a").unwrap();
        let rewrapped = rewrap(&chunked_sidecar, "a", "a/h/new", &keyring, &newer).unwrap();
        assert_eq!(
            unwrap(&rewrapped, "a", "a/h/new", &keyring)
                .unwrap()
                .chunk_bytes,
            Some(CHUNK_BYTES)
        );
        assert_eq!(
            open(&chunked, &rewrapped, "a", "a/h/new", &keyring).unwrap(),
            plain
        );
    }

    #[test]
    fn rotation_rewraps_without_touching_the_object() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open(dir.path()).unwrap();
        let old = keyring.current("a").unwrap();
        let (object, sidecar, _) = seal(b"hello", "a", "k", &old);
        let new = keyring.rotate("a").unwrap();
        assert_ne!(old.id, new.id);
        assert_eq!(keyring.current("a").unwrap().id, new.id);
        // Old objects stay readable after the rotation, before their re-wrap.
        assert_eq!(
            open(&object, &sidecar, "a", "k", &keyring).unwrap(),
            b"hello"
        );
        let rewrapped = rewrap(&sidecar, "a", "k", &keyring, &new).unwrap();
        assert_eq!(sidecar_key_id(&rewrapped).unwrap(), new.id);
        assert_eq!(keyring.retire_old("a").unwrap(), 1);
        assert_eq!(
            open(&object, &rewrapped, "a", "k", &keyring).unwrap(),
            b"hello"
        );
        assert!(matches!(
            open(&object, &sidecar, "a", "k", &keyring),
            Err(CryptoError::UnknownKey { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("a.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        keyring.purge("a").unwrap();
        assert!(open(&object, &rewrapped, "a", "k", &keyring).is_err());
    }
}
