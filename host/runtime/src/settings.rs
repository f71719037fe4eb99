//! How a worker outside the client reaches the job's storage.
//!
//! The client hands these settings to the runtime once, when it deploys an
//! action (as an init parameter of the action), never inside a job: job
//! specs and activation payloads carry no credentials.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use wisp_storage::{LocalStorage, S3Config, S3Storage, Storage, StorageError};

/// The name under which the settings travel: an environment variable of
/// the action's `/init`, holding them as JSON.
pub const STORAGE_SETTINGS_VAR: &str = "WISP_STORAGE_CONFIG";

/// Where jobs live, and the credentials to reach them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StorageSettings {
    /// A directory on the worker's own file system: only useful where the
    /// worker shares the client's machine.
    Local {
        /// The directory holding one subdirectory per bucket.
        dir: PathBuf,
        /// The bucket of jobs.
        bucket: String,
    },
    /// An S3 service.
    S3 {
        /// Its URL; `None` for AWS S3 itself.
        endpoint: Option<String>,
        /// The region requests are signed for.
        region: String,
        /// The access key id.
        access_key_id: String,
        /// The secret access key.
        secret_access_key: String,
        /// A session token, for temporary credentials.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_token: Option<String>,
        /// Address buckets as `endpoint/bucket`.
        path_style: bool,
        /// The bucket of jobs.
        bucket: String,
    },
}

impl StorageSettings {
    /// The bucket that holds jobs.
    pub fn bucket(&self) -> &str {
        match self {
            Self::Local { bucket, .. } | Self::S3 { bucket, .. } => bucket,
        }
    }

    /// Opens the storage.
    ///
    /// # Errors
    ///
    /// When the S3 service does not answer or refuses the credentials.
    pub async fn open(&self) -> Result<Arc<dyn Storage>, StorageError> {
        Ok(match self {
            Self::Local { dir, .. } => Arc::new(LocalStorage::new(dir)),
            Self::S3 {
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                session_token,
                path_style,
                ..
            } => {
                let config = S3Config {
                    endpoint: endpoint.clone(),
                    region: region.clone(),
                    access_key_id: access_key_id.clone(),
                    secret_access_key: secret_access_key.clone(),
                    session_token: session_token.clone(),
                    path_style: *path_style,
                    ..S3Config::default()
                };
                Arc::new(S3Storage::connect(config).await?)
            }
        })
    }
}

impl std::fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local { dir, bucket } => f
                .debug_struct("Local")
                .field("dir", dir)
                .field("bucket", bucket)
                .finish(),
            Self::S3 {
                endpoint,
                region,
                access_key_id,
                path_style,
                bucket,
                ..
            } => f
                .debug_struct("S3")
                .field("endpoint", endpoint)
                .field("region", region)
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"***")
                .field("path_style", path_style)
                .field("bucket", bucket)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let settings = StorageSettings::S3 {
            endpoint: Some("http://127.0.0.1:9000".to_owned()),
            region: "us-east-1".to_owned(),
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: "wJalrXUtnFEMI-very-secret".to_owned(),
            session_token: Some("token-secret".to_owned()),
            path_style: true,
            bucket: "jobs".to_owned(),
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(!shown.contains("token-secret"), "{shown}");
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        let json = serde_json::to_string(&settings).expect("encodes");
        let back: StorageSettings = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, settings);
    }
}
