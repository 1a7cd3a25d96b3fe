//! [`S3Reader`] over the AWS SDK: credentials and region from the AWS default chain
//! (environment, profile, web identity = IRSA on EKS, instance metadata), a source's own
//! region when it names one, and an optional S3-compatible endpoint (path-style
//! addressing) for MinIO or moto.
//!
//! The SDK is built without its default HTTP client (which would bring aws-lc-rs): its
//! client here is hyper + rustls on ring, the one crypto provider of the whole operator.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use futures_util::future::BoxFuture;
use switchboard_crds::S3Source;
use tokio::sync::{Mutex, OnceCell};

use super::{Fetched, ObjectInfo, S3Error, S3Reader, S3Settings};

/// Connecting to S3 gives up after this long (then the SDK retries).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One attempt of one request gives up after this long (a 5 MiB GET on a slow link fits).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// The region signed for when neither the source nor the chain names one but an endpoint
/// URL is set (MinIO and moto accept any; `us-east-1` is their default).
const ENDPOINT_DEFAULT_REGION: &str = "us-east-1";

/// The real S3.
pub struct AwsS3 {
    settings: S3Settings,
    /// The default chain's configuration, loaded on first use (it may call STS or IMDS).
    base: OnceCell<SdkConfig>,
    /// One client per region (`None`: the chain's).
    clients: Mutex<HashMap<Option<String>, Client>>,
}

impl AwsS3 {
    /// S3 with `settings`; nothing is loaded or connected yet.
    pub fn new(settings: S3Settings) -> Self {
        Self {
            settings,
            base: OnceCell::new(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    async fn client(&self, region: Option<&str>) -> Client {
        let base = self
            .base
            .get_or_init(|| async {
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                    .build_https();
                let timeouts = aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build();
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .http_client(http)
                    .timeout_config(timeouts);
                if let Some(c) = &self.settings.credentials {
                    loader = loader.credentials_provider(Credentials::new(
                        c.access_key_id.clone(),
                        c.secret_access_key.clone(),
                        None,
                        None,
                        "switchboard-static",
                    ));
                }
                loader.load().await
            })
            .await;
        let mut clients = self.clients.lock().await;
        let key = region.map(str::to_string);
        if let Some(c) = clients.get(&key) {
            return c.clone();
        }
        let mut config = aws_sdk_s3::config::Builder::from(base);
        if let Some(r) = region {
            config = config.region(Region::new(r.to_string()));
        }
        if let Some(url) = &self.settings.endpoint_url {
            // S3-compatible stores serve buckets as paths, not as host names.
            config = config.endpoint_url(url.clone()).force_path_style(true);
            if region.is_none() && base.region().is_none() {
                config = config.region(Region::new(ENDPOINT_DEFAULT_REGION));
            }
        }
        let client = Client::from_conf(config.build());
        clients.insert(key, client.clone());
        client
    }
}

/// Maps an SDK error of an operation on `bucket` to an [`S3Error`]. `missing_is_bucket`:
/// whether a 404 means the bucket (a listing) rather than the object.
fn classify<E>(
    bucket: &str,
    e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    missing_is_bucket: bool,
) -> S3Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let full = DisplayErrorContext(&e).to_string();
    // The condition message must be the same on every retry of the same failure: the full
    // context carries S3's request ids, new on every request, and a status that changes on
    // every retry would trigger the next reconcile at once, defeating the backoff.
    let message = match &e {
        SdkError::ServiceError(s) => {
            tracing::debug!(bucket, error = %full, "S3 service error");
            format!(
                "{} (HTTP {}): {}",
                s.err().code().unwrap_or("error"),
                s.raw().status().as_u16(),
                s.err().message().unwrap_or("no message")
            )
        }
        SdkError::ResponseError(r) => {
            tracing::debug!(bucket, error = %full, "unreadable S3 response");
            format!("unreadable response (HTTP {})", r.raw().status().as_u16())
        }
        _ => full,
    };
    let (status, code) = match &e {
        SdkError::TimeoutError(_) => return S3Error::Unreachable { message },
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => {
            return S3Error::Unreachable { message };
        }
        SdkError::DispatchFailure(_) if credentials_failed(&e) => {
            return S3Error::AccessDenied {
                bucket: bucket.to_string(),
                message: format!("no usable AWS credentials: {message}"),
            };
        }
        SdkError::ServiceError(s) => (
            Some(s.raw().status().as_u16()),
            s.err().code().map(str::to_string),
        ),
        SdkError::ResponseError(r) => (Some(r.raw().status().as_u16()), None),
        _ => (None, None),
    };
    match (code.as_deref(), status) {
        (Some("NoSuchBucket"), _) => S3Error::BucketNotFound {
            bucket: bucket.to_string(),
        },
        (_, Some(404)) if missing_is_bucket => S3Error::BucketNotFound {
            bucket: bucket.to_string(),
        },
        (
            Some(
                "AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AllAccessDisabled"
                | "AccountProblem"
                | "ExpiredToken"
                | "InvalidToken",
            ),
            _,
        )
        | (_, Some(401 | 403)) => S3Error::AccessDenied {
            bucket: bucket.to_string(),
            message,
        },
        _ => S3Error::Other { message },
    }
}

/// Whether loading credentials failed (no web identity, keys or instance role reachable):
/// the request never left, and the fix is the same as for a 403.
fn credentials_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<aws_credential_types::provider::error::CredentialsError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

impl S3Reader for AwsS3 {
    fn list<'a>(&'a self, source: &'a S3Source) -> BoxFuture<'a, Result<Vec<ObjectInfo>, S3Error>> {
        Box::pin(async move {
            let client = self.client(source.region.as_deref()).await;
            let mut objects = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = client
                    .list_objects_v2()
                    .bucket(&source.bucket)
                    .set_prefix(source.prefix.clone().filter(|p| !p.is_empty()))
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    // A listing's 404, even without an error code, can only be the bucket.
                    .map_err(|e| classify(&source.bucket, e, true))?;
                objects.extend(page.contents().iter().filter_map(|o| {
                    Some(ObjectInfo {
                        key: o.key()?.to_string(),
                        etag: o.e_tag().unwrap_or_default().to_string(),
                        size: u64::try_from(o.size().unwrap_or(0)).unwrap_or(0),
                    })
                }));
                match page.next_continuation_token() {
                    Some(next) if page.is_truncated() == Some(true) => {
                        token = Some(next.to_string());
                    }
                    _ => break,
                }
            }
            Ok(objects)
        })
    }

    fn get<'a>(
        &'a self,
        source: &'a S3Source,
        key: &'a str,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<Fetched, S3Error>> {
        Box::pin(async move {
            let client = self.client(source.region.as_deref()).await;
            let out = match client
                .get_object()
                .bucket(&source.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(out) => out,
                Err(SdkError::ServiceError(s))
                    if s.err().is_no_such_key() || s.raw().status().as_u16() == 404 =>
                {
                    // Deleted since the listing: the next listing will not show it.
                    if s.err().code() == Some("NoSuchBucket") {
                        return Err(S3Error::BucketNotFound {
                            bucket: source.bucket.clone(),
                        });
                    }
                    return Ok(Fetched::Gone);
                }
                Err(e) => return Err(classify(&source.bucket, e, false)),
            };
            let etag = out.e_tag().map(str::to_string);
            if u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0) > max_bytes {
                return Ok(Fetched::TooLarge { etag });
            }
            let mut body = out.body;
            let mut bytes = Vec::new();
            loop {
                match body.try_next().await {
                    Ok(Some(chunk)) => {
                        if bytes.len() as u64 + chunk.len() as u64 > max_bytes {
                            return Ok(Fetched::TooLarge { etag });
                        }
                        bytes.extend_from_slice(&chunk);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        return Err(S3Error::Unreachable {
                            message: format!("reading {key}: {}", DisplayErrorContext(&e)),
                        });
                    }
                }
            }
            Ok(Fetched::Body { etag, bytes })
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::knowledge::s3::StaticCredentials;

    /// An endpoint answering every request with `status` and `body` (S3's XML errors).
    async fn endpoint(status: &'static str, body: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut request = 0u64;
            while let Ok((mut sock, _)) = listener.accept().await {
                // As S3 does: a new request id on every answer.
                request += 1;
                tokio::spawn(async move {
                    let mut buf = [0u8; 8192];
                    let _ = sock.read(&mut buf).await;
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/xml\r\nx-amz-request-id: REQ{request:08}\r\nx-amz-id-2: ext{request}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(response.as_bytes()).await;
                });
            }
        });
        format!("http://{addr}")
    }

    fn s3(url: String) -> AwsS3 {
        AwsS3::new(S3Settings {
            endpoint_url: Some(url),
            credentials: Some(StaticCredentials {
                access_key_id: "AKIDTEST".into(),
                secret_access_key: "secret".into(),
            }),
            ..S3Settings::default()
        })
    }

    fn source() -> S3Source {
        S3Source {
            bucket: "docs".into(),
            prefix: Some("faq/".into()),
            region: Some("eu-central-1".into()),
        }
    }

    #[tokio::test]
    async fn s3_errors_map_to_their_reasons() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cases = [
            (
                "403 Forbidden",
                "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
                "S3AccessDenied",
            ),
            (
                "404 Not Found",
                "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>",
                "S3BucketNotFound",
            ),
            ("404 Not Found", "", "S3BucketNotFound"),
            (
                "301 Moved Permanently",
                "<Error><Code>PermanentRedirect</Code><Message>use the right endpoint</Message></Error>",
                "S3Error",
            ),
        ];
        for (status, body, reason) in cases {
            let err = s3(endpoint(status, body).await)
                .list(&source())
                .await
                .unwrap_err();
            assert_eq!(err.reason(), reason, "{status} {body}: {err}");
        }
    }

    #[tokio::test]
    async fn a_repeated_failure_reads_the_same_each_time() {
        // The message becomes the Degraded condition's: if it changed per request (S3's
        // request ids), every retry would write status and trigger the next at once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let s3 = s3(endpoint(
            "403 Forbidden",
            "<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>R</RequestId></Error>",
        )
        .await);
        let first = s3.list(&source()).await.unwrap_err().to_string();
        let second = s3.list(&source()).await.unwrap_err().to_string();
        assert_eq!(first, second);
        assert!(first.contains("AccessDenied"), "{first}");
        assert!(
            !first.contains("REQ0"),
            "request id in the message: {first}"
        );
    }

    #[test]
    fn a_credentials_failure_is_found_in_the_cause_chain() {
        #[derive(Debug)]
        struct Wrapper(aws_credential_types::provider::error::CredentialsError);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("dispatch failure")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let no_role = Wrapper(
            aws_credential_types::provider::error::CredentialsError::not_loaded("no web identity"),
        );
        assert!(credentials_failed(&no_role));
        assert!(!credentials_failed(&std::io::Error::other("refused")));
    }

    #[tokio::test]
    async fn nothing_listening_is_unreachable() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = s3(format!("http://127.0.0.1:{port}"))
            .list(&source())
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "S3Unreachable", "{err}");
    }

    #[tokio::test]
    async fn a_missing_object_is_gone_not_an_error() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = endpoint(
            "404 Not Found",
            "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>",
        )
        .await;
        let got = s3(url).get(&source(), "faq/a.md", 1024).await.unwrap();
        assert_eq!(got, Fetched::Gone);
    }
}
