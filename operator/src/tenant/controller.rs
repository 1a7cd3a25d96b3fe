//! Wiring of the VoiceTenant controller onto the kube runtime: watches, caches and
//! triggers. [`crate::run::run_controllers`] starts it beside the KnowledgeBase
//! controller.
//!
//! # Watches
//!
//! - VoiceTenants (all, or one namespace);
//! - every owned kind (Deployment, ConfigMap, Service, ServiceAccount, PDB, HPA,
//!   Ingress, NetworkPolicy, PersistentVolumeClaim) by the operator's `managed-by` label, so memory grows with the tenants, not
//!   with the cluster. Deployments are cached whole (their status is the tenant's
//!   readiness, managed fields stripped), the others as metadata only;
//! - Secrets, metadata only, all of them: a tenant's referenced Secrets are the user's
//!   and carry no label of ours. A Secret event reconciles the tenants that reference it
//!   (a rotated secret rolls the pods) or own it (the database Secret).
//!
//! Each watch feeds both the controller's triggers and a cache (`Stores`) that the
//! reconcile compares with, which is what makes an idle reconcile free.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use switchboard_crds::VoiceTenant;

use super::reconcile::{error_policy, reconcile};
use super::reconciler::{Stores, TenantReconciler};
use crate::database::Provisioner;
use crate::labels::{MANAGED_BY_LABEL, MANAGER};
use crate::metrics::{Health, Metrics};
use crate::tenant::config::OperatorConfig;

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A metadata-only watch of `K`, cached in a store and yielding touched objects.
fn metadata_watch<K>(
    api: Api<PartialObjectMeta<K>>,
    config: watcher::Config,
    synced: &Arc<AtomicBool>,
) -> (
    Store<PartialObjectMeta<K>>,
    impl Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(|o: &mut PartialObjectMeta<K>| o.managed_fields_mut().clear())
        .reflect(writer)
        .inspect(mark_synced(synced))
        .touched_objects();
    (store, stream)
}

/// Sets `flag` once the watch has listed everything (after the reflector stored it).
fn mark_synced<K>(
    flag: &Arc<AtomicBool>,
) -> impl FnMut(&Result<watcher::Event<K>, watcher::Error>) + Send + 'static {
    let flag = flag.clone();
    move |event| {
        if let Ok(watcher::Event::InitDone) = event {
            flag.store(true, Ordering::Release);
        }
    }
}

/// The tenants in `secret`'s namespace that reference it or own it.
fn tenants_of_secret(
    tenants: &Store<VoiceTenant>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<VoiceTenant>> {
    let namespace = secret.namespace().unwrap_or_default();
    let name = secret.name_any();
    let owners: Vec<&str> = secret
        .owner_references()
        .iter()
        .filter(|o| o.kind == "VoiceTenant")
        .map(|o| o.uid.as_str())
        .collect();
    tenants
        .state()
        .into_iter()
        .filter(|vt| vt.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|vt| {
            let uid = vt.uid().unwrap_or_default();
            owners.contains(&uid.as_str()) || references_secret(vt, &name)
        })
        .map(|vt| ObjectRef::from_obj(&*vt))
        .collect()
}

/// Whether any `secretKeyRef` of the tenant names `secret`.
fn references_secret(vt: &VoiceTenant, secret: &str) -> bool {
    let spec = &vt.spec;
    [
        Some(&spec.twilio.auth_token),
        Some(&spec.openai.api_key),
        spec.database.as_ref().and_then(|d| d.url.as_ref()),
    ]
    .into_iter()
    .flatten()
    .filter_map(|r| r.secret_key_ref.as_ref())
    .any(|s| s.name == secret)
}

/// Runs the VoiceTenant controller until `shutdown` resolves (then finishes the
/// reconciles in flight). `health` reports whether its watch caches have synced.
pub(crate) async fn run(
    client: Client,
    config: OperatorConfig,
    provisioner: Option<Provisioner>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = config.watch_namespace.as_deref();
    let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));

    let synced: Vec<Arc<AtomicBool>> = (0..11).map(|_| Arc::default()).collect();
    let (tenants, tenant_writer) = reflector::store();
    let tenant_stream = watcher(api::<VoiceTenant>(&client, ns), watcher::Config::default())
        .default_backoff()
        .modify(|vt: &mut VoiceTenant| vt.managed_fields_mut().clear())
        .reflect(tenant_writer)
        .inspect(mark_synced(&synced[0]))
        .applied_objects();
    let (deployments, deployment_writer) = reflector::store();
    let deployment_stream = watcher(api::<Deployment>(&client, ns), owned.clone())
        .default_backoff()
        .modify(|d: &mut Deployment| d.managed_fields_mut().clear())
        .reflect(deployment_writer)
        .inspect(mark_synced(&synced[1]))
        .touched_objects();
    let (config_maps, cm_stream) = metadata_watch(
        api::<PartialObjectMeta<ConfigMap>>(&client, ns),
        owned.clone(),
        &synced[2],
    );
    let (services, svc_stream) = metadata_watch(
        api::<PartialObjectMeta<Service>>(&client, ns),
        owned.clone(),
        &synced[3],
    );
    let (service_accounts, sa_stream) = metadata_watch(
        api::<PartialObjectMeta<ServiceAccount>>(&client, ns),
        owned.clone(),
        &synced[4],
    );
    let (pdbs, pdb_stream) = metadata_watch(
        api::<PartialObjectMeta<PodDisruptionBudget>>(&client, ns),
        owned.clone(),
        &synced[5],
    );
    let (hpas, hpa_stream) = metadata_watch(
        api::<PartialObjectMeta<HorizontalPodAutoscaler>>(&client, ns),
        owned.clone(),
        &synced[6],
    );
    let (ingresses, ing_stream) = metadata_watch(
        api::<PartialObjectMeta<Ingress>>(&client, ns),
        owned.clone(),
        &synced[7],
    );
    let (network_policies, netpol_stream) = metadata_watch(
        api::<PartialObjectMeta<NetworkPolicy>>(&client, ns),
        owned.clone(),
        &synced[9],
    );
    let (recordings_claims, pvc_stream) = metadata_watch(
        api::<PartialObjectMeta<PersistentVolumeClaim>>(&client, ns),
        owned,
        &synced[10],
    );
    let (secrets, secret_stream) = metadata_watch(
        api::<PartialObjectMeta<Secret>>(&client, ns),
        watcher::Config::default(),
        &synced[8],
    );

    // The tenants' watch is ours too (not `Controller::new`'s), to know when it synced.
    let controller = Controller::for_stream(tenant_stream, tenants.clone());
    let mapper_tenants = tenants.clone();
    let controller = controller
        .owns_stream(deployment_stream)
        .owns_stream(cm_stream)
        .owns_stream(svc_stream)
        .owns_stream(sa_stream)
        .owns_stream(pdb_stream)
        .owns_stream(hpa_stream)
        .owns_stream(ing_stream)
        .owns_stream(netpol_stream)
        .owns_stream(pvc_stream)
        .watches_stream(secret_stream, move |secret| {
            tenants_of_secret(&mapper_tenants, &secret)
        })
        // A knowledge base the agent lists changed: its manifest in the ConfigMap too.
        .watches(
            api::<switchboard_crds::KnowledgeBase>(&client, ns),
            watcher::Config::default().any_semantic(),
            {
                let tenants = tenants.clone();
                move |kb: switchboard_crds::KnowledgeBase| {
                    let namespace = kb.namespace();
                    let name = kb.name_any();
                    tenants
                        .state()
                        .into_iter()
                        .filter(|vt| {
                            vt.namespace() == namespace
                                && vt.spec.agent.knowledge_bases.contains(&name)
                        })
                        .map(|vt| ObjectRef::from_obj(&*vt))
                        .collect::<Vec<_>>()
                }
            },
        )
        .with_config(ControllerConfig::default().concurrency(config.concurrency))
        .graceful_shutdown_on(shutdown);

    let stores = Stores {
        deployments,
        config_maps,
        services,
        service_accounts,
        pdbs,
        hpas,
        ingresses,
        network_policies,
        recordings_claims,
        secrets,
        synced: Arc::new(synced),
    };
    let synced = {
        let (stores, health) = (stores.clone(), health.clone());
        tokio::spawn(async move {
            stores.ready().await;
            health.set_synced(true);
            tracing::info!("watch caches synced");
        })
    };
    let ctx = Arc::new(TenantReconciler::new(
        client,
        config,
        provisioner,
        stores,
        metrics,
    ));
    tracing::info!("VoiceTenant controller started");
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((tenant, _)) => tracing::debug!(%tenant, "reconciled"),
                Err(kube::runtime::controller::Error::ReconcilerFailed(_, _)) => {
                    // Logged by the error policy with its category and retry delay.
                }
                Err(e) => tracing::warn!(error = %e, "controller"),
            }
        })
        .await;
    synced.abort();
    health.set_synced(false);
    tracing::info!("VoiceTenant controller stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(ns: &str, name: &str, uid: &str, secret: &str) -> VoiceTenant {
        let yaml = format!(
            r#"
apiVersion: voice.switchboard.dev/v1alpha1
kind: VoiceTenant
metadata: {{ name: {name}, namespace: {ns}, uid: {uid} }}
spec:
  displayName: Demo
  phoneNumbers: ["+15005550006"]
  twilio:
    accountSid: ACe5b9b91d74144c1eab5502f239bd8ed9
    authToken: {{ secretKeyRef: {{ name: {secret}, key: twilio }} }}
  openai:
    apiKey: {{ secretKeyRef: {{ name: shared, key: openai }} }}
"#
        );
        switchboard_crds::parse_tenant(&yaml).unwrap()
    }

    fn secret(ns: &str, name: &str, owner_uid: Option<&str>) -> PartialObjectMeta<Secret> {
        let mut meta = kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        };
        if let Some(uid) = owner_uid {
            meta.owner_references = Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    kind: "VoiceTenant".into(),
                    uid: uid.into(),
                    ..Default::default()
                },
            ]);
        }
        PartialObjectMeta {
            types: None,
            metadata: meta,
            _phantom: Default::default(),
        }
    }

    #[test]
    fn a_secret_maps_to_the_tenants_that_read_or_own_it() {
        let (store, mut writer) = reflector::store::<VoiceTenant>();
        for vt in [
            tenant("a", "one", "u1", "s1"),
            tenant("a", "two", "u2", "s2"),
            tenant("b", "three", "u3", "s1"),
        ] {
            writer.apply_watcher_event(&watcher::Event::Apply(vt));
        }
        let names = |refs: Vec<ObjectRef<VoiceTenant>>| {
            let mut n: Vec<String> = refs.into_iter().map(|r| r.name).collect();
            n.sort();
            n
        };
        assert_eq!(
            names(tenants_of_secret(&store, &secret("a", "s1", None))),
            ["one"]
        );
        assert_eq!(
            names(tenants_of_secret(&store, &secret("a", "shared", None))),
            ["one", "two"]
        );
        assert_eq!(
            names(tenants_of_secret(&store, &secret("b", "shared", None))),
            ["three"]
        );
        assert!(tenants_of_secret(&store, &secret("a", "other", None)).is_empty());
        assert_eq!(
            names(tenants_of_secret(
                &store,
                &secret("a", "two-database", Some("u2"))
            )),
            ["two"]
        );
    }
}
