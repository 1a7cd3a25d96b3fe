//! The VoiceTenant controller: turns each tenant into a running, isolated gateway.
//!
//! A reconcile (`reconcile.rs`) follows the same pipeline as a knowledge base's:
//!
//! 1. **validate**: the spec's own rules (a CRD cannot express them all);
//! 2. **dereference**: the tenant's own Postgres role, schema and credentials Secret
//!    ([`crate::database`], when the operator manages them), the knowledge bases its agent
//!    lists and the versions of the Secrets the gateway reads, all into the
//!    [`BuildInputs`] ([`inputs`]);
//! 3. **build** ([`build`]): every child as a pure function of the tenant and its inputs,
//!    byte for byte the same for the same inputs;
//! 4. **apply** (`apply.rs`): server-side apply of each child whose digest changed
//!    ([`decide`]), pruning of optional children the tenant no longer wants;
//! 5. **status** ([`status`]): `Ready` / `Progressing` / `Degraded` from the rollout and
//!    the failure, if any, written only when it changed.
//!
//! Every failure is a [`TenantError`] whose category is the `Degraded` reason, the Event
//! reason and the metric label. [`controller`] wires the reconcile onto the kube runtime
//! (watches and caches); `TenantReconciler` (`reconciler.rs`) is what every
//! reconcile shares.

mod apply;
pub mod build;
mod cleanup;
pub mod config;
pub mod controller;
pub mod decide;
mod dereference;
pub mod error;
pub mod inputs;
pub mod policy;
mod reconcile;
mod reconciler;
pub mod status;

pub use error::TenantError;
pub use inputs::{BuildInputs, IngressSettings, PublicAccess};
