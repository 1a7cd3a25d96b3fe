//! The tenant's identity as its children see it: name, namespace, the child name and the
//! controller owner reference every child carries.
//!
//! Shared by the tenant's builders (`tenant::build`) and its database objects
//! (`database`: names derived from the identity, the credentials Secret owned by the
//! tenant), so it lives at the root with its own error rather than in either.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use switchboard_crds::VoiceTenant;

use crate::labels::{child_name, labels};

/// The tenant lacks the metadata every child is derived from: it was not read from an API
/// server.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The tenant has no `metadata.name`.
    #[error("the VoiceTenant has no metadata.name")]
    Name,
    /// The tenant has no `metadata.namespace` (VoiceTenants are namespaced).
    #[error("VoiceTenant {name} has no metadata.namespace")]
    Namespace {
        /// The tenant.
        name: String,
    },
    /// The tenant has no `metadata.uid`, so children cannot point at it (it was not read
    /// from an API server).
    #[error("VoiceTenant {name} has no metadata.uid")]
    Uid {
        /// The tenant.
        name: String,
    },
}

impl MetadataError {
    /// The category of every variant: `MissingMetadata`.
    pub fn category(&self) -> &'static str {
        "MissingMetadata"
    }
}

/// The facts about a tenant every builder starts from.
#[derive(Clone, Debug)]
pub(crate) struct Owner {
    /// `metadata.name` of the tenant.
    pub tenant: String,
    /// `metadata.namespace` of the tenant (and of every child).
    pub namespace: String,
    /// [`child_name`] of the tenant.
    pub name: String,
    /// Controller owner reference to the tenant.
    pub owner_ref: OwnerReference,
}

impl Owner {
    /// Reads the tenant's identity; fails when it was not read from an API server.
    pub fn of(vt: &VoiceTenant) -> Result<Self, MetadataError> {
        let tenant = vt
            .metadata
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or(MetadataError::Name)?;
        let namespace = vt.namespace().ok_or_else(|| MetadataError::Namespace {
            name: tenant.clone(),
        })?;
        let mut owner_ref = vt
            .controller_owner_ref(&())
            .ok_or_else(|| MetadataError::Uid {
                name: tenant.clone(),
            })?;
        // Foreground deletion of the tenant waits for its children.
        owner_ref.block_owner_deletion = Some(true);
        Ok(Self {
            name: child_name(&tenant),
            tenant,
            namespace,
            owner_ref,
        })
    }

    /// Metadata of a child: its name, namespace, labels and owner reference.
    pub fn meta(&self) -> ObjectMeta {
        ObjectMeta {
            name: Some(self.name.clone()),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels(&self.tenant)),
            owner_references: Some(vec![self.owner_ref.clone()]),
            ..ObjectMeta::default()
        }
    }
}
