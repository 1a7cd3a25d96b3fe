//! The cluster reads a knowledge-base reconcile needs, behind a small seam: the kube
//! client in production, anything that can answer them in tests.

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};
use switchboard_crds::{SecretKeySelector, VoiceTenant};

/// Reads of the objects a knowledge base refers to, all in its namespace. `Ok(None)`:
/// the object (or the Secret's key) does not exist.
pub trait KnowledgeApi: Send + Sync {
    /// The VoiceTenant `name`.
    fn tenant<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<VoiceTenant>, kube::Error>>;

    /// The ConfigMap `name`.
    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigMap>, kube::Error>>;

    /// The value of a Secret's key, as UTF-8 with surrounding whitespace trimmed.
    fn secret_value<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a SecretKeySelector,
    ) -> BoxFuture<'a, Result<Option<String>, kube::Error>>;
}

/// [`KnowledgeApi`] over a kube [`Client`].
#[derive(Clone)]
pub struct KubeKnowledgeApi {
    client: Client,
}

impl KubeKnowledgeApi {
    /// Reads through `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl KnowledgeApi for KubeKnowledgeApi {
    fn tenant<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<VoiceTenant>, kube::Error>> {
        Box::pin(async move {
            Api::<VoiceTenant>::namespaced(self.client.clone(), namespace)
                .get_opt(name)
                .await
        })
    }

    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigMap>, kube::Error>> {
        Box::pin(async move {
            Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
                .get_opt(name)
                .await
        })
    }

    fn secret_value<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a SecretKeySelector,
    ) -> BoxFuture<'a, Result<Option<String>, kube::Error>> {
        Box::pin(async move {
            let secret = Api::<Secret>::namespaced(self.client.clone(), namespace)
                .get_opt(&selector.name)
                .await?;
            Ok(secret.and_then(|s| secret_key(&s, &selector.key)))
        })
    }
}

/// `key` of `secret` from `data` (or `stringData`, which an API server folds into
/// `data` but a hand-made object may carry), trimmed; `None` when absent or not UTF-8.
pub fn secret_key(secret: &Secret, key: &str) -> Option<String> {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return std::str::from_utf8(&bytes.0)
            .ok()
            .map(|s| s.trim().to_string());
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|s| s.trim().to_string())
}
