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
//!   retries: 0                # run a call the infrastructure failed again, up to N times
//!   retry_function_errors: false  # with retries, also rerun calls that failed by themselves
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
//!   min_memory: 128           # the action memory the platform accepts,
//!   max_memory: 512           # as OpenWhisk ships
//!   docker_server: 127.0.0.1:5000   # the registry runtime images are pushed to
//!   docker_user: me
//!   docker_password: ...
//! ```
//!
//! Each key can be overridden by an environment variable: `WISP_BACKEND`,
//! `WISP_STORAGE`, `WISP_DATA_CLEANER`, `WISP_RETRIES`, `WISP_WORKERS`,
//! `WISP_RUNTIME_MEMORY`, `WISP_RUNTIME_TIMEOUT`, `WISP_STORAGE_DIR`,
//! `WISP_STORAGE_BUCKET`, and for OpenWhisk `WISP_OPENWHISK_ENDPOINT`,
//! `WISP_OPENWHISK_NAMESPACE`, `WISP_OPENWHISK_API_KEY`, `WISP_RUNTIME`,
//! `WISP_DOCKER_SERVER`, `WISP_DOCKER_USER`, `WISP_DOCKER_PASSWORD`.
//!
//! A mistake in the file is a [`ConfigError`] that names the file, the line
//! and column, the key, what was found and what is expected, in words; an
//! unknown key names the nearest valid one.

use std::collections::BTreeMap;
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
    /// Runs a failed call may get after its first, and for which failures.
    pub retry: crate::RetryPolicy,
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
    /// Where each value set by the file or the environment came from, by
    /// key path (`localhost.workers`); a key not in it has its default.
    pub origins: BTreeMap<String, Origin>,
}

/// Where a configured value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The config file.
    File,
    /// This environment variable.
    Env(&'static str),
    /// The program, through [`crate::ExecutorBuilder`] (or a flag of the
    /// CLI).
    Program,
}

/// The default memory limit of a call, in MB.
pub const DEFAULT_RUNTIME_MEMORY: u64 = 256;
/// The default time limit of a call, in seconds.
pub const DEFAULT_RUNTIME_TIMEOUT: u64 = 300;
/// The memory limits a call may be given, in MB: a 32-bit module addresses
/// 4 GiB at most.
pub const MEMORY_RANGE: std::ops::RangeInclusive<u64> = 1..=4096;
/// How many calls the localhost backend may run at once.
pub const WORKERS_RANGE: std::ops::RangeInclusive<u64> = 1..=4096;
/// The time limits a call may be given, in seconds (up to a day).
pub const TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 1..=86_400;

/// The action memory OpenWhisk accepts unless its operators change it, in
/// MB (its `memory { min = 128 m, max = 512 m }` limits).
pub const OPENWHISK_MEMORY: std::ops::RangeInclusive<u64> = 128..=512;

/// The default bucket.
pub const DEFAULT_BUCKET: &str = "wisp-data";

impl Default for Config {
    fn default() -> Self {
        Self {
            backend: BackendKind::Localhost,
            storage: StorageKind::Localhost,
            data_cleaner: true,
            retry: crate::RetryPolicy::default(),
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
            origins: BTreeMap::new(),
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
    /// The file is not valid YAML.
    #[error("the config file {path} is not valid YAML: line {line}, column {column}: {problem}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line of the problem, from 1.
        line: usize,
        /// Its column, from 1.
        column: usize,
        /// What is wrong there, and what to do.
        problem: String,
    },
    /// The file has a key wisp does not know.
    #[error(
        "the config file {path} has an unknown {what} `{key}` (line {line}, column {column}){hint}"
    )]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// `key` or `section`.
        what: &'static str,
        /// Its path, such as `localhost.worker`.
        key: String,
        /// Its line, from 1.
        line: usize,
        /// Its column, from 1.
        column: usize,
        /// The nearest valid key and the valid ones, as `: did you mean …`.
        hint: String,
    },
    /// A value of the file is of the wrong kind.
    #[error(
        "in the config file {path}, `{key}` (line {line}, column {column}) is {found}; \
         expected {expected}"
    )]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The key's path, such as `localhost.workers`.
        key: String,
        /// Its line, from 1.
        line: usize,
        /// Its column, from 1.
        column: usize,
        /// What the file has there, in words.
        found: String,
        /// What wisp expects there, in words.
        expected: String,
    },
    /// The file is not valid in a way the other variants do not name.
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
    /// A runtime memory OpenWhisk would refuse.
    #[error(
        "{setting} is {memory} MB, but OpenWhisk accepts an action memory of {min} to {max} MB: \
         {fix}"
    )]
    OpenWhiskMemory {
        /// Where the value came from: a flag, a key or a variable.
        setting: String,
        /// The memory asked for, in MB.
        memory: u64,
        /// The smallest the platform accepts.
        min: u64,
        /// The largest.
        max: u64,
        /// What to do.
        fix: String,
    },
    /// A value is out of range.
    #[error("{key} in {place} is invalid: {expected}")]
    Value {
        /// The key, or the variable or flag it came from.
        key: String,
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
    /// The smallest action memory the platform accepts, in MB. Default:
    /// 128, as OpenWhisk ships.
    pub min_memory: Option<u64>,
    /// The largest action memory the platform accepts, in MB. Default:
    /// 512, as OpenWhisk ships; deployments often raise it.
    pub max_memory: Option<u64>,
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
            .field("min_memory", &self.min_memory)
            .field("max_memory", &self.max_memory)
            .field("docker_server", &self.docker_server)
            .field("docker_user", &self.docker_user)
            .field("docker_password", &masked(&self.docker_password))
            .finish()
    }
}

impl OpenWhiskSection {
    /// The action memory the platform accepts, in MB: `min_memory` to
    /// `max_memory`, by default [`OPENWHISK_MEMORY`].
    pub fn memory_range(&self) -> std::ops::RangeInclusive<u64> {
        self.min_memory.unwrap_or(*OPENWHISK_MEMORY.start())
            ..=self.max_memory.unwrap_or(*OPENWHISK_MEMORY.end())
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
    retries: Option<u32>,
    retry_function_errors: Option<bool>,
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
        // An empty `WISP_CONFIG` is an unset one, as for every variable.
        let named =
            std::env::var_os("WISP_CONFIG").filter(|p| !p.to_string_lossy().trim().is_empty());
        let path = match named {
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
        // Flags and the program may still change the values: the warnings
        // of `check` wait for the configuration in effect.
        config.validate()?;
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
        let mut config = Self::parse(&text, path)?;
        // A relative directory in the file is relative to the file.
        if config.storage_dir.is_relative()
            && let Some(dir) = path.parent()
        {
            config.storage_dir = dir.join(&config.storage_dir);
        }
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Reads the text of the config file `path`.
    fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let (file, tree) = parse_file(text, path)?;
        let mut config = Self::default();
        let WispSection {
            backend,
            storage,
            data_cleaner,
            retries,
            retry_function_errors,
        } = file.wisp;
        config.backend = backend.unwrap_or(config.backend);
        config.storage = storage.unwrap_or(config.storage);
        config.data_cleaner = data_cleaner.unwrap_or(config.data_cleaner);
        config.retry.retries = retries.unwrap_or(config.retry.retries);
        config.retry.function_errors =
            retry_function_errors.unwrap_or(config.retry.function_errors);
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
        if let serde_yaml::Value::Mapping(sections) = &tree {
            for (section, keys) in sections {
                let (Some(section), serde_yaml::Value::Mapping(keys)) = (section.as_str(), keys)
                else {
                    continue;
                };
                let set = keys.iter().filter(|(_, value)| !value.is_null());
                for key in set.filter_map(|(key, _)| key.as_str()) {
                    config
                        .origins
                        .insert(format!("{section}.{key}"), Origin::File);
                }
            }
        }
        Ok(config)
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        // The variables that are set, to record where their values came from.
        let set = std::cell::RefCell::new(Vec::new());
        let var = |name: &str| {
            let value = var(name);
            if value.is_some() {
                set.borrow_mut().push(name.to_owned());
            }
            value
        };
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
            let expected = format!("{unit}, {} to {}", range.start(), range.end());
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
        if let Some(v) = var("WISP_RETRIES") {
            let retries = ranged(
                "WISP_RETRIES",
                v,
                0..=u64::from(crate::MAX_RETRIES),
                "a whole number of retries",
            )?;
            self.retry.retries = retries as u32;
        }
        if let Some(v) = var("WISP_WORKERS") {
            self.workers = ranged(
                "WISP_WORKERS",
                v,
                WORKERS_RANGE,
                "a whole number of workers",
            )? as usize;
        }
        if let Some(v) = var("WISP_RUNTIME_MEMORY") {
            self.runtime_memory = ranged(
                "WISP_RUNTIME_MEMORY",
                v,
                MEMORY_RANGE,
                "a whole number of megabytes",
            )?;
        }
        if let Some(v) = var("WISP_RUNTIME_TIMEOUT") {
            let seconds = ranged(
                "WISP_RUNTIME_TIMEOUT",
                v,
                TIMEOUT_RANGE,
                "a whole number of seconds",
            )?;
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
        for (name, key) in ENV_KEYS {
            if set.borrow().iter().any(|n| n == name) {
                self.origins.insert(key.to_owned(), Origin::Env(name));
            }
        }
        Ok(())
    }

    /// Checks that the values are usable, and warns (through `tracing`)
    /// of a value that has no effect, such as `retry_function_errors`
    /// without retries.
    ///
    /// # Errors
    ///
    /// When one is out of range.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.validate()?;
        if let Some(warning) = self.ineffective_retry() {
            tracing::warn!("{warning}");
        }
        Ok(())
    }

    /// Says that `retry_function_errors` is on with no retries to make, when
    /// the file or the environment set it so. When the program set it (the
    /// CLI's `--retry-function-errors`), the program says so itself.
    fn ineffective_retry(&self) -> Option<String> {
        let key = "wisp.retry_function_errors";
        if !self.retry.function_errors
            || self.retry.retries > 0
            || matches!(self.origins.get(key), Some(Origin::Program))
        {
            return None;
        }
        let place = self
            .source
            .as_ref()
            .map_or_else(String::new, |p| format!(" in {}", p.display()));
        let retries = match self.origins.get("wisp.retries") {
            None => "wisp.retries is 0 (its default)".to_owned(),
            Some(_) => format!("{} is 0", self.setting("wisp.retries")),
        };
        Some(format!(
            "{key} is true{place}, but has no effect without retries: {retries}; set \
             wisp.retries (or WISP_RETRIES) to 1 or more to rerun failed calls, or remove \
             retry_function_errors"
        ))
    }

    /// The errors of [`check`](Self::check), without its warnings.
    fn validate(&self) -> Result<(), ConfigError> {
        let place = || {
            self.source.as_ref().map_or_else(
                || "the executor's settings".to_owned(),
                |p| format!("{} (or the settings that override it)", p.display()),
            )
        };
        if !WORKERS_RANGE.contains(&(self.workers as u64)) {
            return Err(ConfigError::Value {
                key: self.setting("localhost.workers"),
                place: place(),
                expected: format!(
                    "a whole number of workers, 1 to {}; found {}",
                    WORKERS_RANGE.end(),
                    self.workers
                ),
            });
        }
        if self.retry.retries > crate::MAX_RETRIES {
            return Err(ConfigError::Value {
                key: self.setting("wisp.retries"),
                place: place(),
                expected: format!(
                    "a whole number of retries, 0 to {}; found {}",
                    crate::MAX_RETRIES,
                    self.retry.retries
                ),
            });
        }
        if !MEMORY_RANGE.contains(&self.runtime_memory) {
            return Err(ConfigError::Value {
                key: self.memory_setting(),
                place: place(),
                expected: format!(
                    "a whole number of megabytes, 1 to 4096 (a 32-bit module addresses 4 GiB at \
                     most); found {}",
                    self.runtime_memory
                ),
            });
        }
        if self.backend == BackendKind::Openwhisk {
            let range = self.openwhisk.memory_range();
            if range.is_empty() || *range.start() == 0 {
                return Err(ConfigError::Value {
                    key: "openwhisk.min_memory and openwhisk.max_memory".to_owned(),
                    place: place(),
                    expected: format!(
                        "min_memory from 1 up to max_memory; found {} and {}",
                        range.start(),
                        range.end()
                    ),
                });
            }
            self.check_openwhisk_memory(self.runtime_memory, &self.memory_setting())?;
        }
        if self.runtime_timeout.is_zero() || self.runtime_timeout.as_secs() > *TIMEOUT_RANGE.end() {
            return Err(ConfigError::Value {
                key: "runtime_timeout".to_owned(),
                place: place(),
                expected: format!("from 1 to {} seconds", TIMEOUT_RANGE.end()),
            });
        }
        wisp_storage::validate_bucket(&self.bucket()).map_err(|e| ConfigError::Value {
            key: "storage_bucket".to_owned(),
            place: place(),
            expected: e.to_string(),
        })?;
        Ok(())
    }
}

impl Config {
    /// Selects the backend, as `-b` does: moving to OpenWhisk brings in the
    /// `openwhisk` section's `runtime_memory` and `runtime_timeout`, unless
    /// the environment or the program set those values.
    pub fn use_backend(&mut self, backend: BackendKind) {
        let was = self.backend;
        self.backend = backend;
        if backend != BackendKind::Openwhisk || was == BackendKind::Openwhisk {
            return;
        }
        let overridden = |key: &str| {
            matches!(
                self.origins.get(key),
                Some(Origin::Env(_) | Origin::Program)
            )
        };
        if let Some(memory) = self.openwhisk.runtime_memory
            && !overridden("localhost.runtime_memory")
        {
            self.runtime_memory = memory;
        }
        if let Some(seconds) = self.openwhisk.runtime_timeout
            && !overridden("localhost.runtime_timeout")
        {
            self.runtime_timeout = Duration::from_secs(seconds);
        }
    }

    /// Refuses a runtime memory the OpenWhisk platform would refuse, before
    /// any request: `setting` names where the value came from (a flag such
    /// as `--memory`, a key or a variable).
    ///
    /// # Errors
    ///
    /// [`ConfigError::OpenWhiskMemory`], naming the setting, the range and
    /// the fix.
    pub fn check_openwhisk_memory(&self, memory: u64, setting: &str) -> Result<(), ConfigError> {
        let range = self.openwhisk.memory_range();
        if range.contains(&memory) {
            return Ok(());
        }
        let file = self.source.as_ref().map_or_else(
            || "~/.wisp/config.yaml (or the file WISP_CONFIG names)".to_owned(),
            |p| p.display().to_string(),
        );
        Err(ConfigError::OpenWhiskMemory {
            setting: setting.to_owned(),
            memory,
            min: *range.start(),
            max: *range.end(),
            fix: format!(
                "give a value from {} to {} (such as {}), or, if your OpenWhisk deployment \
                 accepts other sizes, set `min_memory` and `max_memory` in the `openwhisk` \
                 section of {file}",
                range.start(),
                range.end(),
                memory.clamp(*range.start(), *range.end())
            ),
        })
    }

    /// Where the value of `key` came from, in words: the key in the file,
    /// the variable, or the program.
    fn setting(&self, key: &str) -> String {
        match self.origins.get(key) {
            Some(Origin::Env(var)) => (*var).to_owned(),
            Some(Origin::Program) => format!("{key} (set by the program)"),
            Some(Origin::File) | None => key.to_owned(),
        }
    }

    /// Where the runtime memory in effect came from: on OpenWhisk,
    /// `openwhisk.runtime_memory` takes the place of `localhost`'s.
    fn memory_setting(&self) -> String {
        match self.origins.get("localhost.runtime_memory") {
            Some(Origin::File) | None
                if self.backend == BackendKind::Openwhisk
                    && self.openwhisk.runtime_memory.is_some() =>
            {
                "openwhisk.runtime_memory".to_owned()
            }
            Some(Origin::File) => "localhost.runtime_memory".to_owned(),
            None => "the default runtime_memory".to_owned(),
            Some(Origin::Program) => {
                "runtime_memory set by the program (ExecutorBuilder::runtime_memory)".to_owned()
            }
            Some(Origin::Env(var)) => (*var).to_owned(),
        }
    }
}

/// The environment variables that override keys of the file.
pub const ENV_OVERRIDES: [&str; 18] = [
    "WISP_BACKEND",
    "WISP_STORAGE",
    "WISP_DATA_CLEANER",
    "WISP_RETRIES",
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

/// The key each environment override sets.
const ENV_KEYS: [(&str, &str); 16] = [
    ("WISP_BACKEND", "wisp.backend"),
    ("WISP_STORAGE", "wisp.storage"),
    ("WISP_DATA_CLEANER", "wisp.data_cleaner"),
    ("WISP_RETRIES", "wisp.retries"),
    ("WISP_WORKERS", "localhost.workers"),
    ("WISP_RUNTIME_MEMORY", "localhost.runtime_memory"),
    ("WISP_RUNTIME_TIMEOUT", "localhost.runtime_timeout"),
    ("WISP_STORAGE_DIR", "localhost.storage_dir"),
    ("WISP_STORAGE_BUCKET", "localhost.storage_bucket"),
    ("WISP_OPENWHISK_ENDPOINT", "openwhisk.endpoint"),
    ("WISP_OPENWHISK_NAMESPACE", "openwhisk.namespace"),
    ("WISP_OPENWHISK_API_KEY", "openwhisk.api_key"),
    ("WISP_RUNTIME", "openwhisk.runtime"),
    ("WISP_DOCKER_SERVER", "openwhisk.docker_server"),
    ("WISP_DOCKER_USER", "openwhisk.docker_user"),
    ("WISP_DOCKER_PASSWORD", "openwhisk.docker_password"),
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
    /// have and keys that are not set are left out. A value the file does
    /// not set ends with `# default`, or `# from VARIABLE` when the
    /// environment set it.
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
        put(&mut wisp, "retries", u64::from(self.retry.retries));
        put(
            &mut wisp,
            "retry_function_errors",
            self.retry.function_errors,
        );
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
            let range = ow.memory_range();
            put(&mut map, "min_memory", *range.start());
            put(&mut map, "max_memory", *range.end());
            put_opt(&mut map, "docker_server", ow.docker_server.clone());
            put_opt(&mut map, "docker_user", ow.docker_user.clone());
            put_opt(&mut map, "docker_password", masked(&ow.docker_password));
            put(&mut root, "openwhisk", map);
        }
        // A mapping of strings, numbers and booleans always serializes.
        let yaml = serde_yaml::to_string(&Value::Mapping(root)).unwrap_or_default();
        // Each key line says where its value came from unless the file set
        // it: `# default`, or `# from VARIABLE`.
        let mut section = "";
        let mut out = String::with_capacity(yaml.len() * 2);
        for line in yaml.lines() {
            out.push_str(line);
            if !line.starts_with(' ') {
                section = line.trim_end_matches(':');
            } else if let Some((key, _)) = line.trim_start().split_once(':') {
                let path = format!("{section}.{key}");
                let on_openwhisk = self.backend == BackendKind::Openwhisk;
                match self.origins.get(&path) {
                    Some(Origin::Env(var)) => out.push_str(&format!("  # from {var}")),
                    _ if on_openwhisk
                        && path == "localhost.runtime_memory"
                        && self.openwhisk.runtime_memory.is_some() =>
                    {
                        out.push_str("  # from openwhisk.runtime_memory");
                    }
                    _ if on_openwhisk
                        && path == "localhost.runtime_timeout"
                        && self.openwhisk.runtime_timeout.is_some() =>
                    {
                        out.push_str("  # from openwhisk.runtime_timeout");
                    }
                    Some(Origin::File | Origin::Program) => {}
                    None => out.push_str("  # default"),
                }
            }
            out.push('\n');
        }
        out
    }
}

fn expand_home(path: &Path) -> PathBuf {
    match path.strip_prefix("~") {
        Ok(rest) => home().join(rest),
        Err(_) => path.to_owned(),
    }
}

/// The sections of the file.
const SECTIONS: [&str; 6] = ["wisp", "localhost", "minio", "aws_s3", "ceph", "openwhisk"];

/// The keys of a section, each with what it takes in words.
fn keys_of(section: &str) -> &'static [(&'static str, &'static str)] {
    const WHOLE_MB: &str = "a whole number of megabytes, 1 to 4096";
    const SECONDS: &str = "a whole number of seconds, 1 to 86400";
    const BOOL: &str = "`true` or `false`";
    const BUCKET: &str = "a bucket name, such as wisp-data";
    match section {
        "wisp" => &[
            ("backend", "`localhost` or `openwhisk`"),
            ("storage", "`localhost`, `minio`, `aws_s3` or `ceph`"),
            ("data_cleaner", BOOL),
            ("retries", "a whole number of retries, 0 to 99"),
            ("retry_function_errors", BOOL),
        ],
        "localhost" => &[
            ("workers", "a whole number of workers, 1 to 4096"),
            ("runtime_memory", WHOLE_MB),
            ("runtime_timeout", SECONDS),
            ("storage_dir", "a directory path, such as ~/.wisp/storage"),
            ("storage_bucket", BUCKET),
        ],
        "minio" | "aws_s3" | "ceph" => &[
            ("endpoint", "a URL, such as http://127.0.0.1:9000"),
            ("region", "a region name, such as us-east-1"),
            ("access_key_id", "the access key id, as text"),
            ("secret_access_key", "the secret key, as text"),
            ("session_token", "the session token, as text"),
            ("storage_bucket", BUCKET),
            ("create_bucket", BOOL),
        ],
        "openwhisk" => &[
            ("endpoint", "a URL, such as https://openwhisk.example.org"),
            (
                "namespace",
                "a namespace name, or `_` for the API key's own",
            ),
            ("api_key", "the API key `uuid:secret`, as text"),
            ("insecure", BOOL),
            (
                "runtime",
                "`default` or an image name, such as 127.0.0.1:5000/me/wisp-runtime:0.1",
            ),
            (
                "runtime_memory",
                "a whole number of megabytes, from min_memory to max_memory (128 to 512 unless \
                 set)",
            ),
            ("runtime_timeout", SECONDS),
            (
                "runtime_concurrency",
                "a whole number of activations per container, 1 or more",
            ),
            (
                "calls_per_activation",
                "a whole number of calls per activation, 1 or more",
            ),
            (
                "min_memory",
                "a whole number of megabytes: the smallest action memory the platform accepts",
            ),
            (
                "max_memory",
                "a whole number of megabytes: the largest action memory the platform accepts",
            ),
            (
                "docker_server",
                "a registry address, such as 127.0.0.1:5000",
            ),
            ("docker_user", "the registry's user name, as text"),
            (
                "docker_password",
                "the registry's password or token, as text",
            ),
        ],
        _ => &[],
    }
}

/// Splits a file into its typed form and its YAML tree, or says in plain
/// words what is wrong and where.
fn parse_file(text: &str, path: &Path) -> Result<(File, serde_yaml::Value), ConfigError> {
    let tree: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| syntax_error(path, text, &e))?;
    // Nothing, or nothing but comments.
    if tree.is_null() {
        return Ok((File::default(), tree));
    }
    let file = serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text))
        .map_err(|e| shape_error(path, text, &tree, e))?;
    Ok((file, tree))
}

fn syntax_error(path: &Path, text: &str, error: &serde_yaml::Error) -> ConfigError {
    let (line, column) = error
        .location()
        .map_or((1, 1), |at| (at.line(), at.column()));
    let raw = error.to_string();
    let at = text
        .lines()
        .nth(line.saturating_sub(1))
        .and_then(|l| l.chars().nth(column.saturating_sub(1)));
    let problem = if at == Some('\t') {
        "a tab: YAML indents with spaces only".to_owned()
    } else if raw.contains("mapping values are not allowed") {
        "a `key: value` where none can start: check the indentation of this line and the one \
         before, and quote a value that contains `: `"
            .to_owned()
    } else if raw.contains("did not find expected key") {
        "the indentation does not line up: indent every key of a section by the same number of \
         spaces"
            .to_owned()
    } else if let Some(rest) = raw.split("duplicate entry with key ").nth(1) {
        let key = rest
            .split(" at line")
            .next()
            .unwrap_or(rest)
            .trim_matches('"');
        format!("the key `{key}` appears twice in one section: keep one")
    } else if raw.contains("expected ',' or ']'") {
        "a list opened with `[` is not closed with `]`".to_owned()
    } else if raw.contains("expected ',' or '}'") {
        "a mapping opened with `{` is not closed with `}`".to_owned()
    } else if raw.contains("found unexpected end of stream") || raw.contains("quoted scalar") {
        "a quoted value is not closed: end it with the same quote it starts with".to_owned()
    } else {
        // The parser's own words, without the position given in front.
        let phrase = raw.split(" at line ").next().unwrap_or(&raw);
        format!("{phrase} (check the indentation and the quoting of this line)")
    };
    ConfigError::Syntax {
        path: path.to_owned(),
        line,
        column,
        problem,
    }
}

fn shape_error(
    path: &Path,
    text: &str,
    tree: &serde_yaml::Value,
    error: serde_path_to_error::Error<serde_yaml::Error>,
) -> ConfigError {
    use serde_path_to_error::Segment;
    let segments: Vec<String> = error
        .path()
        .iter()
        .map(|segment| match segment {
            Segment::Map { key } => key.clone(),
            Segment::Seq { index } => index.to_string(),
            Segment::Enum { variant } => variant.clone(),
            Segment::Unknown => "?".to_owned(),
        })
        .collect();
    let inner = error.into_inner();
    let (line, column) = inner
        .location()
        .map_or((1, 1), |at| (at.line(), at.column()));
    let wrong =
        |key: String, found: Option<&serde_yaml::Value>, expected: String| ConfigError::WrongType {
            path: path.to_owned(),
            key,
            line,
            column,
            found: describe(found),
            expected,
        };
    match segments.as_slice() {
        [] => wrong(
            "(the whole file)".to_owned(),
            Some(tree),
            format!(
                "sections, each a name and a colon followed by indented `key: value` lines ({})",
                SECTIONS.join(", ")
            ),
        ),
        [section] if !SECTIONS.contains(&section.as_str()) => {
            // The parser points at the file's start; the section's own line
            // is the one that names it unindented.
            let line = text
                .lines()
                .position(|l| {
                    l.strip_prefix(section.as_str())
                        .is_some_and(|rest| rest.trim_start().starts_with(':'))
                })
                .map_or(line, |i| i + 1);
            ConfigError::UnknownKey {
                path: path.to_owned(),
                what: "section",
                key: section.clone(),
                line,
                column: 1,
                hint: section_hint(section),
            }
        }
        [section] => wrong(
            section.clone(),
            tree.get(section),
            format!("a section: `{section}:` followed by indented `key: value` lines"),
        ),
        [section, key, ..] => match keys_of(section).iter().find(|(k, _)| k == key) {
            None => ConfigError::UnknownKey {
                path: path.to_owned(),
                what: "key",
                key: format!("{section}.{key}"),
                line,
                column,
                hint: key_hint(section, key),
            },
            Some((_, expected)) => wrong(
                format!("{section}.{key}"),
                tree.get(section).and_then(|s| s.get(key)),
                (*expected).to_owned(),
            ),
        },
    }
}

/// A YAML value in words: what the file has where something else was
/// expected.
fn describe(value: Option<&serde_yaml::Value>) -> String {
    use serde_yaml::Value;
    match value {
        None | Some(Value::Null) => "empty".to_owned(),
        Some(Value::Bool(b)) => format!("`{b}`, a true/false value"),
        Some(Value::Number(n)) if n.is_f64() => format!("the number {n}, which is not whole"),
        Some(Value::Number(n)) => format!("the number {n}"),
        Some(Value::String(text)) => format!("the text \"{text}\""),
        Some(Value::Sequence(_)) => "a list".to_owned(),
        Some(Value::Mapping(_)) => "a section of keys".to_owned(),
        Some(Value::Tagged(tagged)) => format!("a value tagged {}", tagged.tag),
    }
}

/// The candidate nearest to `word`, if it is close enough to be a typo.
fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(word, c), c))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

fn quoted_list(names: impl IntoIterator<Item = &'static str>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_hint(section: &str, key: &str) -> String {
    let keys = || keys_of(section).iter().map(|(k, _)| *k);
    let valid = format!("the keys of `{section}` are {}", quoted_list(keys()));
    if let Some(near) = nearest(key, keys()) {
        return format!(": did you mean `{section}.{near}`? ({valid})");
    }
    if let Some(home) = SECTIONS
        .iter()
        .find(|s| keys_of(s).iter().any(|(k, _)| *k == key))
    {
        return format!(": `{key}` belongs in the `{home}` section ({valid})");
    }
    format!(": {valid}")
}

fn section_hint(section: &str) -> String {
    let valid = format!("the sections are {}", quoted_list(SECTIONS));
    if let Some(near) = nearest(section, SECTIONS) {
        return format!(": did you mean `{near}`? ({valid})");
    }
    if let Some(home) = SECTIONS
        .iter()
        .find(|s| keys_of(s).iter().any(|(k, _)| *k == section))
    {
        return format!(
            ": `{section}` is a key of the `{home}` section; indent it under `{home}:`"
        );
    }
    format!(": {valid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Config {
        fn from_yaml(text: &str) -> Result<Self, String> {
            Self::parse(text, Path::new("/etc/wisp/test.yaml")).map_err(|e| e.to_string())
        }
    }

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
    fn broken_yaml_names_the_file_line_and_column() {
        let tab = Config::from_yaml("localhost:\n\tworkers: 2\n").expect_err("a tab");
        assert!(
            tab.starts_with(
                "the config file /etc/wisp/test.yaml is not valid YAML: line 2, column 1:"
            ),
            "{tab}"
        );
        assert!(tab.contains("YAML indents with spaces only"), "{tab}");
        let indent = Config::from_yaml("localhost:\n  workers: 2\n   runtime_memory: 512\n")
            .expect_err("indent");
        assert!(indent.contains("line 3, column 18"), "{indent}");
        assert!(indent.contains("check the indentation"), "{indent}");
        let list = Config::from_yaml("localhost:\n  workers: [1\n").expect_err("open list");
        assert!(list.contains("line 3, column 1"), "{list}");
        assert!(list.contains("not closed with `]`"), "{list}");
        let twice =
            Config::from_yaml("localhost:\n  workers: 1\n  workers: 2\n").expect_err("twice");
        assert!(twice.contains("line 2, column 3"), "{twice}");
        assert!(twice.contains("the key `workers` appears twice"), "{twice}");
    }

    #[test]
    fn a_value_of_the_wrong_kind_says_what_was_found_and_expected() {
        let four = Config::from_yaml("localhost:\n  workers: four\n").expect_err("text");
        assert_eq!(
            four,
            "in the config file /etc/wisp/test.yaml, `localhost.workers` (line 2, column 12) is \
             the text \"four\"; expected a whole number of workers, 1 to 4096"
        );
        assert!(!four.contains("usize"), "{four}");
        let negative = Config::from_yaml("localhost:\n  runtime_memory: -5\n").expect_err("-5");
        assert!(
            negative.contains("`localhost.runtime_memory`"),
            "{negative}"
        );
        assert!(
            negative.contains("is the number -5; expected a whole number of megabytes"),
            "{negative}"
        );
        let fraction = Config::from_yaml("ceph:\n  create_bucket: 2.5\n").expect_err("2.5");
        assert!(
            fraction.contains("`ceph.create_bucket` (line 2, column 18) is the number 2.5, which is not whole; expected `true` or `false`"),
            "{fraction}"
        );
        let backend = Config::from_yaml("wisp:\n  backend: lambda\n").expect_err("lambda");
        assert!(
            backend.contains("`wisp.backend` (line 2, column 12) is the text \"lambda\"; expected `localhost` or `openwhisk`"),
            "{backend}"
        );
        let section = Config::from_yaml("localhost: 3\n").expect_err("not a section");
        assert!(
            section.contains("`localhost` (line 1, column 12) is the number 3; expected a section"),
            "{section}"
        );
        let whole = Config::from_yaml("- wisp\n").expect_err("a list");
        assert!(
            whole.contains("(the whole file)") && whole.contains("is a list"),
            "{whole}"
        );
        // An empty value is an unset one.
        let empty = Config::from_yaml("openwhisk:\n  runtime_memory:\n").expect("unset");
        assert_eq!(empty.openwhisk.runtime_memory, None);
        assert!(empty.origins.is_empty(), "{:?}", empty.origins);
    }

    #[test]
    fn every_key_of_the_table_is_one_the_file_takes() {
        for section in SECTIONS {
            for (key, expected) in keys_of(section) {
                // A list is wrong for every key: the error must be about the
                // value, never an unknown key.
                let error = Config::from_yaml(&format!("{section}:\n  {key}: [1]\n"))
                    .expect_err("a list is never valid");
                assert!(
                    error.contains(&format!("`{section}.{key}` (line 2"))
                        && error.contains(expected),
                    "{error}"
                );
            }
        }
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_nearest_valid_one() {
        let typo = Config::from_yaml("localhost:\n  worker: 3\n").expect_err("typo");
        assert!(
            typo.starts_with(
                "the config file /etc/wisp/test.yaml has an unknown key `localhost.worker` \
                 (line 2, column 3): did you mean `localhost.workers`?"
            ),
            "{typo}"
        );
        let swapped =
            Config::from_yaml("openwhisk:\n  runtime_memroy: 256\n").expect_err("swapped");
        assert!(
            swapped.contains("did you mean `openwhisk.runtime_memory`?"),
            "{swapped}"
        );
        let elsewhere = Config::from_yaml("wisp:\n  workers: 3\n").expect_err("misplaced");
        assert!(
            elsewhere.contains("unknown key `wisp.workers`")
                && elsewhere.contains("`workers` belongs in the `localhost` section"),
            "{elsewhere}"
        );
        let far = Config::from_yaml("minio:\n  colour: blue\n").expect_err("far");
        assert!(far.contains("unknown key `minio.colour`"), "{far}");
        assert!(!far.contains("did you mean"), "{far}");
        assert!(far.contains("the keys of `minio` are `endpoint`"), "{far}");
        let section = Config::from_yaml("wisp:\n  backend: localhost\nlokalhost:\n  workers: 2\n")
            .expect_err("section typo");
        assert!(
            section.contains(
                "unknown section `lokalhost` (line 3, column 1): did you mean `localhost`?"
            ),
            "{section}"
        );
        let top = Config::from_yaml("workers: 2\n").expect_err("key at the top");
        assert!(
            top.contains(
                "`workers` is a key of the `localhost` section; indent it under `localhost:`"
            ),
            "{top}"
        );
    }

    #[test]
    fn retries_come_from_the_file_or_the_environment_within_their_range() {
        let config = Config::from_yaml("wisp:\n  retries: 2\n  retry_function_errors: true\n")
            .expect("valid");
        assert_eq!(
            config.retry,
            crate::RetryPolicy {
                retries: 2,
                function_errors: true
            }
        );
        assert_eq!(Config::default().retry.retries, 0);
        let mut env = Config::default();
        env.apply_env(|var| (var == "WISP_RETRIES").then(|| "3".to_owned()))
            .expect("a number");
        assert_eq!(env.retry.retries, 3);
        let words = Config::from_yaml("wisp:\n  retries: many\n").expect_err("text");
        assert!(
            words.contains("`wisp.retries`")
                && words.contains("a whole number of retries, 0 to 99"),
            "{words}"
        );
        let mut many = Config::default();
        many.retry.retries = 500;
        let err = many.check().expect_err("too many").to_string();
        assert!(
            err.contains("wisp.retries") && err.contains("found 500"),
            "{err}"
        );
    }

    #[test]
    fn retries_out_of_range_in_the_environment_name_the_variable() {
        let mut config = Config::default();
        let err = config
            .apply_env(|var| (var == "WISP_RETRIES").then(|| "1000".to_owned()))
            .expect_err("above the range")
            .to_string();
        assert_eq!(
            err,
            format!(
                "environment variable WISP_RETRIES=\"1000\" is invalid: a whole number of \
                 retries, 0 to {}",
                crate::MAX_RETRIES
            )
        );
        let mut top = Config::default();
        top.apply_env(|var| (var == "WISP_RETRIES").then(|| crate::MAX_RETRIES.to_string()))
            .expect("the largest is fine");
        assert_eq!(top.retry.retries, crate::MAX_RETRIES);
    }

    #[test]
    fn retrying_function_errors_without_retries_is_a_warning_naming_both_keys() {
        let mut file = Config::from_yaml("wisp:\n  retry_function_errors: true\n").expect("valid");
        file.source = Some(PathBuf::from("/etc/wisp/test.yaml"));
        let warning = file.ineffective_retry().expect("no retries");
        assert!(
            warning.starts_with(
                "wisp.retry_function_errors is true in /etc/wisp/test.yaml, but has no effect \
                 without retries: wisp.retries is 0 (its default)"
            ),
            "{warning}"
        );
        file.check().expect("a warning, not an error");

        let mut env = Config::from_yaml("wisp:\n  retries: 2\n  retry_function_errors: true\n")
            .expect("valid");
        assert_eq!(env.ineffective_retry(), None);
        env.apply_env(|var| (var == "WISP_RETRIES").then(|| "0".to_owned()))
            .expect("valid");
        let warning = env
            .ineffective_retry()
            .expect("the environment took the retries");
        assert!(warning.contains("WISP_RETRIES is 0"), "{warning}");

        // The CLI flag says so itself; off says nothing.
        let mut flag = Config::default();
        flag.retry.function_errors = true;
        flag.origins
            .insert("wisp.retry_function_errors".to_owned(), Origin::Program);
        assert_eq!(flag.ineffective_retry(), None);
        assert_eq!(Config::default().ineffective_retry(), None);
    }

    #[test]
    fn errors_name_the_key() {
        let mut config = Config::default();
        let env = config
            .apply_env(|var| (var == "WISP_RUNTIME_MEMORY").then(|| "lots".to_owned()))
            .expect_err("not a number")
            .to_string();
        assert!(
            env.contains("WISP_RUNTIME_MEMORY")
                && env.contains("a whole number of megabytes, 1 to 4096"),
            "{env}"
        );
        config.runtime_memory = 0;
        let range = config.check().expect_err("zero memory").to_string();
        assert!(range.contains("runtime_memory"), "{range}");
    }

    #[test]
    fn openwhisk_memory_is_checked_against_the_platform_range() {
        let low =
            Config::from_yaml("wisp:\n  backend: openwhisk\nopenwhisk:\n  runtime_memory: 64\n")
                .expect("parses");
        let error = low.check().expect_err("64 MB").to_string();
        assert!(
            error.starts_with(
                "openwhisk.runtime_memory is 64 MB, but OpenWhisk accepts an action memory of \
                 128 to 512 MB: give a value from 128 to 512 (such as 128)"
            ),
            "{error}"
        );
        assert!(
            error.contains("set `min_memory` and `max_memory` in the `openwhisk` section"),
            "{error}"
        );
        // The same memory on this machine is fine.
        let local = Config::from_yaml("localhost:\n  runtime_memory: 64\n").expect("parses");
        local.check().expect("64 MB is fine on localhost");
        // With no memory of its own, OpenWhisk takes localhost's.
        let mut inherited =
            Config::from_yaml("wisp:\n  backend: openwhisk\nlocalhost:\n  runtime_memory: 1024\n")
                .expect("parses");
        let error = inherited.check().expect_err("1024 MB").to_string();
        assert!(
            error.starts_with("localhost.runtime_memory is 1024 MB")
                && error.contains("(such as 512)"),
            "{error}"
        );
        inherited
            .apply_env(|var| (var == "WISP_RUNTIME_MEMORY").then(|| "100".to_owned()))
            .expect("a number");
        let error = inherited.check().expect_err("100 MB").to_string();
        assert!(
            error.starts_with("WISP_RUNTIME_MEMORY is 100 MB"),
            "{error}"
        );
        // A deployment that allows more says so.
        let raised = Config::from_yaml(
            "wisp:\n  backend: openwhisk\nopenwhisk:\n  runtime_memory: 1024\n  max_memory: 2048\n",
        )
        .expect("parses");
        raised.check().expect("within the raised range");
        let flag = raised
            .check_openwhisk_memory(4096, "--memory")
            .expect_err("above")
            .to_string();
        assert!(
            flag.starts_with(
                "--memory is 4096 MB, but OpenWhisk accepts an action memory of 128 to 2048 MB"
            ),
            "{flag}"
        );
        raised
            .check_openwhisk_memory(128, "--memory")
            .expect("the smallest is allowed");
        let inverted =
            Config::from_yaml("wisp:\n  backend: openwhisk\nopenwhisk:\n  min_memory: 600\n")
                .expect("parses");
        let error = inverted.check().expect_err("min above max").to_string();
        assert!(
            error.contains("openwhisk.min_memory and openwhisk.max_memory")
                && error.contains("found 600 and 512"),
            "{error}"
        );
    }

    #[test]
    fn the_masked_yaml_marks_defaults_and_overrides() {
        let mut config = Config::from_yaml(
            "localhost:\n  workers: 3\n  storage_bucket: mine\nopenwhisk:\n  api_key: u:s3cr3t\n",
        )
        .expect("valid");
        config
            .apply_env(|var| (var == "WISP_RUNTIME_TIMEOUT").then(|| "9".to_owned()))
            .expect("a number");
        let yaml = config.to_masked_yaml();
        assert!(!yaml.contains("s3cr3t"), "{yaml}");
        assert!(yaml.contains("\n  api_key: '********'\n"), "{yaml}");
        assert!(yaml.contains("\n  workers: 3\n"), "{yaml}");
        assert!(yaml.contains("\n  storage_bucket: mine\n"), "{yaml}");
        assert!(
            yaml.contains("\n  runtime_memory: 256  # default\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("\n  runtime_timeout: 9  # from WISP_RUNTIME_TIMEOUT\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("\n  backend: localhost  # default\n"),
            "{yaml}"
        );
        assert!(yaml.contains("\n  max_memory: 512  # default\n"), "{yaml}");
        // Every key line is either set by the file or marked.
        let unmarked: Vec<&str> = yaml
            .lines()
            .filter(|l| l.starts_with("  ") && !l.contains("  # "))
            .map(|l| l.trim().split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(unmarked, ["workers", "storage_bucket", "api_key"], "{yaml}");
        // And it still reads back.
        let back = Config::from_yaml(&yaml).expect("valid YAML");
        assert_eq!(back.runtime_timeout, Duration::from_secs(9));
    }

    #[test]
    fn choosing_openwhisk_later_brings_in_its_memory_and_time() {
        let mut config = Config::from_yaml(
            "localhost:\n  runtime_memory: 1024\nopenwhisk:\n  runtime_memory: 384\n  runtime_timeout: 60\n",
        )
        .expect("valid");
        assert_eq!(config.runtime_memory, 1024);
        config.use_backend(BackendKind::Openwhisk);
        assert_eq!(config.runtime_memory, 384);
        assert_eq!(config.runtime_timeout, Duration::from_secs(60));
        // An override of the environment stays.
        let mut config = Config::from_yaml("openwhisk:\n  runtime_memory: 384\n").expect("valid");
        config
            .apply_env(|var| (var == "WISP_RUNTIME_MEMORY").then(|| "200".to_owned()))
            .expect("a number");
        config.use_backend(BackendKind::Openwhisk);
        assert_eq!(config.runtime_memory, 200);
    }
}
