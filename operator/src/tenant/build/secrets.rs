//! The Secrets a tenant's gateway reads, and the checksum that rolls its pods when the
//! config or one of them changes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    KeyToPath, ProjectedVolumeSource, SecretProjection, VolumeProjection,
};
use sha2::{Digest, Sha256};
use switchboard_crds::format::is_dns_subdomain;
use switchboard_crds::{SecretKeySelector, SecretRef, VoiceTenant, VoiceTenantSpec};

use crate::tenant::build::BuildError;
use crate::tenant::inputs::BuildInputs;

/// Owner read, group read: the pod's fsGroup owns the files, nobody else reads them.
const SECRET_FILE_MODE: i32 = 0o440;

/// The secrets the gateway reads from [`super::SECRETS_DIR`]: the Twilio Auth Token (and
/// the secondary one during a rotation), the OpenAI API key and the console's API keys.
pub(super) fn mounted_keys(spec: &VoiceTenantSpec) -> Result<Vec<&SecretKeySelector>, BuildError> {
    let refs = [
        ("spec.twilio.authToken", Some(&spec.twilio.auth_token)),
        (
            "spec.twilio.secondaryAuthToken",
            spec.twilio.secondary_auth_token.as_ref(),
        ),
        ("spec.openai.apiKey", Some(&spec.openai.api_key)),
    ];
    // The console's API keys are read like the tenant's other secrets.
    let keys = spec
        .console
        .iter()
        .flat_map(|c| &c.api_keys)
        .map(|k| ("spec.console.apiKeys[].secret", Some(&k.secret)));
    refs.into_iter()
        .chain(keys)
        .filter_map(|(field, r)| r.map(|r| (field, r)))
        .filter(|(_, r)| !read_by_gateway(r))
        .map(|(field, r)| {
            let selector = in_cluster(field, r)?;
            mountable(field, selector)?;
            Ok(selector)
        })
        .collect()
}

/// The secrets the knowledge bases the gateway searches read (Pinecone and OpenAI API
/// keys), mounted like the tenant's own.
pub(super) fn knowledge_keys<'a>(
    vt: &VoiceTenant,
    ctx: &'a BuildInputs,
) -> Vec<&'a SecretKeySelector> {
    super::knowledge::searchable(vt, ctx)
        .into_iter()
        .flat_map(|k| k.secrets.iter())
        .filter(|s| mountable("knowledge base secret", s).is_ok())
        .collect()
}

/// The Secret key the gateway's `SWITCHBOARD_DATABASE_URL` comes from: the operator's
/// provisioned role when there is one, else the tenant's `spec.database.url`, else none
/// (the gateway then keeps its records in SQLite in its data directory).
pub(super) fn database_url<'a>(
    spec: &'a VoiceTenantSpec,
    ctx: &'a BuildInputs,
) -> Result<Option<&'a SecretKeySelector>, BuildError> {
    if let Some(provisioned) = &ctx.database_url_secret {
        return Ok(Some(provisioned));
    }
    match spec.database.as_ref().and_then(|d| d.url.as_ref()) {
        // The gateway reads it from Secrets Manager itself (no environment variable).
        Some(r) if read_by_gateway(r) => Ok(None),
        Some(r) => in_cluster("spec.database.url", r).map(Some),
        None => Ok(None),
    }
}

/// A reference to AWS Secrets Manager: the gateway reads it with its own AWS identity
/// (IRSA), re-reading it on a schedule; nothing is mounted.
fn read_by_gateway(r: &SecretRef) -> bool {
    r.aws_secrets_manager.is_some() && r.sources_set() == 1
}

fn in_cluster<'a>(
    field: &'static str,
    r: &'a SecretRef,
) -> Result<&'a SecretKeySelector, BuildError> {
    match &r.secret_key_ref {
        Some(selector) if r.sources_set() == 1 => Ok(selector),
        _ => Err(BuildError::SecretNotInCluster {
            field,
            // The gateway would read the first of several sources, not the Secret.
            reference: if r.sources_set() > 1 {
                "more than one source".to_string()
            } else {
                r.describe()
            },
        }),
    }
}

/// The file `<secret>/<key>` must be a plain relative path inside the secrets directory.
fn mountable(field: &'static str, selector: &SecretKeySelector) -> Result<(), BuildError> {
    let key = &selector.key;
    let key_ok = !key.is_empty() && key != "." && !key.starts_with("..") && !key.contains('/');
    if key_ok && is_dns_subdomain(&selector.name) {
        Ok(())
    } else {
        Err(BuildError::UnmountableSecretKey {
            field,
            key: format!("{}/{}", selector.name, key),
        })
    }
}

/// Names of every Secret the tenant's gateway reads, with `ctx` as it will be built: what
/// the dereference step must read (and watch), putting each one's resourceVersion into
/// `ctx.secret_versions`.
///
/// # Errors
///
/// [`BuildError::SecretNotInCluster`] or [`BuildError::UnmountableSecretKey`] for a
/// reference that cannot work in a pod.
pub fn referenced_secrets(
    vt: &VoiceTenant,
    ctx: &BuildInputs,
) -> Result<BTreeSet<String>, BuildError> {
    let mut names: BTreeSet<String> = mounted_keys(&vt.spec)?
        .into_iter()
        .map(|selector| selector.name.clone())
        .collect();
    if let Some(db) = database_url(&vt.spec, ctx)? {
        names.insert(db.name.clone());
    }
    names.extend(knowledge_keys(vt, ctx).into_iter().map(|s| s.name.clone()));
    Ok(names)
}

/// One projected volume with exactly the referenced keys, each at `<secret>/<key>`.
pub(super) fn secrets_volume(keys: &[&SecretKeySelector]) -> ProjectedVolumeSource {
    let mut by_secret: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for selector in keys {
        by_secret
            .entry(selector.name.as_str())
            .or_default()
            .insert(selector.key.as_str());
    }
    let sources = by_secret
        .into_iter()
        .map(|(name, keys)| VolumeProjection {
            secret: Some(SecretProjection {
                name: name.to_string(),
                items: Some(
                    keys.into_iter()
                        .map(|key| KeyToPath {
                            key: key.to_string(),
                            path: format!("{name}/{key}"),
                            ..KeyToPath::default()
                        })
                        .collect(),
                ),
                optional: None,
            }),
            ..VolumeProjection::default()
        })
        .collect();
    ProjectedVolumeSource {
        default_mode: Some(SECRET_FILE_MODE),
        sources: Some(sources),
        ..ProjectedVolumeSource::default()
    }
}

/// Checksum of the tenant file and of the versions of the Secrets in `secrets`.
///
/// Each part is length-prefixed so no two different inputs hash alike.
pub(super) fn checksum(
    tenant_file: &str,
    secrets: &BTreeSet<String>,
    ctx: &BuildInputs,
) -> Result<String, BuildError> {
    let mut hash = Sha256::new();
    hash.update(format!("tenant.yaml {}\n", tenant_file.len()));
    hash.update(tenant_file.as_bytes());
    for name in secrets {
        let version = ctx
            .secret_versions
            .get(name)
            .ok_or_else(|| BuildError::SecretNotObserved { name: name.clone() })?;
        hash.update(format!(
            "\nsecret {} {name} {} {version}",
            name.len(),
            version.len()
        ));
    }
    Ok(hex::encode(hash.finalize()))
}
