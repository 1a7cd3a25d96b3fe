//! The cluster reads a knowledge-base reconcile needs, behind a small seam: the kube
//! client in production, anything that can answer them in tests.

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};
use switchboard_crds::VoiceTenant;

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

    /// The Secret `name`, whole: the reconcile checks its labels or owner before it
    /// uses a value ([`super::reconcile`]).
    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Secret>, kube::Error>>;
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

    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Secret>, kube::Error>> {
        Box::pin(async move {
            Api::<Secret>::namespaced(self.client.clone(), namespace)
                .get_opt(name)
                .await
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

/// Why a Secret may be used by a knowledge base's sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretTrust {
    /// A reference the editor of a knowledge base or tenant chose: the Secret must carry
    /// [`crate::labels::USABLE_SECRET_LABEL`] (the rule of the VoiceTenant path,
    /// [`crate::labels::secret_usable`]).
    Labelled,
    /// The tenant's database Secret the operator created: it must be controlled by the
    /// tenant with this UID.
    OwnedBy(String),
}

/// Why a Secret was refused ([`check_secret`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretRefusal {
    /// It lacks the usable label.
    NotUsable,
    /// It is not controlled by the tenant.
    NotOwned,
}

/// Whether `secret` may be used as `trust` says.
///
/// # Errors
///
/// [`SecretRefusal`] saying which rule it breaks.
pub fn check_secret(secret: &Secret, trust: &SecretTrust) -> Result<(), SecretRefusal> {
    match trust {
        SecretTrust::Labelled => crate::labels::secret_usable(secret.metadata.labels.as_ref())
            .then_some(())
            .ok_or(SecretRefusal::NotUsable),
        SecretTrust::OwnedBy(uid) => secret
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.controller == Some(true) && &r.uid == uid)
            .then_some(())
            .ok_or(SecretRefusal::NotOwned),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;

    fn secret(labels: &[(&str, &str)], controller_uid: Option<&str>) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some("s".into());
        s.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        s.metadata.owner_references = controller_uid.map(|uid| {
            vec![OwnerReference {
                uid: uid.into(),
                controller: Some(true),
                ..OwnerReference::default()
            }]
        });
        s
    }

    #[test]
    fn labelled_references_and_owned_database_secrets_only() {
        let usable = [(crate::labels::USABLE_SECRET_LABEL, "true")];
        let labelled = SecretTrust::Labelled;
        assert_eq!(check_secret(&secret(&usable, None), &labelled), Ok(()));
        for refused in [
            secret(&[], None),
            secret(&[(crate::labels::USABLE_SECRET_LABEL, "yes")], None),
            secret(&[], Some("u1")),
        ] {
            assert_eq!(
                check_secret(&refused, &labelled),
                Err(SecretRefusal::NotUsable)
            );
        }
        let owned = SecretTrust::OwnedBy("u1".into());
        assert_eq!(check_secret(&secret(&[], Some("u1")), &owned), Ok(()));
        for refused in [secret(&usable, None), secret(&[], Some("u2"))] {
            assert_eq!(check_secret(&refused, &owned), Err(SecretRefusal::NotOwned));
        }
    }
}
