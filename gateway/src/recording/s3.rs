//! Recordings in S3: upload (one PUT, or multipart above a size), list and delete (for
//! retention). The SDK is configured by `switchboard-aws` (default credential chain,
//! `AWS_ENDPOINT_URL[_S3]`, rustls on ring).

use std::path::Path;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use switchboard_aws::AwsOptions;
use tokio::sync::OnceCell;

/// Files larger than this are uploaded in parts (a 5 min call is ≈ 9.6 MB).
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// Size of each part but the last (S3's minimum is 5 MiB).
pub const PART_SIZE: u64 = 8 * 1024 * 1024;
/// The WAV's content type.
pub const CONTENT_TYPE: &str = "audio/wav";
/// Longest life of a presigned download link (the admin API's recording route).
pub const MAX_LINK_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Why an S3 call failed.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct S3Error {
    /// `unreachable`, `access_denied`, `no_bucket`, `local_io`, `other` (a metric label).
    pub kind: &'static str,
    /// What S3 (or the transport) said.
    pub message: String,
}

fn classify<E>(e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> S3Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => "unreachable",
        SdkError::ServiceError(s) => match (s.err().code(), s.raw().status().as_u16()) {
            (Some("NoSuchBucket"), _) => "no_bucket",
            (Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch"), _)
            | (_, 401 | 403) => "access_denied",
            (_, 500..) => "unreachable",
            _ => "other",
        },
        _ => "other",
    };
    S3Error {
        kind,
        message: DisplayErrorContext(&e).to_string(),
    }
}

fn local(e: std::io::Error) -> S3Error {
    S3Error {
        kind: "local_io",
        message: e.to_string(),
    }
}

/// One object to upload.
#[derive(Debug, Clone, Copy)]
pub struct Upload<'a> {
    /// Bucket.
    pub bucket: &'a str,
    /// Object key.
    pub key: &'a str,
    /// SSE-KMS key, if any.
    pub kms_key_id: Option<&'a str>,
    /// Object metadata: tenant.
    pub tenant: &'a str,
    /// Object metadata: CallSid.
    pub call_sid: &'a str,
}

/// An object found under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Key.
    pub key: String,
    /// Last modified, Unix seconds.
    pub modified_s: i64,
}

/// The recordings' S3 client (created on first use: loading credentials may call STS).
pub struct S3 {
    options: AwsOptions,
    client: OnceCell<Client>,
    multipart_threshold: u64,
    link_ttl: std::time::Duration,
}

/// A presigned GET of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedGet {
    /// The URL (carries its signature and expiry; anyone holding it can fetch the object
    /// until then).
    pub url: String,
    /// When it stops working, Unix seconds.
    pub expires_unix_s: i64,
}

impl S3 {
    /// S3 as `options` say (all `None` in production: the default chain).
    pub fn new(options: AwsOptions) -> S3 {
        S3 {
            options,
            client: OnceCell::new(),
            multipart_threshold: MULTIPART_THRESHOLD,
            link_ttl: std::time::Duration::from_secs(300),
        }
    }

    /// How long presigned download links live (capped at [`MAX_LINK_TTL`], at least 1 s).
    pub fn with_link_ttl(mut self, ttl: std::time::Duration) -> S3 {
        self.link_ttl = ttl.clamp(std::time::Duration::from_secs(1), MAX_LINK_TTL);
        self
    }

    /// Uploads files larger than `bytes` in parts (tests exercise multipart with it).
    pub fn with_multipart_threshold(mut self, bytes: u64) -> S3 {
        self.multipart_threshold = bytes;
        self
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let sdk = switchboard_aws::load_config(&self.options).await;
                let endpoint_set = self.options.endpoint_url.is_some()
                    || ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
                        .iter()
                        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
                // S3-compatible servers (moto, MinIO) serve buckets as paths.
                let config = aws_sdk_s3::config::Builder::from(&sdk)
                    .force_path_style(endpoint_set)
                    .build();
                Client::from_conf(config)
            })
            .await
    }

    /// Uploads the file at `path`; returns only once S3 has confirmed the object.
    pub async fn put(&self, u: Upload<'_>, path: &Path) -> Result<u64, S3Error> {
        let size = tokio::fs::metadata(path).await.map_err(local)?.len();
        if size > self.multipart_threshold {
            self.put_multipart(u, path, size).await?;
        } else {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|e| local(std::io::Error::other(e)))?;
            let mut req = self
                .client()
                .await
                .put_object()
                .bucket(u.bucket)
                .key(u.key)
                .content_type(CONTENT_TYPE)
                .content_length(i64::try_from(size).unwrap_or(i64::MAX))
                .metadata("tenant", u.tenant)
                .metadata("call-sid", u.call_sid)
                .body(body);
            if let Some(k) = u.kms_key_id {
                req = req
                    .server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(k);
            }
            req.send().await.map_err(classify)?;
        }
        Ok(size)
    }

    async fn put_multipart(&self, u: Upload<'_>, path: &Path, size: u64) -> Result<(), S3Error> {
        let client = self.client().await;
        let mut req = client
            .create_multipart_upload()
            .bucket(u.bucket)
            .key(u.key)
            .content_type(CONTENT_TYPE)
            .metadata("tenant", u.tenant)
            .metadata("call-sid", u.call_sid);
        if let Some(k) = u.kms_key_id {
            req = req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k);
        }
        let created = req.send().await.map_err(classify)?;
        let Some(upload_id) = created.upload_id() else {
            return Err(S3Error {
                kind: "other",
                message: "CreateMultipartUpload returned no upload id".into(),
            });
        };
        let result = async {
            let mut parts = Vec::new();
            let mut offset = 0;
            let mut number = 1;
            while offset < size {
                let len = PART_SIZE.min(size - offset);
                let body = ByteStream::read_from()
                    .path(path)
                    .offset(offset)
                    .length(aws_sdk_s3::primitives::Length::Exact(len))
                    .build()
                    .await
                    .map_err(|e| local(std::io::Error::other(e)))?;
                let part = client
                    .upload_part()
                    .bucket(u.bucket)
                    .key(u.key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .content_length(i64::try_from(len).unwrap_or(i64::MAX))
                    .body(body)
                    .send()
                    .await
                    .map_err(classify)?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(str::to_string))
                        .build(),
                );
                offset += len;
                number += 1;
            }
            client
                .complete_multipart_upload()
                .bucket(u.bucket)
                .key(u.key)
                .upload_id(upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        }
        .await;
        if result.is_err() {
            // Parts of an abandoned upload are billed until aborted; the retry starts over.
            let _ = client
                .abort_multipart_upload()
                .bucket(u.bucket)
                .key(u.key)
                .upload_id(upload_id)
                .send()
                .await;
        }
        result
    }

    /// Every object under `prefix`.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<Listed>, S3Error> {
        let client = self.client().await;
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(classify)?;
            out.extend(page.contents().iter().filter_map(|o| {
                Some(Listed {
                    key: o.key()?.to_string(),
                    modified_s: o.last_modified()?.secs(),
                })
            }));
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// A short-lived presigned GET of `bucket`/`key` (SigV4 query signature, signed
    /// locally: nothing is sent to S3). The answer's `Content-Type` is the WAV's.
    pub async fn presign_get(&self, bucket: &str, key: &str) -> Result<PresignedGet, S3Error> {
        let config =
            aws_sdk_s3::presigning::PresigningConfig::expires_in(self.link_ttl).map_err(|e| {
                S3Error {
                    kind: "other",
                    message: e.to_string(),
                }
            })?;
        let expires_unix_s = config
            .start_time()
            .checked_add(config.expires())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let req = self
            .client()
            .await
            .get_object()
            .bucket(bucket)
            .key(key)
            .response_content_type(CONTENT_TYPE)
            .presigned(config)
            .await
            .map_err(classify)?;
        Ok(PresignedGet {
            url: req.uri().to_string(),
            expires_unix_s,
        })
    }

    /// Deletes one object (deleting a missing object succeeds).
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        self.client()
            .await
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}
