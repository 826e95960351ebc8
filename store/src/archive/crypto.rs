//! Envelope encryption of archived objects.
//!
//! Every object gets a fresh random 256-bit data key and is sealed whole with AES-256-GCM; the
//! object's key (its path in the bucket) is the associated data, so an object copied under
//! another tenant's prefix or name does not open. The data key is wrapped (AES-256-GCM again)
//! by the tenant's key and stored next to the object as a small sidecar object (`….key`) with
//! the tenant key's id. Rotating a tenant's key rewrites only those sidecars, never the
//! objects, and old objects stay readable throughout.
//!
//! Why whole objects rather than Parquet modular encryption: an archived object is one
//! compacted hour of one tenant (a few MB), a query that needs it reads nearly every column of
//! it anyway (the filters run on `msg`), and fetched objects are kept decrypted in a bounded
//! local cache, so a range read would save little on the first read and nothing after.
//! Measured in bench/archive: cold ÷ hot query time (see the README's benchmark table).
//!
//! Tenant keys live in a key directory, one file per tenant (`TENANT.json`, mode 0600),
//! created on first use; the directory can be a mounted Secret.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use parking_lot::Mutex;
use ring::{digest, hmac};
use serde::{Deserialize, Serialize};

/// The first bytes of every archived object.
pub const OBJECT_MAGIC: &[u8; 8] = b"MNSARC1\n";
const NONCE_BYTES: usize = 12;
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
    let key: [u8; KEY_BYTES] = Aes256Gcm::generate_key(&mut OsRng).into();
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

fn wrap(data_key: &[u8; KEY_BYTES], tenant: &str, key: &TenantKey, object_key: &str) -> Vec<u8> {
    let mut wrapped = Vec::new();
    aead_seal(&key.key, data_key, &sidecar_aad(object_key), &mut wrapped);
    let sidecar = Sidecar {
        format: 1,
        tenant: tenant.to_string(),
        key_id: key.id.clone(),
        wrapped: BASE64.encode(wrapped),
    };
    serde_json::to_vec(&sidecar).expect("a sidecar serializes")
}

fn unwrap(
    sidecar: &[u8],
    tenant: &str,
    object_key: &str,
    keyring: &Keyring,
) -> Result<[u8; KEY_BYTES], CryptoError> {
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
    aead_open(&key.key, &wrapped, &sidecar_aad(object_key))?
        .try_into()
        .map_err(|_| CryptoError::BadSidecar("the data key is not 32 bytes".into()))
}

/// An object's data key, kept by the uploader to check the sidecar that reached the target.
pub struct DataKey([u8; KEY_BYTES]);

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
    let content = digest::digest(&digest::SHA256, plain);
    let derive = |secret: &[u8], label: &[u8], parts: &[&[u8]]| {
        let mut context = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, secret));
        context.update(label);
        for part in parts {
            context.update(&(part.len() as u64).to_le_bytes());
            context.update(part);
        }
        context.sign()
    };
    let tag = derive(
        &key.key,
        b"meniscus archive data key v1",
        &[tenant.as_bytes(), object_key.as_bytes(), content.as_ref()],
    );
    let mut data_key = [0u8; KEY_BYTES];
    data_key.copy_from_slice(&tag.as_ref()[..KEY_BYTES]);
    let nonce_tag = derive(&data_key, b"meniscus archive nonce v1", &[]);
    let nonce = Nonce::from_slice(&nonce_tag.as_ref()[..NONCE_BYTES]);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&data_key));
    // Encryption with a valid key and nonce only fails for inputs over 64 GiB.
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
    (object, sidecar, DataKey(data_key))
}

/// Whether `sidecar` opens, with a key the tenant still has, to `data_key`.
pub fn sidecar_holds(
    sidecar: &[u8],
    tenant: &str,
    object_key: &str,
    keyring: &Keyring,
    data_key: &DataKey,
) -> bool {
    unwrap(sidecar, tenant, object_key, keyring).is_ok_and(|key| key == data_key.0)
}

/// `data_key` wrapped again with `key`, as a sidecar.
pub fn wrap_again(data_key: &DataKey, tenant: &str, key: &TenantKey, object_key: &str) -> Vec<u8> {
    wrap(&data_key.0, tenant, key, object_key)
}

/// Opens the object `object_key` of `tenant` with its sidecar.
pub fn open(
    object: &[u8],
    sidecar: &[u8],
    tenant: &str,
    object_key: &str,
    keyring: &Keyring,
) -> Result<Vec<u8>, CryptoError> {
    let body = object
        .strip_prefix(OBJECT_MAGIC.as_slice())
        .ok_or(CryptoError::NotAnObject)?;
    let data_key = unwrap(sidecar, tenant, object_key, keyring)?;
    aead_open(&data_key, body, object_key.as_bytes())
}

/// Seals a companion of an object (its skip index) with the object's data key, bound to the
/// companion's own name: it opens with the object's sidecar, so a key rotation (which
/// re-wraps only sidecars) keeps it readable, and it cannot pass for the object or another
/// object's companion.
pub fn seal_companion(plain: &[u8], data_key: &DataKey, companion_key: &str) -> Vec<u8> {
    let mut sealed = Vec::with_capacity(plain.len() + OBJECT_MAGIC.len() + NONCE_BYTES + 16);
    sealed.extend_from_slice(OBJECT_MAGIC);
    aead_seal(&data_key.0, plain, companion_key.as_bytes(), &mut sealed);
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
    aead_open(&data_key, body, companion_key.as_bytes())
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
