//! Configuration: one YAML file, environment overrides, and defaults that
//! need no file at all.
//!
//! The file is `~/.wisp/config.yaml`, or the path in `WISP_CONFIG`. Its
//! sections are named as Lithops users know them:
//!
//! ```yaml
//! wisp:
//!   backend: localhost        # where calls run
//!   storage: localhost        # where jobs meet
//!   data_cleaner: true        # remove a job's data when its executor closes
//! localhost:
//!   workers: 8                # calls at once; default: one per core
//!   runtime_memory: 256       # MB per call
//!   runtime_timeout: 300      # seconds per call
//!   storage_dir: ~/.wisp/storage
//!   storage_bucket: wisp-data
//! minio:                      # also aws_s3 and ceph, with the same keys
//!   endpoint: http://127.0.0.1:9000
//!   access_key_id: minioadmin       # default: AWS_ACCESS_KEY_ID
//!   secret_access_key: minioadmin   # default: AWS_SECRET_ACCESS_KEY
//!   storage_bucket: wisp-data
//!   region: us-east-1
//!   create_bucket: false      # create the bucket when it is missing
//! openwhisk:
//!   endpoint: https://openwhisk.example.org
//!   namespace: _              # `_`: the namespace of the key
//!   api_key: <uuid>:<secret>
//!   insecure: false           # accept a self-signed certificate
//!   runtime: default          # or an image such as 127.0.0.1:5000/me/wisp-runtime:0.1
//!   runtime_memory: 256       # MB per action container
//!   runtime_timeout: 300      # seconds per activation
//!   runtime_concurrency: 4    # activations at once in one container
//!   docker_server: 127.0.0.1:5000   # the registry runtime images are pushed to
//!   docker_user: me
//!   docker_password: ...
//! ```
//!
//! Each key can be overridden by an environment variable: `WISP_BACKEND`,
//! `WISP_STORAGE`, `WISP_DATA_CLEANER`, `WISP_WORKERS`,
//! `WISP_RUNTIME_MEMORY`, `WISP_RUNTIME_TIMEOUT`, `WISP_STORAGE_DIR`,
//! `WISP_STORAGE_BUCKET`, and for OpenWhisk `WISP_OPENWHISK_ENDPOINT`,
//! `WISP_OPENWHISK_NAMESPACE`, `WISP_OPENWHISK_API_KEY`, `WISP_RUNTIME`,
//! `WISP_DOCKER_SERVER`, `WISP_DOCKER_USER`, `WISP_DOCKER_PASSWORD`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// Where the calls of a job run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// In this process, on a pool of one worker per core.
    Localhost,
    /// On Apache OpenWhisk, as activations of wisp's runtime image.
    Openwhisk,
}

/// Where a job's module, arguments and outcomes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageKind {
    /// A directory on this machine.
    Localhost,
    /// A MinIO server.
    Minio,
    /// Amazon S3.
    AwsS3,
    /// Ceph's object gateway.
    Ceph,
}

impl FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_yaml::from_str(s).map_err(|_| "expected `localhost` or `openwhisk`".to_owned())
    }
}

impl FromStr for StorageKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_yaml::from_str(s)
            .map_err(|_| "expected `localhost`, `minio`, `aws_s3` or `ceph`".to_owned())
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Localhost => "localhost",
            Self::Openwhisk => "openwhisk",
        })
    }
}

impl fmt::Display for StorageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Localhost => "localhost",
            Self::Minio => "minio",
            Self::AwsS3 => "aws_s3",
            Self::Ceph => "ceph",
        })
    }
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where calls run.
    pub backend: BackendKind,
    /// Where jobs meet.
    pub storage: StorageKind,
    /// Whether an executor removes its jobs' data when it closes.
    pub data_cleaner: bool,
    /// How many calls the localhost backend runs at once.
    pub workers: usize,
    /// Memory limit of each call, in MB (2^20 bytes).
    pub runtime_memory: u64,
    /// Time limit of each call.
    pub runtime_timeout: Duration,
    /// The directory of local storage.
    pub storage_dir: PathBuf,
    /// The bucket that holds wisp's objects.
    pub storage_bucket: String,
    /// The `minio` section.
    pub minio: Option<S3Section>,
    /// The `aws_s3` section.
    pub aws_s3: Option<S3Section>,
    /// The `ceph` section.
    pub ceph: Option<S3Section>,
    /// The `openwhisk` section.
    pub openwhisk: OpenWhiskSection,
    /// Where compiled modules are kept between processes (see
    /// `wisp_engine::CodeCache`); `None` compiles every module in every
    /// process. Default: `~/.wisp/cache/code`, or `WISP_CODE_CACHE`
    /// (`off` for none).
    pub code_cache: Option<PathBuf>,
    /// The file the configuration came from, if any.
    pub source: Option<PathBuf>,
}

/// The default memory limit of a call, in MB.
pub const DEFAULT_RUNTIME_MEMORY: u64 = 256;
/// The default time limit of a call, in seconds.
pub const DEFAULT_RUNTIME_TIMEOUT: u64 = 300;
/// The memory limits a call may be given, in MB: a 32-bit module addresses
/// 4 GiB at most.
pub const MEMORY_RANGE: std::ops::RangeInclusive<u64> = 1..=4096;
/// The time limits a call may be given, in seconds (up to a day).
pub const TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 1..=86_400;

/// The default bucket.
pub const DEFAULT_BUCKET: &str = "wisp-data";

impl Default for Config {
    fn default() -> Self {
        Self {
            backend: BackendKind::Localhost,
            storage: StorageKind::Localhost,
            data_cleaner: true,
            workers: default_workers(),
            runtime_memory: DEFAULT_RUNTIME_MEMORY,
            runtime_timeout: Duration::from_secs(DEFAULT_RUNTIME_TIMEOUT),
            storage_dir: home().join(".wisp").join("storage"),
            storage_bucket: DEFAULT_BUCKET.to_owned(),
            minio: None,
            aws_s3: None,
            ceph: None,
            openwhisk: OpenWhiskSection::default(),
            code_cache: wisp_engine::CodeCache::default_dir(),
            source: None,
        }
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("the config file {path} is invalid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key and position where known.
        message: String,
    },
    /// An environment variable has a bad value.
    #[error("environment variable {var}={value:?} is invalid: {expected}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// A value is out of range.
    #[error("{key} in {place} is invalid: {expected}")]
    Value {
        /// The key.
        key: &'static str,
        /// The file or variable it came from.
        place: String,
        /// What was expected.
        expected: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename = "wisp config (a mapping of sections: wisp, localhost, minio, aws_s3, ceph, openwhisk)"
)]
struct File {
    #[serde(default)]
    wisp: WispSection,
    #[serde(default)]
    localhost: LocalhostSection,
    minio: Option<S3Section>,
    aws_s3: Option<S3Section>,
    ceph: Option<S3Section>,
    #[serde(default)]
    openwhisk: OpenWhiskSection,
}

/// The `openwhisk` section: the platform, the runtime image and the
/// registry it is pushed to.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenWhiskSection {
    /// The API host, such as `https://openwhisk.example.org`.
    pub endpoint: Option<String>,
    /// The namespace; `_` (the default) is the key's own.
    pub namespace: Option<String>,
    /// The API key, `uuid:secret`.
    pub api_key: Option<String>,
    /// Accept a certificate that does not verify. Default: false.
    #[serde(default)]
    pub insecure: bool,
    /// The runtime image, or `default`.
    pub runtime: Option<String>,
    /// Memory of each action container, in MB.
    pub runtime_memory: Option<u64>,
    /// Time limit of each activation, in seconds.
    pub runtime_timeout: Option<u64>,
    /// How many activations one container runs at once. Default: 1.
    pub runtime_concurrency: Option<u32>,
    /// How many calls one activation runs. Default: chosen per job.
    pub calls_per_activation: Option<u32>,
    /// The registry runtime images are pushed to, such as
    /// `127.0.0.1:5000`. Default: Docker Hub.
    pub docker_server: Option<String>,
    /// The registry's user.
    pub docker_user: Option<String>,
    /// The registry's password or token.
    pub docker_password: Option<String>,
}

impl fmt::Debug for OpenWhiskSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = |secret: &Option<String>| secret.as_ref().map(|_| "********");
        f.debug_struct("OpenWhiskSection")
            .field("endpoint", &self.endpoint)
            .field("namespace", &self.namespace)
            .field("api_key", &masked(&self.api_key))
            .field("insecure", &self.insecure)
            .field("runtime", &self.runtime)
            .field("runtime_memory", &self.runtime_memory)
            .field("runtime_timeout", &self.runtime_timeout)
            .field("runtime_concurrency", &self.runtime_concurrency)
            .field("calls_per_activation", &self.calls_per_activation)
            .field("docker_server", &self.docker_server)
            .field("docker_user", &self.docker_user)
            .field("docker_password", &masked(&self.docker_password))
            .finish()
    }
}

/// The `minio`, `aws_s3` and `ceph` sections: one S3 client serves all
/// three.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Section {
    /// The service's URL; AWS S3 needs none.
    pub endpoint: Option<String>,
    /// The region. Default: `AWS_REGION`, or us-east-1.
    pub region: Option<String>,
    /// The access key id. Default: `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// The secret key. Default: `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// A session token, for temporary credentials.
    pub session_token: Option<String>,
    /// The bucket that holds wisp's objects and that functions may reach.
    pub storage_bucket: Option<String>,
    /// Create the bucket if it does not exist. Default: false.
    #[serde(default)]
    pub create_bucket: bool,
}

impl fmt::Debug for S3Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = |secret: &Option<String>| secret.as_ref().map(|_| "********");
        f.debug_struct("S3Section")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &masked(&self.secret_access_key))
            .field("session_token", &masked(&self.session_token))
            .field("storage_bucket", &self.storage_bucket)
            .field("create_bucket", &self.create_bucket)
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WispSection {
    backend: Option<BackendKind>,
    storage: Option<StorageKind>,
    data_cleaner: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalhostSection {
    workers: Option<usize>,
    runtime_memory: Option<u64>,
    runtime_timeout: Option<u64>,
    storage_dir: Option<PathBuf>,
    storage_bucket: Option<String>,
}

impl Config {
    /// The section of the selected S3 storage, if S3 storage is selected
    /// (an empty one if the file has none: credentials may come from the
    /// environment).
    pub fn s3_section(&self) -> Option<S3Section> {
        let section = match self.storage {
            StorageKind::Localhost => return None,
            StorageKind::Minio => &self.minio,
            StorageKind::AwsS3 => &self.aws_s3,
            StorageKind::Ceph => &self.ceph,
        };
        Some(section.clone().unwrap_or_default())
    }

    /// The bucket that holds wisp's objects: the S3 section's
    /// `storage_bucket` for S3 storage, else `localhost.storage_bucket`.
    pub fn bucket(&self) -> String {
        self.s3_section()
            .and_then(|s| s.storage_bucket)
            .unwrap_or_else(|| self.storage_bucket.clone())
    }

    /// Loads the configuration: the file named by `WISP_CONFIG`, else
    /// `~/.wisp/config.yaml` if it exists, else the defaults; then the
    /// environment overrides.
    ///
    /// # Errors
    ///
    /// When the file or an override is invalid; the error names the file,
    /// the key and what is expected.
    pub fn load() -> Result<Self, ConfigError> {
        let path = match std::env::var_os("WISP_CONFIG") {
            Some(path) => Some(PathBuf::from(path)),
            None => {
                let default = home().join(".wisp").join("config.yaml");
                default.is_file().then_some(default)
            }
        };
        let mut config = match &path {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        // An empty variable is an unset one: `WISP_STORAGE_DIR=` must not
        // mean the current directory.
        config.apply_env(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))?;
        config.check()?;
        Ok(config)
    }

    /// Reads a config file, without environment overrides.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or is invalid.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::from_yaml(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        // A relative directory in the file is relative to the file.
        if config.storage_dir.is_relative()
            && let Some(dir) = path.parent()
        {
            config.storage_dir = dir.join(&config.storage_dir);
        }
        config.source = Some(path.to_owned());
        Ok(config)
    }

    fn from_yaml(text: &str) -> Result<Self, String> {
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| e.to_string())?
        };
        let mut config = Self::default();
        let WispSection {
            backend,
            storage,
            data_cleaner,
        } = file.wisp;
        config.backend = backend.unwrap_or(config.backend);
        config.storage = storage.unwrap_or(config.storage);
        config.data_cleaner = data_cleaner.unwrap_or(config.data_cleaner);
        let local = file.localhost;
        config.workers = local.workers.unwrap_or(config.workers);
        config.runtime_memory = local.runtime_memory.unwrap_or(config.runtime_memory);
        if let Some(seconds) = local.runtime_timeout {
            config.runtime_timeout = Duration::from_secs(seconds);
        }
        if let Some(dir) = local.storage_dir {
            config.storage_dir = expand_home(&dir);
        }
        config.storage_bucket = local.storage_bucket.unwrap_or(config.storage_bucket);
        config.minio = file.minio;
        config.aws_s3 = file.aws_s3;
        config.ceph = file.ceph;
        // On OpenWhisk, memory and time are the action's: its section's
        // values apply when it is the backend.
        if config.backend == BackendKind::Openwhisk {
            if let Some(memory) = file.openwhisk.runtime_memory {
                config.runtime_memory = memory;
            }
            if let Some(seconds) = file.openwhisk.runtime_timeout {
                config.runtime_timeout = Duration::from_secs(seconds);
            }
        }
        config.openwhisk = file.openwhisk;
        Ok(config)
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: FromStr>(
            var: &'static str,
            value: String,
            expected: &str,
        ) -> Result<T, ConfigError> {
            value.trim().parse().map_err(|_| ConfigError::Env {
                var,
                value,
                expected: expected.to_owned(),
            })
        }
        if let Some(v) = var("WISP_BACKEND") {
            self.backend = v.parse().map_err(|expected| ConfigError::Env {
                var: "WISP_BACKEND",
                value: v,
                expected,
            })?;
        }
        if let Some(v) = var("WISP_STORAGE") {
            self.storage = v.parse().map_err(|expected| ConfigError::Env {
                var: "WISP_STORAGE",
                value: v,
                expected,
            })?;
        }
        if let Some(v) = var("WISP_DATA_CLEANER") {
            self.data_cleaner = parse("WISP_DATA_CLEANER", v, "`true` or `false`")?;
        }
        fn ranged(
            var: &'static str,
            value: String,
            range: std::ops::RangeInclusive<u64>,
            unit: &str,
        ) -> Result<u64, ConfigError> {
            let expected = format!("{unit} from {} to {}", range.start(), range.end());
            let number: u64 = parse(var, value.clone(), &expected)?;
            if range.contains(&number) {
                Ok(number)
            } else {
                Err(ConfigError::Env {
                    var,
                    value,
                    expected,
                })
            }
        }
        if let Some(v) = var("WISP_WORKERS") {
            self.workers = ranged("WISP_WORKERS", v, 1..=4096, "a number of workers")? as usize;
        }
        if let Some(v) = var("WISP_RUNTIME_MEMORY") {
            self.runtime_memory = ranged("WISP_RUNTIME_MEMORY", v, MEMORY_RANGE, "megabytes")?;
        }
        if let Some(v) = var("WISP_RUNTIME_TIMEOUT") {
            let seconds = ranged("WISP_RUNTIME_TIMEOUT", v, TIMEOUT_RANGE, "seconds")?;
            self.runtime_timeout = Duration::from_secs(seconds);
        }
        if let Some(v) = var("WISP_STORAGE_DIR") {
            self.storage_dir = expand_home(Path::new(&v));
        }
        let ow = &mut self.openwhisk;
        for (name, slot) in [
            ("WISP_OPENWHISK_ENDPOINT", &mut ow.endpoint),
            ("WISP_OPENWHISK_NAMESPACE", &mut ow.namespace),
            ("WISP_OPENWHISK_API_KEY", &mut ow.api_key),
            ("WISP_RUNTIME", &mut ow.runtime),
            ("WISP_DOCKER_SERVER", &mut ow.docker_server),
            ("WISP_DOCKER_USER", &mut ow.docker_user),
            ("WISP_DOCKER_PASSWORD", &mut ow.docker_password),
        ] {
            if let Some(v) = var(name) {
                *slot = Some(v);
            }
        }
        if let Some(v) = var("WISP_STORAGE_BUCKET") {
            wisp_storage::validate_bucket(&v).map_err(|e| ConfigError::Env {
                var: "WISP_STORAGE_BUCKET",
                value: v.clone(),
                expected: e.to_string(),
            })?;
            self.storage_bucket = v;
        }
        Ok(())
    }

    /// Checks that the values are usable.
    ///
    /// # Errors
    ///
    /// When one is out of range.
    pub fn check(&self) -> Result<(), ConfigError> {
        let place = || {
            self.source.as_ref().map_or_else(
                || "the executor's settings".to_owned(),
                |p| format!("{} (or the settings that override it)", p.display()),
            )
        };
        if !(1..=4096).contains(&self.workers) {
            return Err(ConfigError::Value {
                key: "localhost.workers",
                place: place(),
                expected: "a number of workers from 1 to 4096".to_owned(),
            });
        }
        let section = match self.backend {
            BackendKind::Localhost => "localhost",
            BackendKind::Openwhisk => "openwhisk",
        };
        if !MEMORY_RANGE.contains(&self.runtime_memory) {
            return Err(ConfigError::Value {
                key: if section == "localhost" {
                    "localhost.runtime_memory"
                } else {
                    "openwhisk.runtime_memory"
                },
                place: place(),
                expected: format!(
                    "between 1 and 4096 MB (a 32-bit module addresses 4 GiB at most); got {}",
                    self.runtime_memory
                ),
            });
        }
        if self.runtime_timeout.is_zero() || self.runtime_timeout.as_secs() > *TIMEOUT_RANGE.end() {
            return Err(ConfigError::Value {
                key: "runtime_timeout",
                place: place(),
                expected: format!("from 1 to {} seconds", TIMEOUT_RANGE.end()),
            });
        }
        wisp_storage::validate_bucket(&self.bucket()).map_err(|e| ConfigError::Value {
            key: "storage_bucket",
            place: place(),
            expected: e.to_string(),
        })?;
        Ok(())
    }
}

/// The environment variables that override keys of the file.
pub const ENV_OVERRIDES: [&str; 17] = [
    "WISP_BACKEND",
    "WISP_STORAGE",
    "WISP_DATA_CLEANER",
    "WISP_WORKERS",
    "WISP_RUNTIME_MEMORY",
    "WISP_RUNTIME_TIMEOUT",
    "WISP_STORAGE_DIR",
    "WISP_STORAGE_BUCKET",
    "WISP_OPENWHISK_ENDPOINT",
    "WISP_OPENWHISK_NAMESPACE",
    "WISP_OPENWHISK_API_KEY",
    "WISP_RUNTIME",
    "WISP_DOCKER_SERVER",
    "WISP_DOCKER_USER",
    "WISP_DOCKER_PASSWORD",
    "WISP_CONFIG",
    "WISP_LOG",
];

/// What a secret shows as.
pub const MASK: &str = "********";

impl Config {
    /// The overrides in [`ENV_OVERRIDES`] that are set (and not empty) in
    /// this process's environment, `WISP_CONFIG` and `WISP_LOG` aside.
    pub fn env_overrides() -> Vec<&'static str> {
        ENV_OVERRIDES
            .iter()
            .copied()
            .filter(|var| !matches!(*var, "WISP_CONFIG" | "WISP_LOG"))
            .filter(|var| std::env::var(var).is_ok_and(|v| !v.trim().is_empty()))
            .collect()
    }

    /// The configuration as YAML in the layout of the file, every secret
    /// (`secret_access_key`, `session_token`, `api_key`,
    /// `docker_password`) shown as [`MASK`]. Sections the file does not
    /// have and keys that are not set are left out.
    pub fn to_masked_yaml(&self) -> String {
        use serde_yaml::{Mapping, Value};
        fn put(map: &mut Mapping, key: &str, value: impl Into<Value>) {
            map.insert(Value::from(key), value.into());
        }
        fn put_opt(map: &mut Mapping, key: &str, value: Option<impl Into<Value>>) {
            if let Some(value) = value {
                put(map, key, value);
            }
        }
        let masked = |secret: &Option<String>| secret.as_ref().map(|_| MASK);
        let mut root = Mapping::new();
        let mut wisp = Mapping::new();
        put(&mut wisp, "backend", self.backend.to_string());
        put(&mut wisp, "storage", self.storage.to_string());
        put(&mut wisp, "data_cleaner", self.data_cleaner);
        put(&mut root, "wisp", wisp);
        let mut local = Mapping::new();
        put(&mut local, "workers", self.workers as u64);
        put(&mut local, "runtime_memory", self.runtime_memory);
        put(
            &mut local,
            "runtime_timeout",
            self.runtime_timeout.as_secs(),
        );
        put(
            &mut local,
            "storage_dir",
            self.storage_dir.display().to_string(),
        );
        put(&mut local, "storage_bucket", self.storage_bucket.clone());
        put(&mut root, "localhost", local);
        for (name, section) in [
            ("minio", &self.minio),
            ("aws_s3", &self.aws_s3),
            ("ceph", &self.ceph),
        ] {
            let Some(s) = section else { continue };
            let mut map = Mapping::new();
            put_opt(&mut map, "endpoint", s.endpoint.clone());
            put_opt(&mut map, "region", s.region.clone());
            put_opt(&mut map, "access_key_id", s.access_key_id.clone());
            put_opt(&mut map, "secret_access_key", masked(&s.secret_access_key));
            put_opt(&mut map, "session_token", masked(&s.session_token));
            put_opt(&mut map, "storage_bucket", s.storage_bucket.clone());
            put(&mut map, "create_bucket", s.create_bucket);
            put(&mut root, name, map);
        }
        let ow = &self.openwhisk;
        if *ow != OpenWhiskSection::default() || self.backend == BackendKind::Openwhisk {
            let mut map = Mapping::new();
            put_opt(&mut map, "endpoint", ow.endpoint.clone());
            put_opt(&mut map, "namespace", ow.namespace.clone());
            put_opt(&mut map, "api_key", masked(&ow.api_key));
            put(&mut map, "insecure", ow.insecure);
            put_opt(&mut map, "runtime", ow.runtime.clone());
            put_opt(&mut map, "runtime_memory", ow.runtime_memory);
            put_opt(&mut map, "runtime_timeout", ow.runtime_timeout);
            put_opt(&mut map, "runtime_concurrency", ow.runtime_concurrency);
            put_opt(&mut map, "calls_per_activation", ow.calls_per_activation);
            put_opt(&mut map, "docker_server", ow.docker_server.clone());
            put_opt(&mut map, "docker_user", ow.docker_user.clone());
            put_opt(&mut map, "docker_password", masked(&ow.docker_password));
            put(&mut root, "openwhisk", map);
        }
        // A mapping of strings, numbers and booleans always serializes.
        serde_yaml::to_string(&Value::Mapping(root)).unwrap_or_default()
    }
}

fn expand_home(path: &Path) -> PathBuf {
    match path.strip_prefix("~") {
        Ok(rest) => home().join(rest),
        Err(_) => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_means_the_embedded_default() {
        let config = Config::from_yaml("").expect("empty is fine");
        assert_eq!(config.backend, BackendKind::Localhost);
        assert_eq!(config.storage, StorageKind::Localhost);
        assert_eq!(config.runtime_memory, 256);
        assert!(config.data_cleaner);
    }

    #[test]
    fn reads_sections_and_env_overrides() {
        let mut config = Config::from_yaml(
            "wisp:\n  data_cleaner: false\nlocalhost:\n  workers: 3\n  runtime_memory: 512\n  storage_dir: ~/x\n",
        )
        .expect("valid");
        assert_eq!(config.workers, 3);
        assert_eq!(config.runtime_memory, 512);
        assert!(!config.data_cleaner);
        assert!(config.storage_dir.ends_with("x") && !config.storage_dir.starts_with("~"));
        config
            .apply_env(|var| match var {
                "WISP_RUNTIME_TIMEOUT" => Some("7".to_owned()),
                "WISP_WORKERS" => Some("5".to_owned()),
                _ => None,
            })
            .expect("valid overrides");
        assert_eq!(config.runtime_timeout, Duration::from_secs(7));
        assert_eq!(config.workers, 5);
    }

    #[test]
    fn the_masked_yaml_hides_every_secret() {
        let config = Config::from_yaml(
            "wisp:\n  storage: minio\nminio:\n  endpoint: http://127.0.0.1:9000\n  access_key_id: id\n  secret_access_key: s3cr3t-a\n  session_token: s3cr3t-b\nopenwhisk:\n  api_key: u:s3cr3t-c\n  docker_password: s3cr3t-d\n",
        )
        .expect("valid");
        let yaml = config.to_masked_yaml();
        assert!(!yaml.contains("s3cr3t"), "{yaml}");
        assert_eq!(yaml.matches(MASK).count(), 4, "{yaml}");
        assert!(yaml.contains("access_key_id: id"), "{yaml}");
        assert!(yaml.contains("storage: minio"), "{yaml}");
        // What it prints reads back as the same configuration.
        let back = Config::from_yaml(&yaml).expect("the output is a valid config");
        assert_eq!(back.storage, StorageKind::Minio);
        assert_eq!(back.workers, config.workers);
    }

    #[test]
    fn the_override_list_names_every_variable_read() {
        let asked = std::cell::RefCell::new(Vec::new());
        Config::default()
            .apply_env(|var| {
                asked.borrow_mut().push(var.to_owned());
                None
            })
            .expect("no overrides");
        let mut asked = asked.into_inner();
        asked.sort();
        let mut listed: Vec<String> = ENV_OVERRIDES
            .iter()
            .filter(|v| !matches!(**v, "WISP_CONFIG" | "WISP_LOG"))
            .map(|v| (*v).to_owned())
            .collect();
        listed.sort();
        assert_eq!(asked, listed);
    }

    #[test]
    fn errors_name_the_key() {
        let unknown = Config::from_yaml("localhost:\n  worker: 3\n").expect_err("typo");
        assert!(unknown.contains("unknown field `worker`"), "{unknown}");
        assert!(unknown.contains("workers"), "{unknown}");
        let wrong = Config::from_yaml("wisp:\n  backend: lambda\n").expect_err("bad backend");
        assert!(
            wrong.contains("lambda") || wrong.contains("backend"),
            "{wrong}"
        );
        let mut config = Config::default();
        let env = config
            .apply_env(|var| (var == "WISP_RUNTIME_MEMORY").then(|| "lots".to_owned()))
            .expect_err("not a number")
            .to_string();
        assert!(
            env.contains("WISP_RUNTIME_MEMORY") && env.contains("megabytes from 1 to 4096"),
            "{env}"
        );
        config.runtime_memory = 0;
        let range = config.check().expect_err("zero memory").to_string();
        assert!(range.contains("runtime_memory"), "{range}");
    }
}
