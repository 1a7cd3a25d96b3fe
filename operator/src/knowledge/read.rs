//! Step 1 of a sync, **dereference**: every cluster and S3 read the plan needs, done up
//! front so that [`super::plan::plan`] is a pure function of what was read.
//!
//! A failed read is kept, not returned at once: the plan decides which failure the
//! status reports, in the same order as ever (a spec error before a missing tenant,
//! a tenant still waiting for its database before an unreadable source).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use switchboard_crds::{KnowledgeBase, VoiceTenant};

use super::api::KnowledgeApi;
use super::engine::Engine;
use super::error::KnowledgeError;
use super::s3::{S3Error, S3Listing};
use super::sources::{config_map_names, s3_sources};

/// What a knowledge base refers to, as read in one reconcile.
#[derive(Debug)]
pub struct Read {
    /// The tenant (`Ok(None)`: it does not exist).
    pub tenant: Result<Option<VoiceTenant>, KnowledgeError>,
    /// The ConfigMaps of `configMap` sources that exist, by name.
    pub config_maps: Result<BTreeMap<String, ConfigMap>, KnowledgeError>,
    /// The S3 sources' listings (new or changed objects downloaded), by source key.
    pub listings: Result<BTreeMap<String, S3Listing>, S3Error>,
}

/// The key of a knowledge base in the engine's per-knowledge-base memory (S3 reads).
pub fn kb_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Reads the tenant, the ConfigMaps and the S3 sources of `kb` (named `name` in
/// `namespace`).
pub async fn read(
    kb: &KnowledgeBase,
    namespace: &str,
    name: &str,
    api: &dyn KnowledgeApi,
    engine: &Engine,
) -> Read {
    let tenant = api
        .tenant(namespace, &kb.spec.tenant)
        .await
        .map_err(|e| KnowledgeError::kube("the tenant", e));
    let config_maps = read_config_maps(kb, namespace, api).await;
    // S3 cannot be watched: every reconcile lists, and downloads only what changed.
    let buckets = s3_sources(&kb.spec);
    // The operator reads S3 with one identity for every namespace: only what the
    // namespace was granted is read (nothing at all otherwise).
    let refused = buckets.iter().find(|b| {
        !engine
            .s3()
            .access()
            .allows(namespace, &b.bucket, b.prefix.as_deref())
    });
    let listings = if let Some(b) = refused {
        engine.s3().forget(&kb_key(namespace, name));
        Err(S3Error::NotAllowed {
            namespace: namespace.to_string(),
            bucket: b.bucket.clone(),
            prefix: b.prefix.clone().unwrap_or_default(),
        })
    } else if buckets.is_empty() {
        // Its S3 sources may just have been removed from the spec.
        engine.s3().forget(&kb_key(namespace, name));
        Ok(BTreeMap::new())
    } else {
        engine
            .s3()
            .read(&kb_key(namespace, name), &buckets)
            .await
            .map(|(listings, stats)| {
                tracing::debug!(
                    namespace,
                    kb = name,
                    listed = stats.listed,
                    fetched = stats.fetched,
                    removed = stats.removed,
                    "S3 sources read"
                );
                listings
            })
    };
    Read {
        tenant,
        config_maps,
        listings,
    }
}

async fn read_config_maps(
    kb: &KnowledgeBase,
    namespace: &str,
    api: &dyn KnowledgeApi,
) -> Result<BTreeMap<String, ConfigMap>, KnowledgeError> {
    let mut config_maps = BTreeMap::new();
    for cm in config_map_names(&kb.spec) {
        match api.config_map(namespace, &cm).await {
            Ok(Some(found)) => {
                config_maps.insert(cm, found);
            }
            Ok(None) => {}
            Err(e) => return Err(KnowledgeError::kube(format!("ConfigMap {cm}"), e)),
        }
    }
    Ok(config_maps)
}
