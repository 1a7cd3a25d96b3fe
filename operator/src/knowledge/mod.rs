//! The KnowledgeBase controller: indexes a knowledge base's sources into its tenant's
//! pgvector schema or a Pinecone namespace, keeps the index in sync as sources change,
//! and reports what it holds.
//!
//! A reconcile follows the same pipeline as the tenant's ([`reconcile`]):
//!
//! 1. **dereference** ([`read`], over [`api::KnowledgeApi`]): the tenant (same
//!    namespace), the ConfigMaps of `configMap` sources, the S3 prefixes listed and new
//!    or changed objects downloaded ([`s3`]; S3 cannot be watched, so S3-backed
//!    knowledge bases are re-listed every few minutes);
//! 2. **validate** and 3. **build**, pure ([`plan`](mod@plan)): the spec's own rules, the tenant's
//!    database provisioned for pgvector ([`target`]), the documents and their
//!    [`sources::content_hash`]; the plan is to skip when the status already describes
//!    a sync of this generation and hash (an idle cluster embeds nothing and writes
//!    nothing), to wait, or to sync;
//! 4. **apply** ([`engine::Engine`]): the embedder and the knowledge base's own pgvector
//!    table + HNSW index in the tenant's schema (`PgVectorStore::kb_table`) or Pinecone
//!    index, opened with the credentials they need; incremental ingestion (only changed
//!    chunks are embedded, removed ones deleted);
//! 5. **status** ([`status`]): documents, chunks, lastSync, contentHash, conditions.
//!
//! Every failure is a [`KnowledgeError`] whose category is the `Degraded` reason, the
//! Event reason and the metric label.
//!
//! Events: `Synced` (Normal) when a sync changed the index, `SyncFailed` (Warning, the
//! Degraded reason) when a failure is new, `BackendDropped`/`BackendRetained` on
//! deletion.
//!
//! The finalizer [`crate::FINALIZER`] drops the table (or deletes the Pinecone
//! namespace) only when the tenant's `deletionPolicy` is `Delete`. A tenant that is
//! already gone counts as Retain: the tenant's own finalizer decided the fate of its
//! schema, and a knowledge base cannot tell any more whether its data was meant to stay.

pub use crate::access;
pub mod api;
pub mod controller;
pub mod engine;
pub mod error;
pub mod plan;
pub mod read;
pub mod reconcile;
pub mod s3;
pub mod sources;
pub mod status;
pub mod target;

pub use api::{KnowledgeApi, KubeKnowledgeApi};
pub use controller::{KnowledgeControllerConfig, run};
pub use engine::{Engine, EngineConfig, SecretsManagerSettings};
pub use error::KnowledgeError;
pub use plan::{Plan, SyncPlan, plan};
pub use read::{Read, kb_key};
pub use reconcile::{Cleanup, Decision, SyncDetail, cleanup, sync, sync_detailed};
pub use s3::{S3Settings, S3Sources};
pub use status::{Outcome, kb_status};
