//! The Switchboard operator: turns each `VoiceTenant` into a running, isolated gateway.
//!
//! A reconcile follows the pipeline *dereference → validate → build → apply → update
//! status*. This crate holds the pure steps:
//!
//! - [`build`]: one module per owned kind, each a pure function
//!   `build_x(&VoiceTenant, &Ctx) -> Result<X, BuildError>`. Everything a builder needs
//!   from the cluster (Secret versions, the default image, the public host) arrives in
//!   [`Ctx`], so the same inputs always give the same objects, byte for byte: applying
//!   them again is a no-op and never triggers another reconcile.
//! - [`labels`]: names, labels, selectors and the owner reference shared by every child.
//! - [`database`]: the tenant's own Postgres role and schema (names, credentials Secret,
//!   provisioning and dropping).
//! - [`status`]: the `Ready` / `Progressing` / `Degraded` conditions computed from
//!   observed facts, with `lastTransitionTime` kept while a condition's status holds.
//!
//! Every built object serializes with its `apiVersion` and `kind` and without `null`s
//! (k8s-openapi skips `None`), so it can be sent as a server-side apply body as is.

pub mod build;
pub mod cli;
pub mod controller;
pub mod ctx;
pub mod database;
pub mod error;
pub mod events;
pub mod knowledge;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod status;
pub mod telemetry;

pub use build::{Children, build_children, public_url, referenced_secrets, webhook_url};
pub use ctx::{Ctx, IngressSettings, PublicAccess};
pub use error::BuildError;
pub use status::{Failure, Observed, Rollout, conditions, tenant_status};
