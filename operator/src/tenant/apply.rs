//! Server-side apply of a child, skipped when the live object already is what we would
//! apply, and pruning of optional children the tenant no longer wants.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::decide::{APPLIED_HASH_ANNOTATION, Live, body_hash, should_apply, should_prune};
use super::error::TenantError;
use super::reconciler::{ChildKey, TenantReconciler};
use crate::labels::MANAGER;

/// What applying one child did.
pub(crate) struct Applied<K> {
    /// The object as the API server returned it, when a request was sent.
    pub response: Option<K>,
    /// Whether the object existed before (in the cache or in our memory).
    pub existed: bool,
}

/// A kind the controller applies, with the watch cache that holds its live state.
pub(crate) trait Child:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// `kind`, for logs, metrics and the controller's memory.
    const KIND: &'static str;
    /// The live object's metadata, from the cache.
    fn live(ctx: &TenantReconciler, namespace: &str, name: &str) -> Option<ObjectMeta>;
}

fn cached<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<ObjectMeta>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .get(&ObjectRef::new(name).within(namespace))
        .map(|o| o.meta().clone())
}

macro_rules! child {
    ($ty:ty, $kind:literal, $store:ident) => {
        impl Child for $ty {
            const KIND: &'static str = $kind;
            fn live(ctx: &TenantReconciler, namespace: &str, name: &str) -> Option<ObjectMeta> {
                cached(&ctx.stores.$store, namespace, name)
            }
        }
    };
}

child!(
    k8s_openapi::api::apps::v1::Deployment,
    "Deployment",
    deployments
);
child!(
    k8s_openapi::api::core::v1::ConfigMap,
    "ConfigMap",
    config_maps
);
child!(k8s_openapi::api::core::v1::Service, "Service", services);
child!(
    k8s_openapi::api::core::v1::ServiceAccount,
    "ServiceAccount",
    service_accounts
);
child!(
    k8s_openapi::api::policy::v1::PodDisruptionBudget,
    "PodDisruptionBudget",
    pdbs
);
child!(
    k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler,
    "HorizontalPodAutoscaler",
    hpas
);
child!(
    k8s_openapi::api::networking::v1::Ingress,
    "Ingress",
    ingresses
);
child!(
    k8s_openapi::api::networking::v1::NetworkPolicy,
    "NetworkPolicy",
    network_policies
);
child!(
    k8s_openapi::api::core::v1::PersistentVolumeClaim,
    "PersistentVolumeClaim",
    recordings_claims
);

/// Applies `desired` (server-side apply, field manager `switchboard-operator`, forced)
/// unless the live object already carries its digest and nobody changed it since.
pub(crate) async fn apply<K: Child>(
    ctx: &TenantReconciler,
    mut desired: K,
) -> Result<Applied<K>, TenantError> {
    let namespace = desired.namespace().unwrap_or_default();
    let name = desired.name_any();
    let hash = body_hash(&desired);
    desired
        .annotations_mut()
        .insert(APPLIED_HASH_ANNOTATION.to_string(), hash.clone());

    let key: ChildKey = (K::KIND, namespace.clone(), name.clone());
    let live = K::live(ctx, &namespace, &name).map(|m| Live::of(&m));
    let recorded = ctx.recorded(&key);
    let existed = live.is_some() || recorded.is_some();
    if !should_apply(&hash, live.as_ref(), recorded.as_ref()) {
        if recorded.is_none()
            && let Some(live) = live
        {
            // Adopt what a previous operator process applied.
            ctx.record(key, live);
        }
        return Ok(Applied {
            response: None,
            existed,
        });
    }

    let api: Api<K> = ctx.api(&namespace);
    ctx.count_write(K::KIND);
    let response = api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
        .map_err(|e| TenantError::kube(format!("apply {} {namespace}/{name}", K::KIND), e))?;
    ctx.record(key, Live::of(response.meta()));
    Ok(Applied {
        response: Some(response),
        existed,
    })
}

/// Deletes the child of kind `K` named `name` when it exists and is controlled by the
/// tenant with `tenant_uid`.
pub(crate) async fn prune<K: Child>(
    ctx: &TenantReconciler,
    namespace: &str,
    name: &str,
    tenant_uid: &str,
) -> Result<bool, TenantError> {
    let key: ChildKey = (K::KIND, namespace.to_string(), name.to_string());
    let Some(live) = K::live(ctx, namespace, name) else {
        ctx.forget(&key);
        return Ok(false);
    };
    if !should_prune(&live, tenant_uid) {
        return Ok(false);
    }
    let api: Api<K> = ctx.api(namespace);
    ctx.count_write(K::KIND);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.is_not_found() => {}
        Err(e) => {
            return Err(TenantError::kube(
                format!("delete {} {namespace}/{name}", K::KIND),
                e,
            ));
        }
    }
    ctx.forget(&key);
    Ok(true)
}
