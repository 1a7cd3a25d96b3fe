//! A knowledge base's documents, read from its sources, and the hash that tells whether
//! anything changed since the last sync.
//!
//! Pure: the ConfigMaps and the S3 listings arrive already fetched, so the same spec,
//! ConfigMaps and listings always give the same documents in the same order and the
//! same hash.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use sha2::{Digest, Sha256};
use switchboard_crds::KnowledgeBaseSpec;
use switchboard_knowledge::Document;

use super::s3::{S3Listing, Skipped, source_key};

/// Why the documents cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// A referenced ConfigMap does not exist.
    #[error("ConfigMap {name} does not exist")]
    ConfigMapMissing {
        /// Its name.
        name: String,
    },
    /// A key listed in the source is not in the ConfigMap's `data`.
    #[error("ConfigMap {name} has no key {key:?} in data")]
    KeyMissing {
        /// ConfigMap name.
        name: String,
        /// The missing key.
        key: String,
    },
    /// An S3 source whose listing was not read (a caller's mistake, not S3's).
    #[error("S3 source {bucket} was not listed")]
    S3NotListed {
        /// The source's bucket.
        bucket: String,
    },
}

impl SourceError {
    /// The condition reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ConfigMapMissing { .. } | Self::KeyMissing { .. } => "SourceMissing",
            Self::S3NotListed { .. } => "S3Error",
        }
    }
}

/// Names of the ConfigMaps the spec reads, without duplicates, in order.
pub fn config_map_names(spec: &KnowledgeBaseSpec) -> Vec<String> {
    let mut names: Vec<String> = spec
        .sources
        .iter()
        .filter_map(|s| s.config_map.as_ref().map(|c| c.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The S3 sources of the spec, in source order.
pub fn s3_sources(spec: &KnowledgeBaseSpec) -> Vec<&switchboard_crds::S3Source> {
    spec.sources.iter().filter_map(|s| s.s3.as_ref()).collect()
}

/// The documents of every source, in source order.
///
/// Inline documents get the id `inline/<id or title>` (as in the gateway's laptop mode);
/// ConfigMap keys `configmap/<name>/<key>` with the key as title. Keys of a ConfigMap are
/// read in key order; with no key list, every key of `data` (binaryData is not text).
/// S3 objects come from `s3` (keyed by [`source_key`]) with ids `s3://bucket/key`.
///
/// # Errors
///
/// [`SourceError`] for a missing ConfigMap or key, or an S3 source not in `s3`.
pub fn documents(
    spec: &KnowledgeBaseSpec,
    config_maps: &BTreeMap<String, ConfigMap>,
    s3: &BTreeMap<String, S3Listing>,
) -> Result<Vec<Document>, SourceError> {
    let mut docs = Vec::new();
    for source in &spec.sources {
        if let Some(inline) = &source.inline {
            docs.extend(inline.documents.iter().map(|d| Document {
                id: format!("inline/{}", d.document_id()),
                title: d.title.clone(),
                content: d.content.clone(),
                category: d.category.clone(),
            }));
        }
        if let Some(cm_source) = &source.config_map {
            let cm =
                config_maps
                    .get(&cm_source.name)
                    .ok_or_else(|| SourceError::ConfigMapMissing {
                        name: cm_source.name.clone(),
                    })?;
            let empty = BTreeMap::new();
            let data = cm.data.as_ref().unwrap_or(&empty);
            let keys: Vec<&String> = if cm_source.keys.is_empty() {
                data.keys().collect()
            } else {
                cm_source.keys.iter().collect()
            };
            for key in keys {
                let content = data.get(key).ok_or_else(|| SourceError::KeyMissing {
                    name: cm_source.name.clone(),
                    key: key.clone(),
                })?;
                docs.push(Document {
                    id: cm_source.document_id(key),
                    title: key.clone(),
                    content: content.clone(),
                    category: None,
                });
            }
        }
        if let Some(s3_source) = &source.s3 {
            let listing =
                s3.get(&source_key(s3_source))
                    .ok_or_else(|| SourceError::S3NotListed {
                        bucket: s3_source.bucket.clone(),
                    })?;
            docs.extend(listing.documents.iter().cloned());
        }
    }
    Ok(docs)
}

/// sha256 (hex) of the documents, of the objects skipped (a newly skipped object is news
/// worth a status update) and of `target` (where they are indexed: a new schema or
/// namespace needs a sync even when no document changed). Every part is
/// length-prefixed, so no two different inputs hash alike.
pub fn content_hash(documents: &[Document], skipped: &[Skipped], target: &str) -> String {
    let mut h = Sha256::new();
    let mut part = |label: &str, value: &str| {
        h.update(format!("{label} {}\n", value.len()));
        h.update(value.as_bytes());
        h.update(b"\n");
    };
    part("target", target);
    for d in documents {
        part("id", &d.id);
        part("title", &d.title);
        part("content", &d.content);
        part("category", d.category.as_deref().unwrap_or(""));
    }
    for s in skipped {
        part("skipped", &s.id);
        part("reason", s.reason.as_str());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_crds::{ConfigMapSource, InlineDocument, InlineSource, SourceSpec};

    fn spec(sources: Vec<SourceSpec>) -> KnowledgeBaseSpec {
        KnowledgeBaseSpec {
            tenant: "acme".into(),
            description: None,
            backend: Default::default(),
            embedder: Default::default(),
            chunking: Default::default(),
            retrieval: Default::default(),
            sources,
        }
    }

    fn inline(title: &str, content: &str) -> SourceSpec {
        SourceSpec {
            inline: Some(InlineSource {
                documents: vec![InlineDocument {
                    id: None,
                    title: title.into(),
                    content: content.into(),
                    category: Some("hours".into()),
                }],
            }),
            ..SourceSpec::default()
        }
    }

    fn cm_source(name: &str, keys: &[&str]) -> SourceSpec {
        SourceSpec {
            config_map: Some(ConfigMapSource {
                name: name.into(),
                keys: keys.iter().map(|k| k.to_string()).collect(),
            }),
            ..SourceSpec::default()
        }
    }

    fn cm(data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn reads_inline_and_config_map_documents_with_stable_ids() {
        let spec = spec(vec![inline("Hours", "Open 9-5"), cm_source("faq", &[])]);
        let cms = BTreeMap::from([(
            "faq".to_string(),
            cm(&[("parking.md", "Free parking"), ("wifi.md", "Password: x")]),
        )]);
        let docs = documents(&spec, &cms, &BTreeMap::new()).unwrap();
        let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "inline/Hours",
                "configmap/faq/parking.md",
                "configmap/faq/wifi.md"
            ]
        );
        assert_eq!(docs[1].title, "parking.md");
        assert_eq!(docs[0].category.as_deref(), Some("hours"));
    }

    #[test]
    fn listed_keys_only_and_missing_keys_or_maps_are_errors() {
        let cms = BTreeMap::from([("faq".to_string(), cm(&[("a", "1"), ("b", "2")]))]);
        let docs = documents(
            &spec(vec![cm_source("faq", &["b"])]),
            &cms,
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].content, "2");
        let err = documents(
            &spec(vec![cm_source("faq", &["c"])]),
            &cms,
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert_eq!(err.reason(), "SourceMissing");
        let err =
            documents(&spec(vec![cm_source("other", &[])]), &cms, &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err,
            SourceError::ConfigMapMissing {
                name: "other".into()
            }
        );
    }

    #[test]
    fn s3_documents_come_from_their_listing_in_source_order() {
        let source = switchboard_crds::S3Source {
            bucket: "docs".into(),
            prefix: Some("faq/".into()),
            region: None,
        };
        let s3 = SourceSpec {
            s3: Some(source.clone()),
            ..SourceSpec::default()
        };
        let spec = spec(vec![s3, inline("Hours", "Open 9-5")]);
        let err = documents(&spec, &BTreeMap::new(), &BTreeMap::new()).unwrap_err();
        assert_eq!(err.reason(), "S3Error");
        let listing = S3Listing {
            documents: vec![Document {
                id: "s3://docs/faq/a.md".into(),
                title: "a.md".into(),
                content: "A".into(),
                category: None,
            }],
            skipped: vec![],
        };
        let listings = BTreeMap::from([(source_key(&source), listing)]);
        let docs = documents(&spec, &BTreeMap::new(), &listings).unwrap();
        let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["s3://docs/faq/a.md", "inline/Hours"]);
    }

    #[test]
    fn hash_changes_with_any_content_or_the_target() {
        let doc = |content: &str| Document {
            id: "inline/a".into(),
            title: "A".into(),
            content: content.into(),
            category: None,
        };
        let base = content_hash(&[doc("x")], &[], "pgvector:acme");
        assert_eq!(base, content_hash(&[doc("x")], &[], "pgvector:acme"));
        assert_ne!(base, content_hash(&[doc("y")], &[], "pgvector:acme"));
        assert_ne!(base, content_hash(&[doc("x")], &[], "pgvector:other"));
        assert_ne!(
            base,
            content_hash(&[doc("x"), doc("x")], &[], "pgvector:acme")
        );
        let png = Skipped {
            id: "s3://b/logo.png".into(),
            reason: crate::knowledge::s3::SkipReason::NotADocument,
        };
        assert_ne!(base, content_hash(&[doc("x")], &[png], "pgvector:acme"));
    }

    #[test]
    fn config_map_names_are_deduplicated() {
        let s = spec(vec![
            cm_source("b", &[]),
            cm_source("a", &[]),
            cm_source("b", &["k"]),
        ]);
        assert_eq!(config_map_names(&s), ["a", "b"]);
    }
}
