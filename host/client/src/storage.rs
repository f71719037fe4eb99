//! Opening the configured storage: a local directory, or an S3 service.

use std::sync::Arc;

use wisp_storage::{LocalStorage, S3Config, S3Storage, Storage};

use crate::config::{Config, StorageKind};
use crate::{Error, Result};

/// Opens the storage that `config` selects and makes sure its bucket is
/// there: local storage creates it; S3 storage creates it only when the
/// section says `create_bucket: true`, and otherwise says how to.
///
/// An S3 service that does not answer fails here, within seconds, rather
/// than at the first result.
///
/// # Errors
///
/// When credentials are missing, the service does not answer or refuses
/// them, or the bucket is missing.
pub async fn open(config: &Config) -> Result<Arc<dyn Storage>> {
    let bucket = config.bucket();
    let storage = connect(config).await?;
    if config.s3_section().is_none() {
        storage.create_bucket(&bucket).await?;
        return Ok(storage);
    }
    if !storage.bucket_exists(&bucket).await? {
        let section = config.s3_section().unwrap_or_default();
        let name = config.storage.to_string();
        if section.create_bucket {
            tracing::info!(%bucket, "creating the bucket");
            storage.create_bucket(&bucket).await?;
        } else {
            return Err(Error::Unsupported(format!(
                "bucket `{bucket}` does not exist in {}: create it with \
                 `wisp storage create-bucket {bucket} -s {name}`, or set \
                 `create_bucket: true` in the `{name}` section of {} to let wisp create it",
                storage.describe(),
                place(config)
            )));
        }
    }
    Ok(storage)
}

fn place(config: &Config) -> String {
    config.source.as_ref().map_or_else(
        || "your config file".to_owned(),
        |p| p.display().to_string(),
    )
}

/// Opens the storage that `config` selects, without looking at any bucket.
///
/// # Errors
///
/// As [`open`], but for the bucket.
pub async fn connect(config: &Config) -> Result<Arc<dyn Storage>> {
    let Some(section) = config.s3_section() else {
        return Ok(Arc::new(LocalStorage::new(&config.storage_dir)));
    };
    let kind = config.storage;
    let name = kind.to_string();
    let place = place(config);
    let mut s3 = S3Config::from_env();
    if let Some(endpoint) = section.endpoint.clone() {
        s3.endpoint = Some(endpoint);
    }
    if let Some(region) = section.region.clone() {
        s3.region = region;
    }
    if let Some(key) = section.access_key_id.clone() {
        s3.access_key_id = key;
        s3.session_token = section.session_token.clone();
    }
    if let Some(secret) = section.secret_access_key.clone() {
        s3.secret_access_key = secret;
    }
    s3.path_style = kind != StorageKind::AwsS3;
    if s3.access_key_id.is_empty() || s3.secret_access_key.is_empty() {
        return Err(Error::Unsupported(format!(
            "{name} storage needs credentials: set access_key_id and secret_access_key in \
             the `{name}` section of {place}, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )));
    }
    if s3.endpoint.is_none() && kind != StorageKind::AwsS3 {
        return Err(Error::Unsupported(format!(
            "{name} storage needs an endpoint: set `endpoint` in the `{name}` section of \
             {place} (for example http://127.0.0.1:9000), or AWS_ENDPOINT_URL"
        )));
    }
    Ok(Arc::new(S3Storage::connect(s3).await?))
}
