//! The Switchboard operator: the controller of `VoiceTenant`s and `KnowledgeBase`s.
//!
//! Each resource has its own module, shaped the same way, and each reconcile follows the
//! pipeline *dereference → validate → build (pure) → apply → update status*:
//!
//! - [`tenant`]: turns each `VoiceTenant` into a running, isolated gateway (its pure
//!   builders, its controller and status; its Postgres role and schema through
//!   [`database`]);
//! - [`knowledge`]: indexes each `KnowledgeBase`'s sources into the tenant's pgvector
//!   schema or a Pinecone namespace (sources, plan, ingestion, controller and status).
//!
//! Shared by both, at the root: a tenant's database on the shared Postgres ([`database`]:
//! the names of its role and schema, provisioning, the admin target a knowledge base's
//! pgvector writes also go through), the tenant's identity as its children see it
//! (`owner`), and the process ([`cli`], [`config`], [`run`], [`leader`],
//! [`telemetry`]), what every controller reports ([`conditions`], [`events`],
//! [`metrics`]), how it retries ([`backoff`]) and names what it owns ([`labels`],
//! [`FINALIZER`]).

pub mod access;
pub mod backoff;
pub mod cli;
pub mod conditions;
pub mod database;
pub mod dbnames;
pub mod endpoints;
pub mod events;
pub mod knowledge;
pub mod labels;
pub mod leader;
pub mod metrics;
pub(crate) mod owner;
pub mod pg_tls;
pub mod run;
pub mod telemetry;
pub mod tenant;

pub use tenant::build::{
    BuildError, Children, build_children, public_url, referenced_secrets, webhook_url,
};
pub use tenant::inputs::{BuildInputs, IngressSettings, PublicAccess};

/// The finalizer on every resource the operator cleans up after: a tenant whose database
/// it manages, every knowledge base.
pub const FINALIZER: &str = "voice.switchboard.dev/cleanup";
