//! The OpenWhisk backend: its REST client ([`api`]), runtime management
//! ([`runtime`]) and the backend that invokes batches of calls as
//! activations and reads their outcomes back from storage.

pub mod api;
pub(crate) mod backend;
pub mod runtime;

pub use api::{OpenWhiskClient, OpenWhiskError};
pub use runtime::{CleanReport, RuntimeInfo, Runtimes, Selection};

use crate::config::Config;
use crate::{Error, Result};

/// A REST client for the `openwhisk` section of `config`.
///
/// # Errors
///
/// When the endpoint or the API key is missing or malformed; the error
/// names the key to set.
pub fn client(config: &Config) -> Result<OpenWhiskClient> {
    let section = &config.openwhisk;
    let place = config.source.as_ref().map_or_else(
        || "~/.wisp/config.yaml".to_owned(),
        |p| p.display().to_string(),
    );
    let missing = |key: &str, var: &str| {
        Error::Unsupported(format!(
            "the OpenWhisk backend needs `openwhisk.{key}`: set it in {place} or in {var}"
        ))
    };
    let endpoint = section
        .endpoint
        .clone()
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| missing("endpoint", "WISP_OPENWHISK_ENDPOINT"))?;
    let api_key = section
        .api_key
        .clone()
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| missing("api_key", "WISP_OPENWHISK_API_KEY"))?;
    OpenWhiskClient::new(api::ClientConfig {
        endpoint,
        namespace: section.namespace.clone().unwrap_or_else(|| "_".to_owned()),
        api_key,
        insecure: section.insecure,
    })
    .map_err(|e| match e {
        // Say where the value came from: the file or its variable.
        OpenWhiskError::InvalidConfig { key, message } => {
            let var = match key {
                "openwhisk.endpoint" => "WISP_OPENWHISK_ENDPOINT",
                "openwhisk.namespace" => "WISP_OPENWHISK_NAMESPACE",
                _ => "WISP_OPENWHISK_API_KEY",
            };
            Error::Unsupported(format!(
                "invalid `{key}` (set in {place}, or in {var}): {message}"
            ))
        }
        other => other.into(),
    })
}
