//! The tenant's dereference step: everything the builders need from outside the
//! tenant, into its [`BuildInputs`]. The operator-managed database is ensured here
//! (role, schema and credentials Secret: the gateway's Secret version depends on it),
//! then the knowledge bases the agent lists and the versions of the Secrets the gateway
//! reads are observed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use switchboard_crds::{DatabaseStatus, VoiceTenant};

use super::build::referenced_secrets;
use super::error::TenantError;
use super::inputs::BuildInputs;
use super::reconcile::manages_database;
use super::reconciler::TenantReconciler;
use crate::database::{
    Ownership, Provisioner, TenantDatabase, build_database_secret, is_owned_by, password_of,
    url_key_selector,
};
use crate::labels::{USABLE_SECRET_LABEL, secret_usable};

/// The builders' inputs for `vt`, and its database's names when the operator manages
/// it (after ensuring role, schema and Secret).
pub(super) async fn dereference(
    vt: &VoiceTenant,
    ctx: &TenantReconciler,
) -> Result<(BuildInputs, Option<DatabaseStatus>), TenantError> {
    let namespace = vt.namespace().unwrap_or_default();
    let mut inputs = ctx.config.base_inputs(&vt.name_any(), &namespace);
    let mut database = None;
    let provisioner = if manages_database(vt, ctx) {
        ctx.provisioner.as_ref()
    } else {
        None
    };
    if let Some(provisioner) = provisioner {
        let (db, secret_version) = provision(vt, ctx, provisioner).await?;
        inputs.database_url_secret = Some(url_key_selector(&db));
        inputs
            .secret_versions
            .insert(db.secret_name.clone(), secret_version);
        database = Some(db.to_status());
    }
    observe_secrets(vt, &namespace, ctx, &mut inputs).await?;
    Ok((inputs, database))
}

/// Puts the resourceVersion of every Secret the gateway reads into `inputs`; a Secret
/// that does not exist is left out (the build then fails with `SecretNotObserved`).
async fn observe_secrets(
    vt: &VoiceTenant,
    namespace: &str,
    ctx: &TenantReconciler,
    inputs: &mut BuildInputs,
) -> Result<(), TenantError> {
    // The knowledge bases the agent lists (of this tenant, in its namespace): rendered
    // into the ConfigMap for the gateway's --knowledge, their Secrets mounted.
    let kbs: Api<switchboard_crds::KnowledgeBase> = ctx.api(namespace);
    for kb_name in &vt.spec.agent.knowledge_bases {
        let kb = kbs.get_opt(kb_name).await.map_err(|e| {
            TenantError::kube(format!("read KnowledgeBase {namespace}/{kb_name}"), e)
        })?;
        match kb.filter(|kb| kb.spec.tenant == vt.name_any()) {
            Some(kb) => {
                // The gateway searches with the knowledge base's keys: refused here
                // before its manifest or Secrets reach a pod.
                ctx.config.references.admit_knowledge(&kb)?;
                inputs
                    .knowledge_bases
                    .push(crate::tenant::build::KnowledgeMount::of(&kb)?);
            }
            None => inputs.missing_knowledge_bases.push(kb_name.clone()),
        }
    }
    let names = referenced_secrets(vt, inputs)?;
    let mut versions = BTreeMap::new();
    for name in names {
        if inputs.secret_versions.contains_key(&name) {
            continue;
        }
        // Only the operator's own database Secret was skipped above: everything else is
        // a reference the tenant's editor chose, allowed only to labelled Secrets.
        let cached = ctx
            .stores
            .secrets
            .get(&ObjectRef::new(&name).within(namespace))
            .filter(|s| s.metadata.resource_version.is_some())
            .map(|s| s.metadata.clone());
        let meta = match cached {
            Some(meta) => Some(meta),
            // Not in the cache: created a moment ago, or really missing.
            None => {
                let api: Api<Secret> = ctx.api(namespace);
                api.get_metadata_opt(&name)
                    .await
                    .map_err(|e| TenantError::kube(format!("read Secret {namespace}/{name}"), e))?
                    .map(|s| s.metadata)
            }
        };
        if let Some(meta) = meta {
            if !secret_usable(meta.labels.as_ref()) {
                return Err(TenantError::SecretNotUsable {
                    name,
                    label: USABLE_SECRET_LABEL,
                });
            }
            if let Some(v) = meta.resource_version {
                versions.insert(name, v);
            }
        }
    }
    inputs.secret_versions.extend(versions);
    Ok(())
}

/// Ensures the tenant's database Secret (created once, never rewritten) and its role
/// and schema; returns the names and the Secret's resourceVersion.
async fn provision(
    vt: &VoiceTenant,
    ctx: &TenantReconciler,
    provisioner: &Provisioner,
) -> Result<(TenantDatabase, String), TenantError> {
    let namespace = vt.namespace().unwrap_or_default();
    let uid = vt.uid().unwrap_or_default();
    let db = TenantDatabase::resolve(vt)?;

    // The cache says whether the Secret exists; its data (the password) is only read
    // when the role has to be ensured.
    let cached = ctx
        .stores
        .secrets
        .get(&ObjectRef::new(&db.secret_name).within(&namespace));
    if let Some(meta) = &cached
        && let Some(version) = &meta.metadata.resource_version
    {
        let key = provision_key(&db, version);
        let owned = meta
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && o.uid == uid);
        if owned && ctx.provisioned(&uid).as_deref() == Some(key.as_str()) {
            return Ok((db, version.clone()));
        }
    }

    let api: Api<Secret> = ctx.api(&namespace);
    let read = |e| TenantError::kube(format!("read Secret {namespace}/{}", db.secret_name), e);
    let secret = match api.get_opt(&db.secret_name).await.map_err(read)? {
        Some(secret) => secret,
        None => {
            // CNPG #9677 the other way round: never pair an existing role with a fresh
            // password that the role does not have.
            if provisioner.role_exists(&db).await? {
                return Err(TenantError::LostSecret {
                    name: db.secret_name.clone(),
                    role: db.role.clone(),
                });
            }
            let password = crate::database::generate_password();
            let secret = build_database_secret(vt, &db, &password, provisioner.target())?;
            ctx.count_write("Secret");
            match api.create(&PostParams::default(), &secret).await {
                Ok(created) => created,
                // Created by a concurrent reconcile (or a previous leader) meanwhile.
                Err(kube::Error::Api(s)) if s.is_already_exists() => {
                    api.get(&db.secret_name).await.map_err(read)?
                }
                Err(e) => {
                    return Err(TenantError::kube(
                        format!("create Secret {namespace}/{}", db.secret_name),
                        e,
                    ));
                }
            }
        }
    };
    if !is_owned_by(&secret, vt) {
        return Err(TenantError::ForeignSecret {
            name: db.secret_name.clone(),
        });
    }
    let Some(password) = password_of(&secret) else {
        return Err(TenantError::InvalidSecret {
            name: db.secret_name.clone(),
        });
    };
    let owner = Ownership::of(vt)?;
    let outcome = provisioner.ensure(&db, &owner, &password).await?;
    let version = secret.resource_version().unwrap_or_default();
    ctx.set_provisioned(&uid, provision_key(&db, &version));
    let first = vt
        .status
        .as_ref()
        .and_then(|s| s.database.as_ref())
        .is_none();
    if first || outcome.role_created || outcome.schema_created {
        ctx.event(
            vt,
            EventType::Normal,
            "DatabaseProvisioned",
            format!(
                "role {} and schema {} ready; credentials in Secret {}",
                db.role, db.schema, db.secret_name
            ),
        )
        .await;
    }
    Ok((db, version))
}

fn provision_key(db: &TenantDatabase, secret_version: &str) -> String {
    format!(
        "{}\n{}\n{}\n{secret_version}",
        db.role, db.schema, db.secret_name
    )
}
