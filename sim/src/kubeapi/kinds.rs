//! What the server knows about built-in resource types: kinds, scopes, subresources.

use super::path::Gvr;

/// Built-in (and Switchboard) resources: (group, plural, kind).
const KINDS: &[(&str, &str, &str)] = &[
    ("", "configmaps", "ConfigMap"),
    ("", "secrets", "Secret"),
    ("", "services", "Service"),
    ("", "serviceaccounts", "ServiceAccount"),
    ("", "pods", "Pod"),
    ("", "namespaces", "Namespace"),
    ("", "nodes", "Node"),
    ("", "events", "Event"),
    ("", "endpoints", "Endpoints"),
    ("", "persistentvolumeclaims", "PersistentVolumeClaim"),
    ("", "persistentvolumes", "PersistentVolume"),
    ("apps", "deployments", "Deployment"),
    ("apps", "statefulsets", "StatefulSet"),
    ("apps", "daemonsets", "DaemonSet"),
    ("apps", "replicasets", "ReplicaSet"),
    (
        "autoscaling",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
    ),
    ("policy", "poddisruptionbudgets", "PodDisruptionBudget"),
    ("networking.k8s.io", "ingresses", "Ingress"),
    ("networking.k8s.io", "networkpolicies", "NetworkPolicy"),
    ("coordination.k8s.io", "leases", "Lease"),
    ("events.k8s.io", "events", "Event"),
    ("rbac.authorization.k8s.io", "roles", "Role"),
    ("rbac.authorization.k8s.io", "rolebindings", "RoleBinding"),
    ("rbac.authorization.k8s.io", "clusterroles", "ClusterRole"),
    (
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "ClusterRoleBinding",
    ),
    (
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
    ),
    ("batch", "jobs", "Job"),
    ("batch", "cronjobs", "CronJob"),
    ("voice.switchboard.dev", "voicetenants", "VoiceTenant"),
    ("voice.switchboard.dev", "knowledgebases", "KnowledgeBase"),
];

/// Resources without a `status` subresource: writes to them keep `.status` like any field.
const NO_STATUS: &[(&str, &str)] = &[
    ("", "configmaps"),
    ("", "secrets"),
    ("", "serviceaccounts"),
    ("", "events"),
    ("", "endpoints"),
    ("events.k8s.io", "events"),
    ("coordination.k8s.io", "leases"),
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("rbac.authorization.k8s.io", "clusterroles"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"),
];

/// The kind of a known resource.
pub(crate) fn builtin_kind(gvr: &Gvr) -> Option<&'static str> {
    KINDS
        .iter()
        .find(|(g, p, _)| *g == gvr.group && *p == gvr.plural)
        .map(|(_, _, k)| *k)
}

/// A kind for a resource never seen before: `widgets` → `Widget`.
pub(crate) fn guess_kind(plural: &str) -> String {
    let singular = if let Some(stem) = plural.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = plural.strip_suffix("sses") {
        format!("{stem}ss")
    } else {
        plural.strip_suffix('s').unwrap_or(plural).to_owned()
    };
    let mut chars = singular.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Whether writes to the main resource ignore `.status` (and `/status` exists).
pub(crate) fn has_status_subresource(gvr: &Gvr) -> bool {
    !NO_STATUS
        .iter()
        .any(|(g, p)| *g == gvr.group && *p == gvr.plural)
}

/// Built-in groups: their list items carry no `apiVersion`/`kind`, as the real server
/// encodes typed lists (custom resources keep them).
pub(crate) fn is_builtin_group(group: &str) -> bool {
    !group.contains('.') || group.ends_with(".k8s.io")
}

/// Resources whose names must be DNS labels (≤ 63, no dots) rather than subdomains.
pub(crate) fn name_is_dns_label(gvr: &Gvr) -> bool {
    gvr.group.is_empty() && matches!(gvr.plural.as_str(), "services" | "namespaces")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_guesses() {
        assert_eq!(
            builtin_kind(&Gvr::new("apps", "v1", "deployments")),
            Some("Deployment")
        );
        assert_eq!(guess_kind("widgets"), "Widget");
        assert_eq!(guess_kind("policies"), "Policy");
        assert!(!has_status_subresource(&Gvr::new("", "v1", "configmaps")));
        assert!(has_status_subresource(&Gvr::new(
            "apps",
            "v1",
            "deployments"
        )));
        assert!(is_builtin_group("apps"));
        assert!(is_builtin_group(""));
        assert!(!is_builtin_group("voice.switchboard.dev"));
    }
}
