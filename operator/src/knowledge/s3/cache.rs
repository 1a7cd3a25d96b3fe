//! What a knowledge base last read from one S3 source, per object key with its ETag: a
//! resync lists the prefix, GETs only objects whose ETag is new, and drops keys that are
//! gone. The diff ([`plan`]) and the conversion of bytes to text ([`object_text`]) are
//! pure; [`ObjectCache::read`] is the I/O around them.

use std::collections::BTreeMap;
use std::ops::Not;

use switchboard_crds::S3Source;
use switchboard_knowledge::Document;

use super::{Fetched, ObjectInfo, S3Error, S3Listing, S3Reader, SkipReason, Skipped, html};

/// What the cache holds for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The document text.
    Text(String),
    /// Read, and left out.
    Skipped(SkipReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    etag: String,
    content: Content,
}

/// One source's objects as last read: key → ETag and content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectCache {
    objects: BTreeMap<String, Entry>,
}

/// What a read did (for logs and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Objects listed under the prefix.
    pub listed: usize,
    /// Objects downloaded (new or changed ETag).
    pub fetched: usize,
    /// Cached objects whose key is gone.
    pub removed: usize,
}

impl ReadStats {
    pub(super) fn add(&mut self, other: &ReadStats) {
        self.listed += other.listed;
        self.fetched += other.fetched;
        self.removed += other.removed;
    }
}

/// Which listed objects to download and which cached keys to forget.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// New keys, or keys whose ETag differs from the cached one.
    pub fetch: Vec<ObjectInfo>,
    /// Cached keys absent from the listing.
    pub removed: Vec<String>,
}

/// ETags compared without their quotes: the cached one comes from the GET, the other from
/// the listing, and S3-compatible stores do not all quote both alike (a mismatch would
/// download the object again at every resync).
fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"') == b.trim_matches('"')
}

/// The difference between `cache` and a fresh `listing` (document candidates only).
pub fn plan(cache: &ObjectCache, listing: &[ObjectInfo]) -> Plan {
    let fetch = listing
        .iter()
        .filter(|o| {
            cache
                .objects
                .get(&o.key)
                .is_none_or(|e| same_etag(&e.etag, &o.etag).not())
        })
        .cloned()
        .collect();
    let listed: std::collections::BTreeSet<&str> = listing.iter().map(|o| o.key.as_str()).collect();
    let removed = cache
        .objects
        .keys()
        .filter(|k| !listed.contains(k.as_str()))
        .cloned()
        .collect();
    Plan { fetch, removed }
}

/// The text of object `key`: Markdown and text as they are, HTML converted (headings kept
/// as `#` lines), a UTF-8 byte-order mark dropped.
///
/// # Errors
///
/// [`SkipReason::NotUtf8`] or [`SkipReason::Empty`].
pub fn object_text(key: &str, bytes: &[u8]) -> Result<String, SkipReason> {
    let raw = std::str::from_utf8(bytes).map_err(|_| SkipReason::NotUtf8)?;
    let raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
    let lower = key.to_ascii_lowercase();
    let text = if lower.ends_with(".html") || lower.ends_with(".htm") {
        html::to_text(raw)
    } else {
        raw.to_string()
    };
    if text.trim().is_empty() {
        return Err(SkipReason::Empty);
    }
    Ok(text)
}

impl ObjectCache {
    /// Lists `source`, downloads what changed, forgets what is gone, and returns the
    /// source's documents and skipped objects in key order.
    ///
    /// # Errors
    ///
    /// An [`S3Error`] from the listing or a download; what was downloaded before it is
    /// kept, so the retry GETs only the rest.
    pub async fn read(
        &mut self,
        reader: &dyn S3Reader,
        source: &S3Source,
        max_bytes: u64,
    ) -> Result<(S3Listing, ReadStats), S3Error> {
        let listed = reader.list(source).await?;
        let mut stats = ReadStats {
            listed: listed.len(),
            ..ReadStats::default()
        };
        // Skipped without a download: other extensions and objects over the limit.
        let mut skipped = Vec::new();
        let mut candidates = Vec::new();
        for object in listed {
            // "folder/" placeholders made by consoles are not objects anyone wrote.
            if object.key.ends_with('/') {
                continue;
            }
            if !S3Source::is_document_key(&object.key) {
                skipped.push(skip(source, &object.key, SkipReason::NotADocument));
            } else if object.size > max_bytes {
                skipped.push(skip(source, &object.key, SkipReason::TooLarge));
            } else {
                candidates.push(object);
            }
        }
        let plan = plan(self, &candidates);
        stats.removed = plan.removed.len();
        for key in &plan.removed {
            self.objects.remove(key);
        }
        for object in plan.fetch {
            let fetched = match reader.get(source, &object.key, max_bytes).await {
                Ok(f) => f,
                // One object the role may not read must not stop the rest of the bucket.
                // Not remembered, so the next resync tries again (a permission fix does not
                // change the ETag); a version read before stays indexed meanwhile.
                Err(S3Error::AccessDenied { .. }) => {
                    if !self.objects.contains_key(&object.key) {
                        skipped.push(skip(source, &object.key, SkipReason::Unreadable));
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            stats.fetched += 1;
            let (etag, content) = match fetched {
                Fetched::Gone => {
                    self.objects.remove(&object.key);
                    continue;
                }
                Fetched::TooLarge { etag } => (etag, Content::Skipped(SkipReason::TooLarge)),
                Fetched::Body { etag, bytes } => (
                    etag,
                    match text_off_runtime(&object.key, bytes).await? {
                        Ok(text) => Content::Text(text),
                        Err(reason) => Content::Skipped(reason),
                    },
                ),
            };
            self.objects.insert(
                object.key.clone(),
                Entry {
                    etag: etag.unwrap_or(object.etag),
                    content,
                },
            );
        }
        let prefix = source.prefix.as_deref().unwrap_or("");
        let mut documents = Vec::new();
        for (key, entry) in &self.objects {
            match &entry.content {
                Content::Text(text) => documents.push(Document {
                    id: source.document_id(key),
                    title: key
                        .strip_prefix(prefix)
                        .filter(|t| !t.is_empty())
                        .unwrap_or(key)
                        .to_string(),
                    content: text.clone(),
                    category: None,
                }),
                Content::Skipped(reason) => skipped.push(skip(source, key, *reason)),
            }
        }
        skipped.sort();
        Ok((S3Listing { documents, skipped }, stats))
    }
}

/// [`object_text`] on the blocking pool: converting an object of up to the size limit is
/// CPU work that must not hold up the runtime's worker (other reconciles, the watches).
async fn text_off_runtime(
    key: &str,
    bytes: Vec<u8>,
) -> Result<Result<String, SkipReason>, S3Error> {
    let owned = key.to_string();
    match tokio::task::spawn_blocking(move || object_text(&owned, &bytes)).await {
        Ok(text) => Ok(text),
        // A panic is the converter's bug: it surfaces as it would have inline.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down: not remembered, so the next sync reads it again.
        Err(e) => Err(S3Error::Other {
            message: format!("converting {key}: {e}"),
        }),
    }
}

fn skip(source: &S3Source, key: &str, reason: SkipReason) -> Skipped {
    Skipped {
        id: source.document_id(key),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures_util::future::BoxFuture;

    use super::*;

    fn info(key: &str, etag: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            etag: etag.into(),
            size: 10,
        }
    }

    fn cache(entries: &[(&str, &str)]) -> ObjectCache {
        ObjectCache {
            objects: entries
                .iter()
                .map(|(k, e)| {
                    (
                        k.to_string(),
                        Entry {
                            etag: e.to_string(),
                            content: Content::Text("x".into()),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn plan_fetches_new_and_changed_and_drops_deleted() {
        let c = cache(&[("a.md", "\"1\""), ("b.md", "\"2\""), ("gone.md", "\"3\"")]);
        let p = plan(
            &c,
            &[
                info("a.md", "\"1\""),
                info("b.md", "\"2b\""),
                info("new.txt", "\"4\""),
            ],
        );
        let fetch: Vec<&str> = p.fetch.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(fetch, ["b.md", "new.txt"]);
        assert_eq!(p.removed, ["gone.md"]);
        assert_eq!(plan(&c, &[]).removed.len(), 3);
        // The same ETag, quoted by one side only, is no change.
        assert!(plan(&c, &[info("a.md", "1")]).fetch.is_empty());
        assert!(plan(&ObjectCache::default(), &[]).fetch.is_empty());
    }

    #[test]
    fn object_text_by_type() {
        assert_eq!(object_text("a.TXT", b"\xef\xbb\xbfhello").unwrap(), "hello");
        assert_eq!(object_text("a.md", b"# T\n\nx").unwrap(), "# T\n\nx");
        assert_eq!(
            object_text("a.htm", b"<h1>T</h1><p>x &amp; y</p>").unwrap(),
            "# T\n\nx & y"
        );
        assert_eq!(object_text("a.txt", b"\xff\xfe"), Err(SkipReason::NotUtf8));
        assert_eq!(
            object_text("a.html", b"<script>x</script>"),
            Err(SkipReason::Empty)
        );
    }

    /// A bucket in memory that counts GETs.
    #[derive(Default)]
    struct Bucket {
        objects: Mutex<BTreeMap<String, (String, Vec<u8>)>>,
        gets: Mutex<Vec<String>>,
        /// Keys whose GET is refused (listed, not readable).
        denied: Mutex<Vec<String>>,
    }

    impl Bucket {
        fn put(&self, key: &str, body: &[u8]) {
            let mut o = self.objects.lock().unwrap();
            let version = o.get(key).map_or(0, |(e, _)| e.len());
            o.insert(key.into(), (format!("\"{key}{version}\""), body.to_vec()));
        }
    }

    impl S3Reader for Bucket {
        fn list<'a>(
            &'a self,
            source: &'a S3Source,
        ) -> BoxFuture<'a, Result<Vec<ObjectInfo>, S3Error>> {
            let prefix = source.prefix.clone().unwrap_or_default();
            let out = self
                .objects
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(k, (e, b))| ObjectInfo {
                    key: k.clone(),
                    etag: e.clone(),
                    size: b.len() as u64,
                })
                .collect();
            Box::pin(async move { Ok(out) })
        }

        fn get<'a>(
            &'a self,
            _source: &'a S3Source,
            key: &'a str,
            _max: u64,
        ) -> BoxFuture<'a, Result<Fetched, S3Error>> {
            self.gets.lock().unwrap().push(key.to_string());
            let found = self.objects.lock().unwrap().get(key).cloned();
            let denied = self.denied.lock().unwrap().iter().any(|k| k == key);
            Box::pin(async move {
                if denied {
                    return Err(S3Error::AccessDenied {
                        bucket: "docs".into(),
                        message: "AccessDenied (HTTP 403): Access Denied".into(),
                    });
                }
                Ok(match found {
                    Some((etag, bytes)) => Fetched::Body {
                        etag: Some(etag),
                        bytes,
                    },
                    None => Fetched::Gone,
                })
            })
        }
    }

    #[tokio::test]
    async fn resync_downloads_only_what_changed() {
        let bucket = Bucket::default();
        bucket.put("faq/hours.md", b"# Hours\n\nOpen 9-5");
        bucket.put("faq/parking.txt", b"Free parking");
        bucket.put("faq/menu.html", b"<h1>Menu</h1><p>Soup</p>");
        bucket.put("faq/logo.png", b"\x89PNG");
        bucket.put("faq/big.txt", &[b'a'; 64]);
        bucket.put("faq/latin1.txt", b"caf\xe9");
        bucket.put("other/x.md", b"outside the prefix");
        let source = S3Source {
            bucket: "docs".into(),
            prefix: Some("faq/".into()),
            region: None,
        };
        let mut c = ObjectCache::default();
        let (listing, stats) = c.read(&bucket, &source, 32).await.unwrap();
        let ids: Vec<&str> = listing.documents.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "s3://docs/faq/hours.md",
                "s3://docs/faq/menu.html",
                "s3://docs/faq/parking.txt"
            ]
        );
        assert_eq!(listing.documents[1].title, "menu.html");
        assert_eq!(listing.documents[1].content, "# Menu\n\nSoup");
        let skipped: Vec<(&str, SkipReason)> = listing
            .skipped
            .iter()
            .map(|s| (s.id.as_str(), s.reason))
            .collect();
        assert_eq!(
            skipped,
            [
                ("s3://docs/faq/big.txt", SkipReason::TooLarge),
                ("s3://docs/faq/latin1.txt", SkipReason::NotUtf8),
                ("s3://docs/faq/logo.png", SkipReason::NotADocument),
            ]
        );
        assert_eq!(stats.fetched, 4, "documents within the limit only");

        // Nothing changed: no GET, same listing.
        bucket.gets.lock().unwrap().clear();
        let (again, stats) = c.read(&bucket, &source, 32).await.unwrap();
        assert_eq!(again, listing);
        assert_eq!(stats.fetched, 0);

        // One edit, one delete: one GET, the deleted document gone.
        bucket.put("faq/parking.txt", b"Parking in the garage");
        bucket.objects.lock().unwrap().remove("faq/hours.md");
        let (after, stats) = c.read(&bucket, &source, 32).await.unwrap();
        assert_eq!(*bucket.gets.lock().unwrap(), ["faq/parking.txt"]);
        assert_eq!(stats.removed, 1);
        let contents: Vec<&str> = after.documents.iter().map(|d| d.content.as_str()).collect();
        assert_eq!(contents, ["# Menu\n\nSoup", "Parking in the garage"]);
    }

    #[tokio::test]
    async fn an_unreadable_object_is_skipped_and_retried_not_fatal() {
        let bucket = Bucket::default();
        bucket.put("faq/hours.md", b"Open 9-5");
        bucket.put("faq/secret.md", b"KMS key the role may not use");
        bucket.denied.lock().unwrap().push("faq/secret.md".into());
        let source = S3Source {
            bucket: "docs".into(),
            prefix: Some("faq/".into()),
            region: None,
        };
        let mut c = ObjectCache::default();
        let (listing, _) = c.read(&bucket, &source, 1024).await.unwrap();
        assert_eq!(listing.documents.len(), 1, "the readable object is indexed");
        assert_eq!(
            listing.skipped,
            [Skipped {
                id: "s3://docs/faq/secret.md".into(),
                reason: SkipReason::Unreadable,
            }]
        );
        // Access fixed, ETag unchanged: the next resync reads it.
        bucket.denied.lock().unwrap().clear();
        let (listing, stats) = c.read(&bucket, &source, 1024).await.unwrap();
        assert_eq!(stats.fetched, 1);
        assert_eq!(listing.documents.len(), 2);
        assert!(listing.skipped.is_empty());
    }
}
