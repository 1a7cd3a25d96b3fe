//! What every reconcile shares: the client, the configuration, the watch caches, the
//! event recorder, the metrics, and the little memory the controller keeps between
//! reconciles (what it applied, consecutive failures, what it provisioned).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::PartialObjectMeta;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource};
use switchboard_crds::{VoiceTenant, VoiceTenantStatus};

use super::decide::Live;
use crate::backoff::Failures;
use crate::database::Provisioner;
use crate::events::Events;
use crate::metrics::{Metrics, TENANT_CONTROLLER};
use crate::tenant::config::OperatorConfig;

/// The watch caches of every kind the controller writes (the tenants' is the
/// controller's own).
#[derive(Clone)]
pub(crate) struct Stores {
    pub deployments: Store<Deployment>,
    pub config_maps: Store<PartialObjectMeta<ConfigMap>>,
    pub services: Store<PartialObjectMeta<Service>>,
    pub service_accounts: Store<PartialObjectMeta<ServiceAccount>>,
    pub pdbs: Store<PartialObjectMeta<PodDisruptionBudget>>,
    pub hpas: Store<PartialObjectMeta<HorizontalPodAutoscaler>>,
    pub ingresses: Store<PartialObjectMeta<Ingress>>,
    pub network_policies: Store<PartialObjectMeta<NetworkPolicy>>,
    /// The recording tenants' upload queue claims.
    pub recordings_claims: Store<PartialObjectMeta<PersistentVolumeClaim>>,
    /// Every Secret's metadata in the watched scope: referenced Secrets are not ours and
    /// carry no label of ours.
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// One flag per watch, set once it has listed everything (its first `InitDone`).
    pub synced: Arc<Vec<Arc<AtomicBool>>>,
}

impl Stores {
    /// Waits until every cache has listed once.
    ///
    /// Polls flags set by the watch streams instead of `Store::wait_until_ready`: that
    /// wakes only the last of several concurrent waiters (its one-shot channel keeps one
    /// waker), and the controller itself waits on the tenants' store.
    pub fn ready(&self) -> futures_util::future::BoxFuture<'static, ()> {
        let synced = self.synced.clone();
        Box::pin(async move {
            while !synced.iter().all(|f| f.load(Ordering::Acquire)) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
    }
}

/// Identity of a child in the controller's memory: kind, namespace, name.
pub(crate) type ChildKey = (&'static str, String, String);

/// What every reconcile of the VoiceTenant controller shares: the client, the
/// configuration, the watch caches, Events, metrics and the controller's memory.
pub(crate) struct TenantReconciler {
    pub client: Client,
    pub config: OperatorConfig,
    pub provisioner: Option<Provisioner>,
    pub stores: Stores,
    pub metrics: Arc<Metrics>,
    events: Events,
    /// What this process last applied per child (from the apply response).
    applied: Mutex<HashMap<ChildKey, Live>>,
    /// Consecutive failed reconciles per tenant (the retry backoff).
    pub failures: Failures<ObjectRef<VoiceTenant>>,
    /// Per tenant UID: the role, schema and Secret version last ensured on the database.
    provisioned: Mutex<HashMap<String, String>>,
    /// Per tenant UID: the status this process last wrote, and the resourceVersion the
    /// write returned (the watch cache may still show the tenant before it).
    statuses: Mutex<HashMap<String, (u64, VoiceTenantStatus)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these maps cannot leave it inconsistent (single
    // inserts and removes), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TenantReconciler {
    pub fn new(
        client: Client,
        config: OperatorConfig,
        provisioner: Option<Provisioner>,
        stores: Stores,
        metrics: Arc<Metrics>,
    ) -> Self {
        let events = Events::new(
            client.clone(),
            config.identity.clone(),
            TENANT_CONTROLLER,
            Some(metrics.clone()),
        );
        Self {
            client,
            config,
            provisioner,
            stores,
            metrics,
            events,
            applied: Mutex::default(),
            failures: Failures::default(),
            provisioned: Mutex::default(),
            statuses: Mutex::default(),
        }
    }

    /// A namespaced API of kind `K`.
    pub fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Counts one write request of `kind`.
    pub fn count_write(&self, kind: &str) {
        self.metrics.write(TENANT_CONTROLLER, kind);
    }

    pub fn recorded(&self, key: &ChildKey) -> Option<Live> {
        lock(&self.applied).get(key).cloned()
    }

    pub fn record(&self, key: ChildKey, live: Live) {
        lock(&self.applied).insert(key, live);
    }

    pub fn forget(&self, key: &ChildKey) {
        lock(&self.applied).remove(key);
    }

    /// Forgets everything about a tenant's children (it is gone).
    pub fn forget_tenant(&self, namespace: &str, child_name: &str, uid: Option<&str>) {
        lock(&self.applied).retain(|(_, ns, name), _| !(ns == namespace && name == child_name));
        if let Some(uid) = uid {
            lock(&self.provisioned).remove(uid);
            lock(&self.statuses).remove(uid);
        }
    }

    /// The tenant's status as last written by this process, when that write is newer
    /// than the copy of the tenant being reconciled (a lagging watch cache).
    pub fn newer_status(&self, vt: &VoiceTenant) -> Option<VoiceTenantStatus> {
        let uid = vt.metadata.uid.as_deref()?;
        let seen: u64 = vt.metadata.resource_version.as_deref()?.parse().ok()?;
        let statuses = lock(&self.statuses);
        let (written, status) = statuses.get(uid)?;
        (*written > seen).then(|| status.clone())
    }

    /// Remembers a status written at `resource_version`.
    pub fn wrote_status(
        &self,
        uid: &str,
        resource_version: Option<&str>,
        status: VoiceTenantStatus,
    ) {
        if let Some(rv) = resource_version.and_then(|v| v.parse().ok()) {
            lock(&self.statuses).insert(uid.to_string(), (rv, status));
        }
    }

    pub fn provisioned(&self, uid: &str) -> Option<String> {
        lock(&self.provisioned).get(uid).cloned()
    }

    pub fn set_provisioned(&self, uid: &str, key: String) {
        lock(&self.provisioned).insert(uid.to_string(), key);
    }

    /// Publishes an Event about `vt`; a failure is logged (an Event is never worth failing
    /// a reconcile).
    pub async fn event(&self, vt: &VoiceTenant, type_: EventType, reason: &str, note: String) {
        self.events.publish(vt, type_, reason, note).await;
    }
}
