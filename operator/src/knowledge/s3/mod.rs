//! S3 prefix sources: the objects under a bucket's prefix, one document each.
//!
//! - [`S3Reader`]: the two S3 calls a sync needs (ListObjectsV2, GetObject), behind a
//!   small trait so the rest is testable without S3; [`aws::AwsS3`] is the real one
//!   (AWS default credential chain, optional endpoint URL for MinIO or moto).
//! - [`cache`]: what each knowledge base last read, per object key with its ETag, so a
//!   resync GETs only new or changed objects and forgets deleted ones (pure diff).
//! - [`html`]: HTML to text with Markdown headings for the chunker.
//!
//! S3 has no watch: knowledge bases with an S3 source are re-listed every
//! [`S3Settings::resync`] (5 minutes by default); a listing of an unchanged bucket costs
//! one request per 1000 objects and embeds nothing.

pub mod aws;
pub mod cache;
pub mod html;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use switchboard_crds::S3Source;
use switchboard_knowledge::Document;

pub use cache::{ObjectCache, ReadStats};

pub use crate::access::{DEFAULT_MAX_OBJECT_BYTES, DEFAULT_RESYNC, S3Settings, StaticCredentials};

/// Why S3 could not be read; each maps to a Degraded reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3Error {
    /// 403: the credentials lack `s3:ListBucket`/`s3:GetObject`, or are invalid.
    #[error("access to bucket {bucket} denied: {message}")]
    AccessDenied {
        /// The bucket.
        bucket: String,
        /// S3's message.
        message: String,
    },
    /// The bucket does not exist.
    #[error("bucket {bucket} does not exist")]
    BucketNotFound {
        /// The bucket.
        bucket: String,
    },
    /// Connecting or waiting for S3 failed (after the SDK's retries).
    #[error("S3 unreachable: {message}")]
    Unreachable {
        /// What failed.
        message: String,
    },
    /// Anything else (a wrong region, a 5xx, a malformed answer, no region configured).
    #[error("S3: {message}")]
    Other {
        /// What failed.
        message: String,
    },
    /// The namespace is not granted the source's bucket and prefix: nothing is read.
    #[error(
        "S3 source s3://{bucket}/{prefix} is not allowed for namespace {namespace}; the operator's --s3-allow (SWITCHBOARD_S3_ALLOW) must grant {namespace}={bucket}{slash}{prefix}",
        slash = if prefix.is_empty() { "" } else { "/" }
    )]
    NotAllowed {
        /// The knowledge base's namespace.
        namespace: String,
        /// The bucket.
        bucket: String,
        /// The source's prefix (empty: the whole bucket).
        prefix: String,
    },
}

impl S3Error {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::AccessDenied { .. } => "S3AccessDenied",
            Self::BucketNotFound { .. } => "S3BucketNotFound",
            Self::Unreachable { .. } => "S3Unreachable",
            Self::Other { .. } => "S3Error",
            Self::NotAllowed { .. } => "S3SourceNotAllowed",
        }
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Full key.
    pub key: String,
    /// Its ETag as S3 gives it (quotes included): changes whenever the content does.
    pub etag: String,
    /// Bytes.
    pub size: u64,
}

/// What a GET found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The object was deleted since it was listed.
    Gone,
    /// The body grew past the size limit since it was listed (not read further).
    TooLarge {
        /// ETag of the version seen.
        etag: Option<String>,
    },
    /// The object's bytes.
    Body {
        /// ETag of the version read (may be newer than the listing's).
        etag: Option<String>,
        /// Content.
        bytes: Vec<u8>,
    },
}

/// The S3 calls a sync makes.
pub trait S3Reader: Send + Sync {
    /// Every object under `source`'s prefix (all pages of ListObjectsV2).
    fn list<'a>(&'a self, source: &'a S3Source) -> BoxFuture<'a, Result<Vec<ObjectInfo>, S3Error>>;

    /// Object `key` of `source`'s bucket, read up to `max_bytes`.
    fn get<'a>(
        &'a self,
        source: &'a S3Source,
        key: &'a str,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<Fetched, S3Error>>;
}

/// Why an object under the prefix is not a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// Not `.txt`, `.md`, `.markdown`, `.html` or `.htm`.
    NotADocument,
    /// Over [`S3Settings::max_object_bytes`].
    TooLarge,
    /// Not valid UTF-8.
    NotUtf8,
    /// No text once converted.
    Empty,
    /// Listed, but its GET was refused (an object ACL, a KMS key the role may not use):
    /// retried at every resync.
    Unreadable,
}

impl SkipReason {
    /// For humans and hashes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotADocument => "not a document type",
            Self::TooLarge => "too large",
            Self::NotUtf8 => "not UTF-8",
            Self::Empty => "empty",
            Self::Unreadable => "access denied",
        }
    }
}

/// An object left out of the index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Skipped {
    /// Its would-be document id (`s3://bucket/key`).
    pub id: String,
    /// Why.
    pub reason: SkipReason,
}

/// What one S3 source holds now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Listing {
    /// Documents in key order.
    pub documents: Vec<Document>,
    /// Objects left out, in key order.
    pub skipped: Vec<Skipped>,
}

/// The identity of an S3 source within a knowledge base (bucket, prefix, region).
pub fn source_key(source: &S3Source) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}",
        source.bucket,
        source.prefix.as_deref().unwrap_or(""),
        source.region.as_deref().unwrap_or("")
    )
}

/// Reads S3 sources for every knowledge base and remembers what each read.
pub struct S3Sources {
    reader: Arc<dyn S3Reader>,
    max_object_bytes: u64,
    /// Per knowledge base (namespace/name), per [`source_key`].
    caches: Mutex<HashMap<String, HashMap<String, ObjectCache>>>,
    access: crate::knowledge::access::S3Access,
}

impl std::fmt::Debug for S3Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Sources")
            .field("max_object_bytes", &self.max_object_bytes)
            .finish_non_exhaustive()
    }
}

impl S3Sources {
    /// Reads through `reader`, skipping objects over `max_object_bytes`.
    pub fn new(reader: Arc<dyn S3Reader>, max_object_bytes: u64) -> Self {
        Self {
            reader,
            max_object_bytes,
            caches: Mutex::default(),
            access: crate::knowledge::access::S3Access::default(),
        }
    }

    /// The real S3 with `settings`.
    pub fn aws(settings: &S3Settings) -> Self {
        Self::new(
            Arc::new(aws::AwsS3::new(settings.clone())),
            settings.max_object_bytes,
        )
        .with_access(settings.access.clone())
    }

    /// These sources with `access` as the namespaces' grants.
    pub fn with_access(mut self, access: crate::knowledge::access::S3Access) -> Self {
        self.access = access;
        self
    }

    /// Which buckets and prefixes each namespace may read.
    pub fn access(&self) -> &crate::knowledge::access::S3Access {
        &self.access
    }

    /// The current listing of every S3 source of knowledge base `kb` (keyed by
    /// [`source_key`]), GETting only objects that are new or changed since `kb`'s last
    /// read. Sources no longer in `sources` are forgotten.
    ///
    /// # Errors
    ///
    /// The first [`S3Error`]; objects read before it stay remembered.
    pub async fn read(
        &self,
        kb: &str,
        sources: &[&S3Source],
    ) -> Result<(BTreeMap<String, S3Listing>, ReadStats), S3Error> {
        // Reconciles of one knowledge base never overlap (the controller serialises
        // them), so taking its caches out for the duration of the reads is safe.
        let mut previous = self.lock().remove(kb).unwrap_or_default();
        let mut caches = HashMap::new();
        let mut listings = BTreeMap::new();
        let mut stats = ReadStats::default();
        let mut failure = None;
        for source in sources {
            let key = source_key(source);
            if listings.contains_key(&key) {
                continue;
            }
            let mut cache = previous.remove(&key).unwrap_or_default();
            let result = cache
                .read(self.reader.as_ref(), source, self.max_object_bytes)
                .await;
            caches.insert(key.clone(), cache);
            match result {
                Ok((listing, s)) => {
                    stats.add(&s);
                    listings.insert(key, listing);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_some() {
            // Keep what the sources not reached yet remembered.
            caches.extend(previous);
        }
        self.lock().insert(kb.to_string(), caches);
        match failure {
            Some(e) => Err(e),
            None => Ok((listings, stats)),
        }
    }

    /// Forgets knowledge base `kb` (deleted).
    pub fn forget(&self, kb: &str) {
        self.lock().remove(kb);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, ObjectCache>>> {
        // Inserts and removes of whole entries only: a poisoned map is still consistent.
        self.caches.lock().unwrap_or_else(|p| p.into_inner())
    }
}
