//! Runtimes on OpenWhisk: wisp's runtime image deployed as blackbox
//! actions, one per image and memory size, inside wisp's package.
//!
//! An action's name spells its image, memory and wisp version, and its
//! annotations carry the same facts exactly, so `list` reads them back.
//! After each deploy the runtime is asked for its metadata (its wisp
//! version and the guest ABIs it runs), which is kept in storage under
//! `wisp/runtimes/` and checked before any job is invoked.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wisp_runtime::action::{CODE_KEY_VAR, RuntimeMetadata};
use wisp_runtime::settings::STORAGE_SETTINGS_VAR;
use wisp_runtime::{StorageSettings, protocol};
use wisp_storage::Storage;

use super::api::{ActionPut, ActionSummary, Invocation, OpenWhiskClient, Parameter};
use crate::config::{Config, StorageKind};
use crate::{Error, Result};

/// The package that holds wisp's actions.
pub const PACKAGE: &str = "wisp";
/// The word that names the default runtime on the command line.
pub const DEFAULT_RUNTIME: &str = "default";
/// Where runtime metadata is kept in storage.
const METADATA_PREFIX: &str = "wisp/runtimes/";
/// How long a deploy waits for the runtime to answer its first call.
const PROBE_WAIT: Duration = Duration::from_secs(120);

/// The annotations that describe a runtime action.
const IMAGE_ANNOTATION: &str = "wisp-image";
const MEMORY_ANNOTATION: &str = "wisp-memory";
const VERSION_ANNOTATION: &str = "wisp-version";

/// One deployed runtime, as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// The action's name in wisp's package.
    pub action: String,
    /// The Docker image.
    pub image: String,
    /// Memory of each container, in MB.
    pub memory_mb: u64,
    /// The wisp version that deployed it.
    pub wisp_version: String,
}

/// What is kept in storage about a deployed runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredRuntime {
    info: RuntimeInfo,
    metadata: RuntimeMetadata,
    deployed_us: u64,
}

/// Which runtimes a command applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every runtime in wisp's package.
    All,
    /// The runtimes of one image (`default` resolved already).
    Image(String),
}

/// The image that `default` stands for: wisp's runtime at this version,
/// in the configured registry.
pub fn default_image(config: &Config) -> String {
    let server = config
        .openwhisk
        .docker_server
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("docker.io");
    format!(
        "{}/wisp/runtime-openwhisk:{}",
        server.trim_end_matches('/'),
        env!("CARGO_PKG_VERSION")
    )
}

/// An image as named on the command line or in the config: `default` (or
/// nothing) is the default runtime.
pub fn resolve_image(config: &Config, name: Option<&str>) -> String {
    match name
        .or(config.openwhisk.runtime.as_deref())
        .filter(|n| !n.is_empty())
    {
        None | Some(DEFAULT_RUNTIME) => default_image(config),
        Some(image) => image.to_owned(),
    }
}

/// The action that runs `image` with `memory_mb` for this wisp version.
pub fn action_name(image: &str, memory_mb: u64) -> String {
    let image: String = image
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}_{memory_mb}MB_v{}",
        image.trim_start_matches(['.', '-', '_']),
        env!("CARGO_PKG_VERSION")
    )
}

/// The storage settings the runtime gets at `/init`: the same storage the
/// client uses.
///
/// # Errors
///
/// When S3 credentials are missing.
pub fn storage_settings(config: &Config) -> Result<StorageSettings> {
    let bucket = config.bucket();
    let Some(section) = config.s3_section() else {
        return Ok(StorageSettings::Local {
            dir: config.storage_dir.clone(),
            bucket,
        });
    };
    let env = wisp_storage::S3Config::from_env();
    let access_key_id = section.access_key_id.unwrap_or(env.access_key_id);
    let secret_access_key = section.secret_access_key.unwrap_or(env.secret_access_key);
    if access_key_id.is_empty() || secret_access_key.is_empty() {
        return Err(Error::Unsupported(format!(
            "the runtime needs credentials for {} storage: set access_key_id and \
             secret_access_key in its section of the config",
            config.storage
        )));
    }
    Ok(StorageSettings::S3 {
        endpoint: section.endpoint.or(env.endpoint),
        region: section.region.unwrap_or(env.region),
        access_key_id,
        secret_access_key,
        session_token: section.session_token.or(env.session_token),
        path_style: config.storage != StorageKind::AwsS3,
        bucket,
    })
}

/// Deploys, checks, lists and removes runtimes.
pub struct Runtimes {
    client: OpenWhiskClient,
    storage: Arc<dyn Storage>,
    bucket: String,
    settings: StorageSettings,
    timeout: Duration,
    concurrency: u32,
}

impl std::fmt::Debug for Runtimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtimes")
            .field("client", &self.client)
            .field("bucket", &self.bucket)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Runtimes {
    /// Runtime management for the OpenWhisk and storage of `config`.
    ///
    /// # Errors
    ///
    /// When the OpenWhisk section is incomplete.
    pub fn new(config: &Config, storage: Arc<dyn Storage>) -> Result<Self> {
        Ok(Self {
            client: super::client(config)?,
            storage,
            bucket: config.bucket(),
            settings: storage_settings(config)?,
            timeout: config.runtime_timeout,
            concurrency: config.openwhisk.runtime_concurrency.unwrap_or(1),
        })
    }

    /// The REST client.
    pub fn client(&self) -> &OpenWhiskClient {
        &self.client
    }

    /// Deploys `image` with `memory_mb` per container (replacing an action
    /// of the same name), asks it for its metadata and keeps that in
    /// storage.
    ///
    /// # Errors
    ///
    /// When OpenWhisk refuses the action, or the runtime does not answer:
    /// most often because the image is not in the registry.
    pub async fn deploy(&self, image: &str, memory_mb: u64) -> Result<RuntimeInfo> {
        let action = action_name(image, memory_mb);
        super::api::validate_name("action", &action)?;
        self.client.put_package(PACKAGE, false).await?;
        let settings = serde_json::to_string(&self.settings)
            .map_err(|e| Error::Unsupported(format!("cannot encode storage settings: {e}")))?;
        let code_key = wisp_engine::CodeSeal::generate().map_err(|e| {
            Error::Unsupported(format!(
                "cannot make a key for the runtime's compiled code: {e}"
            ))
        })?;
        let put = ActionPut {
            image: image.to_owned(),
            memory_mb,
            timeout_ms: self.timeout.as_millis() as u64,
            concurrency: self.concurrency,
            logs_mb: None,
            annotations: vec![
                (IMAGE_ANNOTATION.to_owned(), Value::from(image)),
                (MEMORY_ANNOTATION.to_owned(), Value::from(memory_mb)),
                (
                    VERSION_ANNOTATION.to_owned(),
                    Value::from(env!("CARGO_PKG_VERSION")),
                ),
            ],
            parameters: vec![
                Parameter {
                    key: STORAGE_SETTINGS_VAR.to_owned(),
                    value: Value::from(settings),
                    init: true,
                },
                // The containers of this deployment share compiled modules
                // through storage, sealed with a key of its own.
                Parameter {
                    key: CODE_KEY_VAR.to_owned(),
                    value: Value::from(code_key.to_hex()),
                    init: true,
                },
            ],
        };
        self.client.put_action(PACKAGE, &action, &put, true).await?;
        tracing::info!(%action, %image, memory_mb, "deployed; asking the runtime for its metadata");
        let metadata = self.probe(&action, image).await?;
        let info = RuntimeInfo {
            action: action.clone(),
            image: image.to_owned(),
            memory_mb,
            wisp_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let stored = StoredRuntime {
            info: info.clone(),
            metadata,
            deployed_us: wisp_runtime::now_us(),
        };
        let body = serde_json::to_vec_pretty(&stored)
            .map_err(|e| Error::Unsupported(format!("cannot encode runtime metadata: {e}")))?;
        self.storage
            .put(&self.bucket, &metadata_key(&action), Bytes::from(body))
            .await?;
        Ok(info)
    }

    /// Invokes the runtime for its metadata and waits for the answer.
    async fn probe(&self, action: &str, image: &str) -> Result<RuntimeMetadata> {
        let request = serde_json::json!({ "wisp": "metadata" });
        let started = std::time::Instant::now();
        let mut invocation = self
            .client
            .invoke_blocking(PACKAGE, action, &request, Duration::from_secs(60))
            .await?;
        let record = loop {
            match invocation {
                Invocation::Finished(record) => break record,
                Invocation::BareResult { result, .. } => {
                    return parse_metadata(action, image, &result);
                }
                Invocation::StillRunning(id) => {
                    if started.elapsed() > PROBE_WAIT {
                        return Err(Error::Unsupported(format!(
                            "runtime {image} did not answer within {PROBE_WAIT:?} (activation {id})"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    invocation = match self.client.activation(&id).await? {
                        Some(record) => Invocation::Finished(Box::new(record)),
                        None => Invocation::StillRunning(id),
                    };
                }
            }
        };
        let result = record.response.result.clone().unwrap_or(Value::Null);
        if !record.response.success {
            let why = result.get("error").map_or_else(
                || result.to_string(),
                |e| e.as_str().map_or_else(|| e.to_string(), str::to_owned),
            );
            return Err(Error::Unsupported(format!(
                "runtime {image} failed to start ({}): {why}. If the image is not in the \
                 registry, build and push it with `wisp runtime build {image} -b openwhisk`",
                record.response.status
            )));
        }
        parse_metadata(action, image, &result)
    }

    /// The runtime a job of `abi` should run on: deployed already and
    /// checked, or deployed now.
    ///
    /// # Errors
    ///
    /// When the runtime cannot be deployed, or it runs another guest ABI.
    pub async fn ensure(&self, image: &str, memory_mb: u64, abi: u32) -> Result<String> {
        let action = action_name(image, memory_mb);
        let stored = match self.stored(&action).await? {
            Some(stored) if self.client.get_action(PACKAGE, &action).await?.is_some() => stored,
            _ => {
                tracing::info!(%image, memory_mb, "runtime not deployed yet: deploying it");
                self.deploy(image, memory_mb).await?;
                self.stored(&action).await?.ok_or_else(|| {
                    Error::Unsupported(format!("runtime metadata for {action} vanished"))
                })?
            }
        };
        let meta = &stored.metadata;
        if !(meta.abi_min..=meta.abi_max).contains(&abi) {
            return Err(Error::Unsupported(format!(
                "runtime {image} (wisp {}) runs guest ABI {}..={}, and this module needs ABI \
                 {abi}: update the runtime with `wisp runtime update {image} -b openwhisk`, \
                 or rebuild the module with a matching wisp-guest",
                meta.wisp_version, meta.abi_min, meta.abi_max
            )));
        }
        if meta.wisp_version != env!("CARGO_PKG_VERSION") {
            tracing::warn!(
                runtime = %meta.wisp_version,
                client = env!("CARGO_PKG_VERSION"),
                "the runtime is from another wisp version; `wisp runtime update` brings it level"
            );
        }
        Ok(action)
    }

    async fn stored(&self, action: &str) -> Result<Option<StoredRuntime>> {
        let key = metadata_key(action);
        if self.storage.head(&self.bucket, &key).await?.is_none() {
            return Ok(None);
        }
        let bytes = self.storage.get(&self.bucket, &key).await?;
        // Unreadable metadata is as good as none: the runtime is deployed
        // again and the object rewritten.
        Ok(serde_json::from_slice(&bytes).ok())
    }

    /// The runtimes deployed in wisp's package.
    ///
    /// # Errors
    ///
    /// When OpenWhisk cannot be reached.
    pub async fn list(&self) -> Result<Vec<RuntimeInfo>> {
        if self.client.get_package(PACKAGE).await?.is_none() {
            return Ok(Vec::new());
        }
        let actions = self.client.list_actions(PACKAGE).await?;
        Ok(actions.iter().filter_map(runtime_info).collect())
    }

    fn select(runtimes: Vec<RuntimeInfo>, which: &Selection) -> Vec<RuntimeInfo> {
        runtimes
            .into_iter()
            .filter(|r| match which {
                Selection::All => true,
                Selection::Image(image) => &r.image == image,
            })
            .collect()
    }

    /// Deploys the selected runtimes again, with this wisp version and the
    /// current storage settings; returns what was updated.
    ///
    /// # Errors
    ///
    /// As [`deploy`](Self::deploy).
    pub async fn update(&self, which: &Selection) -> Result<Vec<RuntimeInfo>> {
        let mut updated = Vec::new();
        for runtime in Self::select(self.list().await?, which) {
            if runtime.wisp_version != env!("CARGO_PKG_VERSION") {
                // Another version's action keeps its name; this version's
                // replaces it.
                self.remove(&runtime).await?;
            }
            updated.push(self.deploy(&runtime.image, runtime.memory_mb).await?);
        }
        Ok(updated)
    }

    /// Removes the selected runtimes and their metadata; the package goes
    /// when it is empty. Returns what was removed.
    ///
    /// # Errors
    ///
    /// When OpenWhisk or storage fails.
    pub async fn delete(&self, which: &Selection) -> Result<Vec<RuntimeInfo>> {
        let removed = Self::select(self.list().await?, which);
        for runtime in &removed {
            self.remove(runtime).await?;
        }
        if self.list().await?.is_empty() {
            self.client.delete_package(PACKAGE, false).await?;
        }
        Ok(removed)
    }

    async fn remove(&self, runtime: &RuntimeInfo) -> Result<()> {
        self.client.delete_action(PACKAGE, &runtime.action).await?;
        self.storage
            .delete(&self.bucket, &metadata_key(&runtime.action))
            .await?;
        Ok(())
    }

    /// Removes everything wisp put on OpenWhisk and in storage: every
    /// runtime action, the package, every job's data and the runtime
    /// metadata and the stored modules. Users' own objects stay.
    ///
    /// # Errors
    ///
    /// When OpenWhisk or storage fails.
    pub async fn clean(&self) -> Result<CleanReport> {
        let mut report = CleanReport::default();
        if self.client.get_package(PACKAGE).await?.is_some() {
            for action in self.client.list_actions(PACKAGE).await? {
                self.client.delete_action(PACKAGE, &action.name).await?;
                report.actions += 1;
            }
            self.client.delete_package(PACKAGE, true).await?;
            report.package = true;
        }
        report.job_objects = self
            .storage
            .delete_prefix(&self.bucket, &protocol::jobs_prefix())
            .await?;
        report.module_objects = self
            .storage
            .delete_prefix(&self.bucket, &protocol::modules_prefix())
            .await?
            + self
                .storage
                .delete_prefix(&self.bucket, &protocol::code_prefix())
                .await?;
        report.metadata_objects = self
            .storage
            .delete_prefix(&self.bucket, METADATA_PREFIX)
            .await?;
        Ok(report)
    }
}

/// What [`Runtimes::clean`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// Runtime actions.
    pub actions: usize,
    /// Whether wisp's package was there.
    pub package: bool,
    /// Objects of jobs.
    pub job_objects: usize,
    /// Stored modules.
    pub module_objects: usize,
    /// Runtime metadata objects.
    pub metadata_objects: usize,
}

fn metadata_key(action: &str) -> String {
    format!("{METADATA_PREFIX}{action}.json")
}

fn parse_metadata(action: &str, image: &str, result: &Value) -> Result<RuntimeMetadata> {
    serde_json::from_value(result.clone()).map_err(|e| {
        Error::Unsupported(format!(
            "action {action} answered, but not as a wisp runtime ({e}): is {image} wisp's \
             runtime image? Build one with `wisp runtime build {image} -b openwhisk`"
        ))
    })
}

fn runtime_info(action: &ActionSummary) -> Option<RuntimeInfo> {
    let annotation = |key: &str| {
        action
            .annotations
            .iter()
            .find(|a| a.key == key)
            .map(|a| &a.value)
    };
    Some(RuntimeInfo {
        action: action.name.clone(),
        image: annotation(IMAGE_ANNOTATION)?.as_str()?.to_owned(),
        memory_mb: annotation(MEMORY_ANNOTATION)?
            .as_u64()
            .or(action.limits.memory)?,
        wisp_version: annotation(VERSION_ANNOTATION)?.as_str()?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_valid_entity_names_and_spell_their_runtime() {
        let name = action_name("127.0.0.1:5000/me/wisp-runtime:0.1", 512);
        assert_eq!(
            name,
            format!(
                "127.0.0.1_5000_me_wisp-runtime_0.1_512MB_v{}",
                env!("CARGO_PKG_VERSION")
            )
        );
        super::super::api::validate_name("action", &name).expect("a valid name");
        let odd = action_name("/weird//image:tag@sha256:abc", 256);
        super::super::api::validate_name("action", &odd).expect("a valid name");
    }

    #[test]
    fn default_names_the_registry_image_of_this_version() {
        let mut config = Config::default();
        assert!(resolve_image(&config, Some("default")).starts_with("docker.io/wisp/"));
        config.openwhisk.docker_server = Some("127.0.0.1:5000".to_owned());
        assert_eq!(
            resolve_image(&config, None),
            format!(
                "127.0.0.1:5000/wisp/runtime-openwhisk:{}",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(resolve_image(&config, Some("me/x:1")), "me/x:1");
    }
}
