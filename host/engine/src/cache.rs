//! Compiled modules kept on disk between processes, and trusted only when
//! this user's key vouches for them.
//!
//! Loading compiled code skips Cranelift, which is most of a cold start,
//! but compiled code runs as it is: whoever can write a cache entry could
//! run anything inside the host. So every entry carries an HMAC-SHA256,
//! over the module's digest, the engine's compatibility tag and the code,
//! made with a key that only this user can read. An entry whose tag does
//! not verify is ignored and replaced, never loaded.
//!
//! Layout: `<dir>/key` (32 random bytes, mode 0600) and one
//! `<dir>/<sha256>-<tag>.cwasm` per module and engine setting, holding the
//! tag's MAC then the code. Entries are written atomically.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::Digest;

type HmacSha256 = Hmac<Sha256>;

/// The length of an entry's MAC.
const MAC_LEN: usize = 32;

/// Why a cache directory cannot be used; the engine then compiles as if
/// there were none.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The directory or key cannot be created or read.
    #[error("cannot use the code cache at {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key file can be read or written by other users.
    #[error(
        "the code cache key {path} is readable or writable by other users (mode {mode:o}); \
         remove the cache directory or `chmod 600` the key"
    )]
    OpenKey {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file is not a key.
    #[error("the code cache key {path} is damaged; remove it and the cache starts again")]
    BadKey {
        /// The key file.
        path: PathBuf,
    },
}

/// A secret key that vouches for compiled code: code is loaded only with a
/// MAC this key made, over the module's digest, the engine's compatibility
/// tag and the code. The disk cache keeps its key in a private file; a
/// shared store (the job storage that runtime containers share) gets its
/// key from the action's deployment.
#[derive(Clone)]
pub struct CodeSeal {
    key: [u8; 32],
}

impl std::fmt::Debug for CodeSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeSeal(***)")
    }
}

impl CodeSeal {
    /// A fresh random key.
    ///
    /// # Errors
    ///
    /// When the system's random source cannot be read.
    pub fn generate() -> std::io::Result<Self> {
        new_key().map(|key| Self { key })
    }

    /// The key written as 64 hex digits, if `text` is one.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = hex::decode(text.trim()).ok()?;
        Some(Self {
            key: bytes.try_into().ok()?,
        })
    }

    /// The key as 64 hex digits, to hand to whoever shares it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.key)
    }

    fn mac(&self, digest: &Digest, tag: &str, code: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(digest.to_string().as_bytes());
        mac.update(b"\0");
        mac.update(tag.as_bytes());
        mac.update(b"\0");
        mac.update(code);
        mac
    }

    /// The code with its MAC in front, as kept in a cache or a store.
    pub(crate) fn seal(&self, digest: &Digest, tag: &str, code: &[u8]) -> Vec<u8> {
        let mac = self.mac(digest, tag, code).finalize().into_bytes();
        let mut sealed = Vec::with_capacity(MAC_LEN + code.len());
        sealed.extend_from_slice(&mac);
        sealed.extend_from_slice(code);
        sealed
    }

    /// The code inside `sealed`, if its MAC verifies.
    pub(crate) fn open<'a>(
        &self,
        digest: &Digest,
        tag: &str,
        sealed: &'a [u8],
    ) -> Option<&'a [u8]> {
        if sealed.len() < MAC_LEN {
            return None;
        }
        let (mac, code) = sealed.split_at(MAC_LEN);
        self.mac(digest, tag, code)
            .verify_slice(mac)
            .ok()
            .map(|()| code)
    }
}

/// A directory of authenticated compiled modules.
pub struct CodeCache {
    dir: PathBuf,
    seal: CodeSeal,
}

impl std::fmt::Debug for CodeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl CodeCache {
    /// The cache in `dir`, created with a fresh key if it is new.
    ///
    /// # Errors
    ///
    /// When the directory cannot be made, or its key is unreadable,
    /// damaged or open to other users.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let dir = dir.into();
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| CacheError::Io { path, source }
        };
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let key_path = dir.join("key");
        let key = match fs::read(&key_path) {
            Ok(bytes) => {
                check_private(&key_path)?;
                <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| CacheError::BadKey {
                    path: key_path.clone(),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = new_key().map_err(io(&key_path))?;
                write_private(&key_path, &key).map_err(io(&key_path))?;
                // Two processes may have raced to create it: the one on
                // disk is the key.
                let stored = fs::read(&key_path).map_err(io(&key_path))?;
                <[u8; 32]>::try_from(stored.as_slice()).map_err(|_| CacheError::BadKey {
                    path: key_path.clone(),
                })?
            }
            Err(e) => return Err(io(&key_path)(e)),
        };
        Ok(Self {
            dir,
            seal: CodeSeal { key },
        })
    }

    /// The default place: `$WISP_CODE_CACHE`, else `~/.wisp/cache/code`;
    /// `None` when `WISP_CODE_CACHE` is `off` or there is no home.
    pub fn default_dir() -> Option<PathBuf> {
        match std::env::var_os("WISP_CODE_CACHE") {
            Some(v) if v == "off" || v == "0" || v == "false" => None,
            Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
            _ => std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".wisp").join("cache").join("code")),
        }
    }

    fn entry(&self, digest: &Digest, tag: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{tag}.cwasm"))
    }

    /// The compiled code of `digest` for engines of `tag`, if an entry is
    /// there and its MAC verifies.
    pub(crate) fn get(&self, digest: &Digest, tag: &str) -> Option<Vec<u8>> {
        let path = self.entry(digest, tag);
        let bytes = fs::read(&path).ok()?;
        match self.seal.open(digest, tag, &bytes) {
            Some(code) => Some(code.to_vec()),
            None => {
                tracing::warn!(path = %path.display(), "ignoring a cached module whose MAC does not verify");
                None
            }
        }
    }

    /// Stores compiled code, tagged; failures are logged and forgotten,
    /// since the cache only saves time.
    pub(crate) fn put(&self, digest: &Digest, tag: &str, code: &[u8]) {
        let path = self.entry(digest, tag);
        let sealed = self.seal.seal(digest, tag, code);
        let tmp = self
            .dir
            .join(format!(".{digest}-{}.tmp", fastrand_suffix()));
        let written = (|| {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&sealed)?;
            file.sync_data()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            tracing::debug!(path = %path.display(), "cannot cache the compiled module: {e}");
        }
    }
}

fn fastrand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{:x}{nanos:x}", std::process::id())
}

fn new_key() -> std::io::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    let mut random = fs::File::open("/dev/urandom")?;
    std::io::Read::read_exact(&mut random, &mut key)?;
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, key: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(key)?;
            file.sync_all()
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn write_private(path: &Path, key: &[u8]) -> std::io::Result<()> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut file) => file.write_all(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), CacheError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|source| CacheError::Io {
            path: path.to_owned(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(CacheError::OpenKey {
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path) -> Result<(), CacheError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_tampering_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = CodeCache::open(dir.path().join("code")).expect("opens");
        let digest = Digest::of(b"module");
        cache.put(&digest, "t1", b"compiled code");
        assert_eq!(
            cache.get(&digest, "t1").as_deref(),
            Some(&b"compiled code"[..])
        );
        assert_eq!(cache.get(&digest, "t2"), None, "another engine's tag");
        // Another process with the same key reads it too.
        let again = CodeCache::open(dir.path().join("code")).expect("opens");
        assert_eq!(
            again.get(&digest, "t1").as_deref(),
            Some(&b"compiled code"[..])
        );
        // A flipped byte in the code, or an entry written by someone
        // without the key, is not loaded.
        let path = cache.entry(&digest, "t1");
        let mut bytes = fs::read(&path).expect("entry");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).expect("tamper");
        assert_eq!(cache.get(&digest, "t1"), None);
        let other = CodeCache::open(dir.path().join("other")).expect("opens");
        other.put(&digest, "t1", b"evil code");
        fs::copy(other.entry(&digest, "t1"), &path).expect("plant");
        assert_eq!(cache.get(&digest, "t1"), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_key_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let code = dir.path().join("code");
        CodeCache::open(&code).expect("opens");
        let key = code.join("key");
        assert_eq!(
            fs::metadata(&key).expect("key").permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = CodeCache::open(&code).expect_err("refused");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
