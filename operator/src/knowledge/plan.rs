//! Steps 2 and 3 of a sync, **validate** and **build**: from what was read, decide what
//! the sync does. Pure: the same knowledge base and reads give the same plan, so each
//! decision is unit-tested without a cluster, S3 or a model.

use switchboard_crds::KnowledgeBase;
use switchboard_knowledge::{ChunkingConfig, Document};

use super::error::KnowledgeError;
use super::read::Read;
use super::s3::Skipped;
use super::sources::{content_hash, documents};
use super::status::up_to_date;
use super::target::{self, Blocked, EmbedderChoice, Location};

/// What a sync is to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The status already describes a sync of this generation and content: nothing to
    /// embed, nothing to write.
    UpToDate,
    /// Something expected has not arrived yet (the tenant's database): report
    /// `Progressing`, check again later.
    Wait {
        /// CamelCase reason.
        reason: &'static str,
        /// For humans.
        message: String,
    },
    /// Index these documents.
    Sync(Box<SyncPlan>),
}

/// An index to bring in line with its sources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncPlan {
    /// Where the index lives.
    pub location: Location,
    /// What embeds it.
    pub embedder: EmbedderChoice,
    /// The documents, in a stable order.
    pub documents: Vec<Document>,
    /// S3 objects left out of the index.
    pub skipped: Vec<Skipped>,
    /// [`content_hash`] of the documents, the skipped objects and the location.
    pub content_hash: String,
    /// How documents are cut into chunks.
    pub chunking: ChunkingConfig,
}

/// Decides what a sync of `kb` (in `namespace`) does with what was `read`.
///
/// # Errors
///
/// The first failure in pipeline order: an invalid spec, a missing or unreadable
/// tenant, an unusable target, an unreadable ConfigMap or S3 source, a missing source.
pub fn plan(kb: &KnowledgeBase, namespace: &str, read: Read) -> Result<Plan, KnowledgeError> {
    // Validate: the API server's schema and CEL rules catch most of this, but not
    // everything (and a CRD may be older than this operator).
    kb.spec
        .validate()
        .map_err(|e| KnowledgeError::InvalidSpec(e.to_string()))?;
    let Some(tenant) = read.tenant? else {
        return Err(KnowledgeError::TenantNotFound {
            tenant: kb.spec.tenant.clone(),
            namespace: namespace.to_string(),
        });
    };
    let location = match target::location(kb, &tenant) {
        Ok(l) => l,
        Err(b) => return blocked(b),
    };
    let embedder = match target::embedder(kb) {
        Ok(e) => e,
        Err(b) => return blocked(b),
    };
    let config_maps = read.config_maps?;
    let listings = read.listings?;
    let skipped: Vec<Skipped> = listings
        .values()
        .flat_map(|l| l.skipped.iter().cloned())
        .collect();
    let documents = documents(&kb.spec, &config_maps, &listings)?;
    let hash = content_hash(&documents, &skipped, &location.describe());
    if up_to_date(kb.status.as_ref(), kb.metadata.generation, &hash) {
        return Ok(Plan::UpToDate);
    }
    Ok(Plan::Sync(Box::new(SyncPlan {
        location,
        embedder,
        documents,
        skipped,
        content_hash: hash,
        chunking: ChunkingConfig {
            size: kb.spec.chunking.size as usize,
            overlap: kb.spec.chunking.overlap as usize,
        },
    })))
}

fn blocked(b: Blocked) -> Result<Plan, KnowledgeError> {
    match b {
        Blocked::Waiting { reason, message } => Ok(Plan::Wait { reason, message }),
        Blocked::Failed(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use switchboard_crds::{DatabaseStatus, VoiceTenant, VoiceTenantStatus};

    use super::*;
    use crate::knowledge::s3::S3Error;
    use crate::knowledge::status::{Outcome, kb_status};

    fn kb(sources: &str) -> KnowledgeBase {
        let yaml = format!(
            r#"
apiVersion: voice.switchboard.dev/v1alpha1
kind: KnowledgeBase
metadata: {{ name: faq, namespace: acme, generation: 2 }}
spec:
  tenant: dental
  sources:
{sources}
"#
        );
        switchboard_crds::parse_knowledge_base(&yaml).expect("knowledge base")
    }

    fn inline() -> KnowledgeBase {
        kb(
            "    - inline:\n        documents:\n          - id: hours\n            title: Hours\n            content: We open at 8.\n",
        )
    }

    fn tenant(provisioned: bool) -> VoiceTenant {
        let mut vt = switchboard_crds::parse_tenant(
            r#"
apiVersion: voice.switchboard.dev/v1alpha1
kind: VoiceTenant
metadata: { name: dental, namespace: acme, uid: u1 }
spec:
  displayName: Demo
  phoneNumbers: ["+15005550006"]
  twilio:
    accountSid: ACe5b9b91d74144c1eab5502f239bd8ed9
    authToken: { secretKeyRef: { name: s, key: twilio } }
  openai:
    apiKey: { secretKeyRef: { name: s, key: openai } }
"#,
        )
        .expect("tenant");
        if provisioned {
            let derived = crate::dbnames::derive("acme", "dental", "u1");
            vt.status = Some(VoiceTenantStatus {
                database: Some(DatabaseStatus {
                    role: derived.identifier.clone(),
                    schema: derived.identifier,
                    secret_name: derived.secret_name,
                }),
                ..Default::default()
            });
        }
        vt
    }

    fn read(tenant: Option<VoiceTenant>) -> Read {
        Read {
            tenant: Ok(tenant),
            config_maps: Ok(BTreeMap::new()),
            listings: Ok(BTreeMap::new()),
        }
    }

    fn s3_down() -> Result<BTreeMap<String, crate::knowledge::s3::S3Listing>, S3Error> {
        Err(S3Error::Unreachable {
            message: "connection refused".into(),
        })
    }

    #[test]
    fn a_provisioned_tenant_gets_its_documents_indexed() {
        let Ok(Plan::Sync(sync)) = plan(&inline(), "acme", read(Some(tenant(true)))) else {
            panic!("expected a sync");
        };
        assert_eq!(sync.documents.len(), 1);
        assert_eq!(sync.documents[0].id, "inline/hours");
        assert!(sync.skipped.is_empty());
        assert_eq!(
            sync.location,
            Location::Pgvector {
                url: switchboard_crds::SecretKeySelector {
                    name: "dental-database".into(),
                    key: "url".into(),
                },
                trust: crate::knowledge::api::SecretTrust::OwnedBy("u1".into()),
                schema: Some(crate::dbnames::derive("acme", "dental", "u1").identifier),
            }
        );
        assert_eq!(sync.embedder, EmbedderChoice::Local);
    }

    #[test]
    fn a_forged_status_database_is_refused() {
        // Another tenant's names (or any sb_ names) written into this tenant's status:
        // nothing is indexed there, the reason says why.
        let other = crate::dbnames::derive("acme", "other", "u2");
        for forged in [
            DatabaseStatus {
                role: other.identifier.clone(),
                schema: other.identifier.clone(),
                secret_name: other.secret_name.clone(),
            },
            DatabaseStatus {
                role: crate::dbnames::derive("acme", "dental", "u1").identifier,
                schema: other.identifier.clone(),
                secret_name: "dental-database".into(),
            },
            DatabaseStatus {
                secret_name: other.secret_name.clone(),
                ..tenant(true).status.unwrap().database.unwrap()
            },
        ] {
            let mut vt = tenant(true);
            vt.status.as_mut().unwrap().database = Some(forged.clone());
            let Err(e) = plan(&inline(), "acme", read(Some(vt))) else {
                panic!("a forged status was accepted: {forged:?}");
            };
            assert_eq!(e.category(), "TenantDatabaseNotProven", "{e}");
            assert!(
                e.to_string().contains(&other.identifier)
                    || e.to_string().contains(&other.secret_name),
                "{e}"
            );
        }
    }

    #[test]
    fn a_status_describing_the_same_content_is_up_to_date() {
        let kb = inline();
        let Ok(Plan::Sync(sync)) = plan(&kb, "acme", read(Some(tenant(true)))) else {
            panic!("expected a sync");
        };
        let outcome = Outcome::Synced {
            documents: 1,
            chunks: 1,
            content_hash: sync.content_hash.clone(),
            skipped: 0,
        };
        let now = Time(jiff::Timestamp::UNIX_EPOCH);
        let mut synced = kb.clone();
        synced.status = Some(kb_status(None, kb.metadata.generation, &outcome, &now));
        assert_eq!(
            plan(&synced, "acme", read(Some(tenant(true)))).ok(),
            Some(Plan::UpToDate)
        );
        // A new generation is synced again, even with the same content.
        synced.metadata.generation = Some(3);
        assert!(matches!(
            plan(&synced, "acme", read(Some(tenant(true)))),
            Ok(Plan::Sync(_))
        ));
    }

    #[test]
    fn a_tenant_without_a_database_is_waited_for() {
        let Ok(Plan::Wait { reason, .. }) = plan(&inline(), "acme", read(Some(tenant(false))))
        else {
            panic!("expected to wait");
        };
        assert_eq!(reason, "TenantDatabasePending");
        // Waiting comes before an unreadable source: the sources are not needed yet.
        let mut r = read(Some(tenant(false)));
        r.listings = s3_down();
        assert!(matches!(plan(&inline(), "acme", r), Ok(Plan::Wait { .. })));
    }

    #[test]
    fn failures_carry_their_category_in_pipeline_order() {
        let category =
            |kb: &KnowledgeBase, r: Read| plan(kb, "acme", r).err().map(|e| e.category());
        assert_eq!(category(&inline(), read(None)), Some("TenantNotFound"));
        let mut r = read(Some(tenant(true)));
        r.listings = s3_down();
        assert_eq!(category(&inline(), r), Some("S3Unreachable"));
        let missing = kb("    - configMap:\n        name: faq-docs\n");
        assert_eq!(
            category(&missing, read(Some(tenant(true)))),
            Some("SourceMissing")
        );
        // A missing tenant is reported before a source that is missing too.
        assert_eq!(category(&missing, read(None)), Some("TenantNotFound"));
    }
}
