//! The ConfigMap holding the tenant file the gateway reads.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use switchboard_crds::VoiceTenant;

use super::TENANT_FILE;
use super::database_tls::{CA_FILE, ca_bundle};
use super::knowledge::{knowledge_file, searchable};
use super::secrets::database_url;
use crate::owner::MetadataError;
use crate::owner::Owner;
use crate::tenant::build::BuildError;
use crate::tenant::inputs::BuildInputs;

/// The tenant file: a VoiceTenant manifest with the tenant's name and its spec as
/// applied (defaults filled), and nothing else from the cluster (no namespace, uid or
/// status), so the file changes only when the spec does.
///
/// # Errors
///
/// [`MetadataError::Name`], or [`BuildError::Render`] if serialization fails.
pub fn render_tenant_file(vt: &VoiceTenant) -> Result<String, BuildError> {
    let name = vt
        .metadata
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or(MetadataError::Name)?;
    let manifest = VoiceTenant::new(name, vt.spec.clone());
    Ok(serde_saphyr::to_string(&manifest)?)
}

/// Builds the ConfigMap `<tenant>-gateway` with the key [`TENANT_FILE`], one key
/// `knowledge-<name>.yaml` per knowledge base the gateway searches
/// ([`super::knowledge::searchable`]), and the database CA bundle ([`CA_FILE`]) when
/// the operator has one and the gateway connects to Postgres.
///
/// # Errors
///
/// [`BuildError`] when the tenant lacks metadata or cannot be rendered.
pub fn build_config_map(vt: &VoiceTenant, ctx: &BuildInputs) -> Result<ConfigMap, BuildError> {
    let owner = Owner::of(vt)?;
    let mut data = BTreeMap::from([(TENANT_FILE.to_string(), render_tenant_file(vt)?)]);
    for kb in searchable(vt, ctx) {
        data.insert(knowledge_file(&kb.name), kb.manifest.clone());
    }
    if let Some(ca) = ca_bundle(ctx, database_url(&vt.spec, ctx)?.is_some()) {
        data.insert(CA_FILE.to_string(), ca.to_string());
    }
    Ok(ConfigMap {
        metadata: owner.meta(),
        data: Some(data),
        ..ConfigMap::default()
    })
}

/// Everything the gateway reads from the ConfigMap, for the pod template's checksum: the
/// tenant file, then each knowledge base's manifest and the database CA bundle
/// (length-prefixed). Without either, exactly the tenant file.
///
/// # Errors
///
/// As [`render_tenant_file`].
pub fn config_text(vt: &VoiceTenant, ctx: &BuildInputs) -> Result<String, BuildError> {
    let mut text = render_tenant_file(vt)?;
    for kb in searchable(vt, ctx) {
        text.push_str(&format!(
            "\n--- knowledge {} {}\n{}",
            kb.name,
            kb.manifest.len(),
            kb.manifest
        ));
    }
    if let Some(ca) = ca_bundle(ctx, database_url(&vt.spec, ctx)?.is_some()) {
        text.push_str(&format!("\n--- {CA_FILE} {}\n{ca}", ca.len()));
    }
    Ok(text)
}
