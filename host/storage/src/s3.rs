//! Any S3 service as object storage: AWS S3, MinIO, Ceph.
//!
//! The client is `aws-sdk-s3`, configured by hand from an [`S3Config`]
//! rather than through the SDK's own environment and profile chain, so what
//! wisp connects to is exactly what its configuration says.
//!
//! Large objects go up as multipart uploads, a few parts at a time, and a
//! failed upload is aborted so that its parts do not linger. Errors are
//! mapped to the [`StorageError`] variants that the local backend uses too
//! (a missing bucket or key), and to variants of their own for refused
//! credentials and an endpoint that does not answer; everything else keeps
//! the service's full message.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration,
    Delete, ObjectIdentifier,
};
use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

use crate::{ObjectMeta, Progress, Result, Storage, StorageError, validate_bucket, validate_key};

/// Objects larger than this are uploaded in parts.
const MULTIPART_THRESHOLD: u64 = 16 << 20;
/// The size of each part, unless the object needs more than
/// [`MAX_PARTS`] of them.
const PART_SIZE: u64 = 8 << 20;
/// S3's limit on the parts of one upload.
const MAX_PARTS: u64 = 10_000;
/// Parts uploaded at once; each holds one part in memory.
const PARTS_IN_FLIGHT: usize = 4;
/// Keys in one DeleteObjects request, S3's limit.
const DELETE_BATCH: usize = 1000;

/// Where an S3 service is and how to sign in to it.
#[derive(Clone)]
pub struct S3Config {
    /// The service's URL, such as `http://127.0.0.1:9000`; `None` means
    /// AWS S3 itself, in `region`.
    pub endpoint: Option<String>,
    /// The region to sign requests for (`us-east-1` unless the service
    /// says otherwise).
    pub region: String,
    /// The access key id, which appears in messages.
    pub access_key_id: String,
    /// The secret access key, which never does.
    pub secret_access_key: String,
    /// A session token, for temporary credentials.
    pub session_token: Option<String>,
    /// Address buckets as `endpoint/bucket` rather than as
    /// `bucket.endpoint`: needed by MinIO and Ceph.
    pub path_style: bool,
    /// How long to wait for a connection to the service.
    pub connect_timeout: Duration,
    /// How long one operation may take, retries included.
    pub operation_timeout: Duration,
    /// Attempts per operation, the first included; failures that may pass
    /// (throttling, 5xx, dropped connections) are retried with backoff.
    pub max_attempts: u32,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".to_owned(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            session_token: None,
            path_style: false,
            connect_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(120),
            max_attempts: 3,
        }
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |secret: &str| if secret.is_empty() { "" } else { "<hidden>" };
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &self.session_token.as_deref().map(hidden))
            .field("path_style", &self.path_style)
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

impl S3Config {
    /// A configuration taken from the environment variables that AWS tools
    /// read (see [`fill_missing_from_env`](Self::fill_missing_from_env)),
    /// with the defaults for everything else.
    pub fn from_env() -> Self {
        let mut config = Self {
            region: String::new(),
            ..Self::default()
        }
        .fill_missing_from_env();
        if config.region.is_empty() {
            config.region = Self::default().region;
        }
        config
    }

    /// Fills what this configuration leaves empty from the environment:
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`
    /// (only with an access key id from the environment too, as a token
    /// belongs to its key), `AWS_REGION` or `AWS_DEFAULT_REGION`, and
    /// `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`.
    pub fn fill_missing_from_env(self) -> Self {
        self.fill_missing_from(|name| std::env::var(name).ok())
    }

    fn fill_missing_from(mut self, var: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        if self.access_key_id.is_empty()
            && let Some(id) = var("AWS_ACCESS_KEY_ID")
        {
            self.access_key_id = id;
            if self.session_token.is_none() {
                self.session_token = var("AWS_SESSION_TOKEN");
            }
        }
        if self.secret_access_key.is_empty()
            && let Some(secret) = var("AWS_SECRET_ACCESS_KEY")
        {
            self.secret_access_key = secret;
        }
        if self.region.is_empty()
            && let Some(region) = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION"))
        {
            self.region = region;
        }
        if self.endpoint.is_none() {
            self.endpoint = var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL"));
        }
        self
    }
}

/// Checks an endpoint and writes it the way the SDK wants it: with a
/// scheme, without a trailing slash.
fn normalize_endpoint(endpoint: &str) -> Result<String> {
    let trimmed = endpoint.trim().trim_end_matches('/');
    let invalid = |message: String| Err(StorageError::InvalidConfig { message });
    let Some((scheme, rest)) = trimmed.split_once("://") else {
        return invalid(format!(
            "endpoint `{endpoint}` has no scheme: write http://{trimmed} \
             (or https://{trimmed} if the service uses TLS)"
        ));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return invalid(format!(
            "endpoint `{endpoint}` has the scheme `{scheme}`; an S3 endpoint starts \
             with http:// or https://"
        ));
    }
    if rest.is_empty() || rest.starts_with('/') {
        return invalid(format!(
            "endpoint `{endpoint}` names no host: write it as http://HOST:PORT"
        ));
    }
    Ok(trimmed.to_owned())
}

/// Object storage in an S3 service.
#[derive(Clone)]
pub struct S3Storage {
    client: Client,
    /// The endpoint, for messages.
    endpoint: String,
    access_key_id: String,
    region: String,
    /// Buckets seen to exist, so that a write checks its bucket once per
    /// process rather than once per object (see [`S3Storage::require_bucket`]).
    known_buckets: Arc<Mutex<HashSet<String>>>,
}

impl fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Storage")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Whether a key has an empty segment: a leading `/`, or `//` inside.
fn has_empty_segment(key: &str) -> bool {
    key.starts_with('/') || key.contains("//")
}

/// What an operation was working on, for its errors.
#[derive(Clone, Copy)]
struct Target<'a> {
    op: &'static str,
    bucket: &'a str,
    key: Option<&'a str>,
}

impl<'a> Target<'a> {
    fn bucket(op: &'static str, bucket: &'a str) -> Self {
        Self {
            op,
            bucket,
            key: None,
        }
    }

    fn object(op: &'static str, bucket: &'a str, key: &'a str) -> Self {
        Self {
            op,
            bucket,
            key: Some(key),
        }
    }
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key {
            Some(key) => write!(f, "{} of `{key}` in bucket `{}`", self.op, self.bucket),
            None if self.bucket.is_empty() => f.write_str(self.op),
            None => write!(f, "{} of bucket `{}`", self.op, self.bucket),
        }
    }
}

/// Error codes that mean the credentials themselves were not accepted.
const REJECTED_CREDENTIALS: &[&str] = &[
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "InvalidSecurity",
    "NotSignedUp",
];

fn status<E>(err: &SdkError<E>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// S3 quotes ETags; wisp passes them around without the quotes.
fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

fn system_time(time: Option<&DateTime>) -> SystemTime {
    time.and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(UNIX_EPOCH)
}

fn size(length: Option<i64>) -> u64 {
    length.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

/// The part size for an object of `size` bytes: [`PART_SIZE`], or more
/// when that would make more than [`MAX_PARTS`] parts.
fn part_size(size: u64) -> u64 {
    PART_SIZE.max(size.div_ceil(MAX_PARTS).next_multiple_of(1 << 20))
}

/// Where the parts of a multipart upload come from.
enum Parts<'a> {
    Memory(Bytes),
    File(tokio::fs::File, &'a Path),
}

impl Parts<'_> {
    /// The next `len` bytes; parts are read in order.
    async fn next(&mut self, offset: u64, len: u64) -> Result<Bytes> {
        match self {
            Parts::Memory(data) => Ok(data.slice(offset as usize..(offset + len) as usize)),
            Parts::File(file, path) => {
                let mut buffer = vec![0; len as usize];
                file.read_exact(&mut buffer).await.map_err(|source| {
                    let source = if source.kind() == std::io::ErrorKind::UnexpectedEof {
                        std::io::Error::new(
                            source.kind(),
                            "the file changed size during the upload",
                        )
                    } else {
                        source
                    };
                    StorageError::Io {
                        op: "read",
                        target: path.display().to_string(),
                        source,
                    }
                })?;
                Ok(Bytes::from(buffer))
            }
        }
    }
}

impl S3Storage {
    /// Connects to the service that `config` describes, and checks with
    /// one quick request that it answers and accepts the credentials, so
    /// that a wrong endpoint or key fails here, in seconds, and not in the
    /// middle of a job.
    pub async fn connect(config: S3Config) -> Result<Self> {
        let storage = Self::new(config)?;
        storage.probe().await?;
        Ok(storage)
    }

    /// The client for `config`, without the check that
    /// [`connect`](Self::connect) makes.
    pub fn new(config: S3Config) -> Result<Self> {
        let endpoint = config
            .endpoint
            .as_deref()
            .map(normalize_endpoint)
            .transpose()?;
        if config.access_key_id.is_empty() || config.secret_access_key.is_empty() {
            return Err(StorageError::InvalidConfig {
                message: "S3 storage needs credentials: set the access key id and the \
                          secret access key (in the configuration, or as \
                          AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                    .to_owned(),
            });
        }
        let region = if config.region.trim().is_empty() {
            S3Config::default().region
        } else {
            config.region.trim().to_owned()
        };
        let credentials = Credentials::new(
            &config.access_key_id,
            &config.secret_access_key,
            config.session_token.clone(),
            None,
            "wisp",
        );
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.clone()))
            .credentials_provider(credentials)
            .force_path_style(config.path_style)
            .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts.max(1)))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(config.connect_timeout)
                    .operation_timeout(config.operation_timeout)
                    .build(),
            )
            // Checksums only where S3 requires them: the S3-compatible
            // services that wisp meets (MinIO, Ceph, their older releases
            // above all) do not all accept the trailing checksums that the
            // SDK adds otherwise, and multipart completion then needs
            // nothing but the parts' ETags everywhere.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        builder = builder.http_client(http_client());
        Ok(Self {
            client: Client::from_conf(builder.build()),
            endpoint: endpoint.unwrap_or_else(|| format!("AWS S3 ({region})")),
            access_key_id: config.access_key_id,
            region,
            known_buckets: Arc::default(),
        })
    }

    /// The endpoint, as messages name it.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// One ListBuckets, with no retries and a short timeout.
    async fn probe(&self) -> Result<()> {
        let quick = aws_sdk_s3::Config::builder()
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(5).max(self.connect_timeout() * 2))
                    .build(),
            );
        // A service that answers with a server error (5xx) is up but
        // briefly unwell: ask again a couple of times before giving up.
        // Refusals and silence are final at once, so failing stays fast.
        let mut attempt = 1;
        loop {
            let answer = self
                .client
                .list_buckets()
                .customize()
                .config_override(quick.clone())
                .send()
                .await;
            match answer {
                Ok(_) => return Ok(()),
                // The credentials were accepted, but may not list buckets:
                // that is allowed, since wisp needs only its own bucket.
                Err(e) if e.code() == Some("AccessDenied") => return Ok(()),
                // The service answered, but does not list buckets.
                Err(e) if e.code() == Some("NotImplemented") || status(&e) == Some(501) => {
                    return Ok(());
                }
                Err(e) if attempt < 3 && status(&e).is_some_and(|s| s >= 500) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Err(self.error(e, Target::bucket("ListBuckets (connection check)", "")));
                }
            }
        }
    }

    fn connect_timeout(&self) -> Duration {
        self.client
            .config()
            .timeout_config()
            .and_then(|t| t.connect_timeout())
            .unwrap_or(Duration::from_secs(3))
    }

    fn known_buckets(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.known_buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fails with [`StorageError::NoSuchBucket`] unless the bucket exists.
    /// S3 refuses a write into a missing bucket by itself, but not every
    /// S3-compatible service does (s3s-fs creates the bucket), so writes
    /// check first, once per bucket and process. A key that may write but
    /// not look at the bucket (HeadBucket needs s3:ListBucket) skips the
    /// check.
    async fn require_bucket(&self, bucket: &str) -> Result<()> {
        if self.known_buckets().contains(bucket) {
            return Ok(());
        }
        match self.bucket_exists(bucket).await {
            Ok(true) | Err(StorageError::Denied { .. }) => {
                self.known_buckets().insert(bucket.to_owned());
                Ok(())
            }
            Ok(false) => Err(StorageError::NoSuchBucket {
                bucket: bucket.to_owned(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Maps an SDK error to a [`StorageError`].
    fn error<E>(&self, err: SdkError<E>, target: Target<'_>) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let error = self.classify(err, target);
        if let StorageError::NoSuchBucket { bucket } = &error {
            self.known_buckets().remove(bucket);
        }
        error
    }

    fn classify<E>(&self, err: SdkError<E>, target: Target<'_>) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let unreachable = |err: &SdkError<E>| StorageError::Unreachable {
            endpoint: self.endpoint.clone(),
            message: causes(err),
        };
        match &err {
            SdkError::TimeoutError(_) => return unreachable(&err),
            SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
                return unreachable(&err);
            }
            _ => {}
        }
        let status = status(&err);
        let code = err.code().unwrap_or_default().to_owned();
        let detail = || match (err.code(), err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            (None, _) => format!("HTTP {}", status.unwrap_or_default()),
        };
        let id = &self.access_key_id;
        let endpoint = &self.endpoint;
        if code == "NoSuchBucket"
            || (status == Some(404) && target.key.is_none() && !target.bucket.is_empty())
        {
            return StorageError::NoSuchBucket {
                bucket: target.bucket.to_owned(),
            };
        }
        if let Some(key) = target.key
            && (code == "NoSuchKey" || status == Some(404))
        {
            return StorageError::NotFound {
                bucket: target.bucket.to_owned(),
                key: key.to_owned(),
            };
        }
        if REJECTED_CREDENTIALS.contains(&code.as_str()) {
            return StorageError::Denied {
                message: format!(
                    "the S3 service at {endpoint} rejected the credentials of access key id \
                     `{id}` ({}); check the access key id and the secret access key{}",
                    detail(),
                    if code.contains("Token") {
                        ", and renew the session token"
                    } else {
                        ""
                    }
                ),
            };
        }
        if status == Some(403) || code == "AccessDenied" || code == "AllAccessDisabled" {
            let hint = if code.is_empty() {
                "; either the credentials are wrong or they lack that permission"
            } else {
                ""
            };
            return StorageError::Denied {
                message: format!(
                    "the S3 service at {endpoint} refused the {target} to access key id \
                     `{id}` ({}){hint}; grant that key access, or use other credentials",
                    detail()
                ),
            };
        }
        if status == Some(301)
            && let Some(region) = err
                .raw_response()
                .and_then(|r| r.headers().get("x-amz-bucket-region"))
        {
            return StorageError::Backend {
                op: target.to_string(),
                message: format!(
                    "bucket `{}` is in region {region}, not {}: set the region to {region}",
                    target.bucket, self.region
                ),
            };
        }
        let message = match &err {
            // A service's answer reads best as its status, code and message;
            // the SDK's own rendering of it is a debug dump of the response.
            SdkError::ServiceError(_) => format!(
                "the S3 service at {endpoint} answered HTTP {}{}{}",
                status.unwrap_or_default(),
                if err.code().is_some() {
                    format!(" ({})", detail())
                } else {
                    String::new()
                },
                if endpoint
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .contains('/')
                {
                    "; the endpoint should be the service's address without a path"
                } else if target.key.is_some_and(has_empty_segment) {
                    "; the key has an empty segment (a leading `/` or a `//`), which \
                     some S3 services refuse (MinIO, s3s-fs): use a key without one"
                } else {
                    ""
                }
            ),
            _ => causes(&err),
        };
        StorageError::Backend {
            op: target.to_string(),
            message,
        }
    }

    /// Turns a [`StorageError::NotFound`] into
    /// [`StorageError::NoSuchBucket`] when it is the bucket that is
    /// missing: not every service says which one is (s3s-fs answers
    /// NoSuchKey for both).
    async fn missing_bucket_or(&self, error: StorageError, bucket: &str) -> StorageError {
        match error {
            StorageError::NotFound { .. } => match self.bucket_exists(bucket).await {
                Ok(false) => StorageError::NoSuchBucket {
                    bucket: bucket.to_owned(),
                },
                _ => error,
            },
            error => error,
        }
    }

    /// The object's ETag now, or a note that it is gone, for
    /// [`StorageError::Changed`].
    async fn current_etag(&self, bucket: &str, key: &str) -> Result<String> {
        Ok(match self.head(bucket, key).await? {
            Some(meta) => meta.etag,
            None => "none: the object was deleted".to_owned(),
        })
    }

    /// Answers a ranged read that S3 cannot express or refused (an empty
    /// range, a start past the end) from the object's description, as the
    /// local backend does.
    async fn range_from_head(
        &self,
        bucket: &str,
        key: &str,
        range: Range<u64>,
        etag: Option<&str>,
    ) -> Result<Bytes> {
        let meta = self
            .head(bucket, key)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            })?;
        if let Some(expected) = etag
            && meta.etag != unquote(expected)
        {
            return Err(StorageError::Changed {
                key: key.to_owned(),
                expected: expected.to_owned(),
                actual: meta.etag,
            });
        }
        if range.start > range.end
            || (range.start >= meta.size && !(range.start == 0 && meta.size == 0))
        {
            return Err(StorageError::InvalidRange {
                key: key.to_owned(),
                start: range.start,
                end: range.end,
                size: meta.size,
            });
        }
        Ok(Bytes::new())
    }

    async fn read_body(&self, body: ByteStream, target: Target<'_>) -> Result<Bytes> {
        body.collect()
            .await
            .map(|data| data.into_bytes())
            .map_err(|e| StorageError::Backend {
                op: target.to_string(),
                message: format!("reading the body failed: {}", DisplayErrorContext(&e)),
            })
    }

    async fn put_object(&self, bucket: &str, key: &str, data: Bytes) -> Result<()> {
        let length = data.len() as i64;
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_length(length)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| self.error(e, Target::object("PutObject", bucket, key)))?;
        Ok(())
    }

    /// Uploads `size` bytes from `parts` as a multipart upload, aborting it
    /// if any step fails.
    async fn put_multipart(
        &self,
        bucket: &str,
        key: &str,
        size: u64,
        parts: Parts<'_>,
        progress: Option<Progress<'_>>,
    ) -> Result<()> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error(e, Target::object("CreateMultipartUpload", bucket, key)))?;
        let Some(upload_id) = created.upload_id().map(str::to_owned) else {
            return Err(StorageError::Backend {
                op: Target::object("CreateMultipartUpload", bucket, key).to_string(),
                message: "the service returned no upload id".to_owned(),
            });
        };
        let uploaded = self
            .upload_parts(bucket, key, &upload_id, size, parts, progress)
            .await;
        if uploaded.is_err() {
            // The part tasks are gone by now (their set was dropped), so no
            // part lands after the abort.
            if let Err(e) = self
                .client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await
            {
                tracing::warn!(
                    bucket,
                    key,
                    upload_id,
                    error = %DisplayErrorContext(&e),
                    "could not abort a failed multipart upload; its parts stay \
                     until the bucket's lifecycle rules remove them"
                );
            }
        }
        uploaded
    }

    async fn upload_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        size: u64,
        mut parts: Parts<'_>,
        progress: Option<Progress<'_>>,
    ) -> Result<()> {
        let part_size = part_size(size);
        let target = Target::object("UploadPart", bucket, key);
        let mut in_flight = JoinSet::new();
        let mut completed = Vec::new();
        let mut offset = 0;
        let mut number = 0_i32;
        let mut sent = 0;
        while offset < size || !in_flight.is_empty() {
            while in_flight.len() < PARTS_IN_FLIGHT && offset < size {
                let len = part_size.min(size - offset);
                let body = parts.next(offset, len).await?;
                number += 1;
                let request = self
                    .client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .content_length(len as i64)
                    .body(ByteStream::from(body));
                in_flight.spawn(async move { (number, len, request.send().await) });
                offset += len;
            }
            let Some(joined) = in_flight.join_next().await else {
                break;
            };
            let (number, len, result) = joined.map_err(|e| StorageError::Backend {
                op: target.to_string(),
                message: format!("the upload of a part stopped: {e}"),
            })?;
            let output = result.map_err(|e| self.error(e, target))?;
            completed.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(output.e_tag().map(str::to_owned))
                    .build(),
            );
            sent += len;
            if let Some(progress) = progress {
                progress(sent, size);
            }
        }
        completed.sort_by_key(|part| part.part_number());
        self.client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.error(e, Target::object("CompleteMultipartUpload", bucket, key)))?;
        Ok(())
    }

    fn build_error(target: Target<'_>, e: impl fmt::Display) -> StorageError {
        StorageError::Backend {
            op: target.to_string(),
            message: e.to_string(),
        }
    }
}

#[async_trait]
impl Storage for S3Storage {
    fn describe(&self) -> String {
        format!(
            "S3 storage at {} (access key id {})",
            self.endpoint, self.access_key_id
        )
    }

    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        validate_bucket(bucket)?;
        match self.client.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(true),
            Err(e) => match self.error(e, Target::bucket("HeadBucket", bucket)) {
                StorageError::NoSuchBucket { .. } => Ok(false),
                e => Err(e),
            },
        }
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        validate_bucket(bucket)?;
        let mut request = self.client.create_bucket().bucket(bucket);
        if self.region != "us-east-1" {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                    .build(),
            );
        }
        let target = Target::bucket("CreateBucket", bucket);
        let created = match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
            // Some services say this of a bucket of one's own too.
            Err(e) if e.code() == Some("BucketAlreadyExists") => {
                if self.bucket_exists(bucket).await.unwrap_or(false) {
                    Ok(())
                } else {
                    Err(StorageError::Backend {
                        op: target.to_string(),
                        message: format!(
                            "the bucket name `{bucket}` is taken by another account; \
                             choose another name ({})",
                            DisplayErrorContext(&e)
                        ),
                    })
                }
            }
            Err(e) => Err(self.error(e, target)),
        };
        if created.is_ok() {
            self.known_buckets().insert(bucket.to_owned());
        }
        created
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        validate_bucket(bucket)?;
        // S3 refuses to delete a bucket that holds objects, but not every
        // S3-compatible service does: ask first, so that no backend deletes
        // objects along with their bucket.
        let first = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| self.error(e, Target::bucket("ListObjectsV2", bucket)))?;
        if !first.contents().is_empty() {
            return Err(StorageError::BucketNotEmpty {
                bucket: bucket.to_owned(),
            });
        }
        match self.client.delete_bucket().bucket(bucket).send().await {
            Ok(_) => {
                self.known_buckets().remove(bucket);
                Ok(())
            }
            Err(e) if e.code() == Some("BucketNotEmpty") || status(&e) == Some(409) => {
                Err(StorageError::BucketNotEmpty {
                    bucket: bucket.to_owned(),
                })
            }
            Err(e) => Err(self.error(e, Target::bucket("DeleteBucket", bucket))),
        }
    }

    async fn put(&self, bucket: &str, key: &str, data: Bytes) -> Result<()> {
        validate_bucket(bucket)?;
        validate_key(key)?;
        self.require_bucket(bucket).await?;
        let size = data.len() as u64;
        if size > MULTIPART_THRESHOLD {
            self.put_multipart(bucket, key, size, Parts::Memory(data), None)
                .await
        } else {
            self.put_object(bucket, key, data).await
        }
    }

    async fn put_file(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        progress: Option<Progress<'_>>,
    ) -> Result<u64> {
        validate_bucket(bucket)?;
        validate_key(key)?;
        let read_error = |source| StorageError::Io {
            op: "read",
            target: path.display().to_string(),
            source,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(read_error)?;
        self.require_bucket(bucket).await?;
        let size = file.metadata().await.map_err(read_error)?.len();
        if size > MULTIPART_THRESHOLD {
            // Parts are read as they are sent: the file is never in memory
            // as a whole.
            self.put_multipart(bucket, key, size, Parts::File(file, path), progress)
                .await?;
            return Ok(size);
        }
        let mut data = Vec::with_capacity(size as usize);
        file.read_to_end(&mut data).await.map_err(read_error)?;
        let size = data.len() as u64;
        self.put_object(bucket, key, Bytes::from(data)).await?;
        if let Some(progress) = progress {
            progress(size, size);
        }
        Ok(size)
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Bytes> {
        validate_bucket(bucket)?;
        validate_key(key)?;
        let target = Target::object("GetObject", bucket, key);
        let output = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) => return Err(self.missing_bucket_or(self.error(e, target), bucket).await),
        };
        self.read_body(output.body, target).await
    }

    async fn get_range_if(
        &self,
        bucket: &str,
        key: &str,
        range: Range<u64>,
        etag: Option<&str>,
    ) -> Result<Bytes> {
        validate_bucket(bucket)?;
        validate_key(key)?;
        let etag = etag.filter(|etag| !unquote(etag).is_empty());
        if range.start >= range.end {
            // A byte range in HTTP holds at least one byte.
            return self.range_from_head(bucket, key, range, etag).await;
        }
        let target = Target::object("GetObject", bucket, key);
        let mut request =
            self.client
                .get_object()
                .bucket(bucket)
                .key(key)
                .range(if range.end == u64::MAX {
                    // "To the end", as a reader that does not know the size asks.
                    format!("bytes={}-", range.start)
                } else {
                    format!("bytes={}-{}", range.start, range.end - 1)
                });
        if let Some(etag) = etag {
            request = request.if_match(format!("\"{}\"", unquote(etag)));
        }
        let output = match request.send().await {
            Ok(output) => output,
            Err(e) if status(&e) == Some(416) || e.code() == Some("InvalidRange") => {
                return self.range_from_head(bucket, key, range, etag).await;
            }
            Err(e) if status(&e) == Some(412) || e.code() == Some("PreconditionFailed") => {
                let expected = etag.unwrap_or_default();
                return Err(StorageError::Changed {
                    key: key.to_owned(),
                    expected: expected.to_owned(),
                    actual: self.current_etag(bucket, key).await?,
                });
            }
            Err(e) => return Err(self.missing_bucket_or(self.error(e, target), bucket).await),
        };
        // Check the answer's ETag too, in case the service ignored If-Match.
        if let Some(expected) = etag
            && let Some(actual) = output.e_tag()
            && unquote(actual) != unquote(expected)
        {
            return Err(StorageError::Changed {
                key: key.to_owned(),
                expected: expected.to_owned(),
                actual: unquote(actual),
            });
        }
        let ranged = output.content_range().is_some();
        let data = self.read_body(output.body, target).await?;
        if ranged {
            Ok(data)
        } else {
            // The whole object came back: the service ignored the range.
            let start = (range.start as usize).min(data.len());
            let end = (range.end as usize).min(data.len());
            Ok(data.slice(start..end))
        }
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectMeta>> {
        validate_bucket(bucket)?;
        validate_key(key)?;
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => Ok(Some(ObjectMeta {
                key: key.to_owned(),
                size: size(output.content_length()),
                last_modified: system_time(output.last_modified()),
                etag: unquote(output.e_tag().unwrap_or_default()),
            })),
            Err(e) => match self.error(e, Target::object("HeadObject", bucket, key)) {
                // A HEAD answer has no body to tell a missing key from a
                // missing bucket: ask about the bucket.
                StorageError::NotFound { .. } => {
                    if self.bucket_exists(bucket).await? {
                        Ok(None)
                    } else {
                        Err(StorageError::NoSuchBucket {
                            bucket: bucket.to_owned(),
                        })
                    }
                }
                e => Err(e),
            },
        }
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_bucket(bucket)?;
        let target = Target::bucket("ListObjectsV2", bucket);
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = self.client.list_objects_v2().bucket(bucket);
            if !prefix.is_empty() {
                request = request.prefix(prefix);
            }
            let page = request
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(|e| self.error(e, target))?;
            found.extend(page.contents().iter().filter_map(|object| {
                Some(ObjectMeta {
                    key: object.key()?.to_owned(),
                    size: size(object.size()),
                    last_modified: system_time(object.last_modified()),
                    etag: unquote(object.e_tag().unwrap_or_default()),
                })
            }));
            let next = page.next_continuation_token().map(str::to_owned);
            match next {
                Some(next) if page.is_truncated() == Some(true) => {
                    if token.as_deref() == Some(next.as_str()) {
                        return Err(StorageError::Backend {
                            op: target.to_string(),
                            message: "the service returned the same continuation token \
                                      twice, so the listing would never end"
                                .to_owned(),
                        });
                    }
                    token = Some(next);
                }
                _ => break,
            }
        }
        Ok(found)
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        validate_bucket(bucket)?;
        validate_key(key)?;
        match self
            .client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match self.error(e, Target::object("DeleteObject", bucket, key)) {
                // S3 answers 204 for a missing key; some services do not.
                StorageError::NotFound { .. } => Ok(()),
                e => Err(e),
            },
        }
    }

    async fn delete_many(&self, bucket: &str, keys: &[String]) -> Result<()> {
        validate_bucket(bucket)?;
        for key in keys {
            validate_key(key)?;
        }
        let target = Target::bucket("DeleteObjects", bucket);
        let mut failures = Vec::new();
        for batch in keys.chunks(DELETE_BATCH) {
            let objects = batch
                .iter()
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Self::build_error(target, e))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| Self::build_error(target, e))?;
            let output = self
                .client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| self.error(e, target))?;
            for error in output.errors() {
                let code = error.code().unwrap_or("unknown error");
                // A key that is already gone is deleted as far as wisp cares.
                if code == "NoSuchKey" {
                    continue;
                }
                failures.push((
                    error.key().unwrap_or_default().to_owned(),
                    match error.message() {
                        Some(message) => format!("{code}: {message}"),
                        None => code.to_owned(),
                    },
                ));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(StorageError::DeleteFailed {
                bucket: bucket.to_owned(),
                failures,
            })
        }
    }
}

/// An error and its causes as one line of text, each cause once: what the
/// SDK's `DisplayErrorContext` says, without the debug dump it appends.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Files where a system keeps its trusted CA certificates.
const CA_BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
];

/// The HTTP client: TLS trusting the system's CA certificates when it has
/// any. A `FROM scratch` runtime image has none, and then plain-HTTP
/// endpoints still work while HTTPS ones fail with a certificate error
/// (the runtime skeletons show how to add a CA bundle).
fn http_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let system_roots = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .iter()
        .any(|var| std::env::var_os(var).is_some())
        || CA_BUNDLES
            .iter()
            .any(|path| std::path::Path::new(path).is_file());
    if !system_roots {
        tracing::info!("no CA certificates on this system: HTTPS endpoints will not verify");
    }
    let trust = tls::TrustStore::empty().with_native_roots(system_roots);
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .unwrap_or_default(),
        )
        .build_https()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn endpoints_are_normalised() {
        assert_eq!(
            normalize_endpoint("http://127.0.0.1:9000/").expect("ok"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            normalize_endpoint(" https://s3.example.com// ").expect("ok"),
            "https://s3.example.com"
        );
        let message = normalize_endpoint("127.0.0.1:9000")
            .expect_err("no scheme")
            .to_string();
        assert!(
            message
                .contains("endpoint `127.0.0.1:9000` has no scheme: write http://127.0.0.1:9000"),
            "{message}"
        );
        let message = normalize_endpoint("ftp://host")
            .expect_err("ftp")
            .to_string();
        assert!(message.contains("http:// or https://"), "{message}");
        assert!(normalize_endpoint("http://").is_err());
    }

    #[test]
    fn debug_hides_the_secret_and_the_token() {
        let config = S3Config {
            access_key_id: "AKIDVISIBLE".to_owned(),
            secret_access_key: "very-secret-value".to_owned(),
            session_token: Some("session-token-value".to_owned()),
            ..S3Config::default()
        };
        let shown = format!("{config:?} {config:#?}");
        assert!(shown.contains("AKIDVISIBLE"), "{shown}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(!shown.contains("session-token-value"), "{shown}");
        let storage = S3Storage::new(S3Config {
            endpoint: Some("http://127.0.0.1:1".to_owned()),
            ..config
        })
        .expect("client");
        let shown = format!("{storage:?} {}", storage.describe());
        assert!(shown.contains("AKIDVISIBLE"), "{shown}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(!shown.contains("session-token-value"), "{shown}");
    }

    #[test]
    fn the_environment_fills_only_what_is_missing() {
        let env: HashMap<&str, &str> = [
            ("AWS_ACCESS_KEY_ID", "env-id"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
            ("AWS_SESSION_TOKEN", "env-token"),
            ("AWS_DEFAULT_REGION", "eu-west-3"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
        ]
        .into();
        let var = |name: &str| env.get(name).map(|v| v.to_string());
        let filled = S3Config {
            region: String::new(),
            ..S3Config::default()
        }
        .fill_missing_from(var);
        assert_eq!(filled.access_key_id, "env-id");
        assert_eq!(filled.secret_access_key, "env-secret");
        assert_eq!(filled.session_token.as_deref(), Some("env-token"));
        assert_eq!(filled.region, "eu-west-3");
        assert_eq!(filled.endpoint.as_deref(), Some("http://127.0.0.1:9000"));

        let own = S3Config {
            endpoint: Some("http://10.0.0.1:9000".to_owned()),
            access_key_id: "own-id".to_owned(),
            secret_access_key: "own-secret".to_owned(),
            ..S3Config::default()
        }
        .fill_missing_from(var);
        assert_eq!(own.access_key_id, "own-id");
        assert_eq!(own.secret_access_key, "own-secret");
        assert_eq!(own.session_token, None, "a token belongs to its key");
        assert_eq!(own.region, "us-east-1");
        assert_eq!(own.endpoint.as_deref(), Some("http://10.0.0.1:9000"));
    }

    #[test]
    fn missing_credentials_are_a_clear_error() {
        let message = S3Storage::new(S3Config {
            endpoint: Some("http://127.0.0.1:9000".to_owned()),
            ..S3Config::default()
        })
        .expect_err("no credentials")
        .to_string();
        assert!(message.contains("AWS_ACCESS_KEY_ID"), "{message}");
    }

    #[test]
    fn parts_stay_under_s3s_limit() {
        assert_eq!(part_size(40 << 20), PART_SIZE);
        let huge: u64 = 200 << 30;
        assert!(huge.div_ceil(part_size(huge)) <= MAX_PARTS);
        assert_eq!(part_size(huge) % (1 << 20), 0);
    }
}
