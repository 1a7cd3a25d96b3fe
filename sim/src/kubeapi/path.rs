//! Request paths: which resource, namespace, object and subresource a URL names.

/// A resource type as the URL names it (group, version, plural).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Gvr {
    pub group: String,
    pub version: String,
    pub plural: String,
}

impl Gvr {
    /// Builds a resource type from its parts.
    pub fn new(group: &str, version: &str, plural: &str) -> Gvr {
        Gvr {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: plural.to_owned(),
        }
    }

    /// `v1` or `group/version`, as objects spell `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural` or `plural.group`, as the API server names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// What a request URL points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub gvr: Gvr,
    /// `None` for cluster-scoped objects and all-namespaces collections.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    /// The namespace objects are stored under (`""` for cluster-scoped).
    pub fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }
}

/// Parses `/api/v1/...` and `/apis/{group}/{version}/...`; `None` when the path names no
/// resource.
pub(crate) fn parse(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    if rest.iter().any(|s| s.is_empty()) || rest.is_empty() {
        return None;
    }
    // `/api/v1/namespaces/{ns}/status` is the namespace's own subresource, not a
    // resource called `status` inside it.
    let namespaced = rest[0] == "namespaces"
        && rest.len() >= 3
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"));
    let (namespace, rest) = if namespaced {
        (Some(rest[1].to_owned()), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.len() > 3 {
        return None;
    }
    Some(Target {
        gvr: Gvr::new(group, version, rest[0]),
        namespace,
        name: rest.get(1).map(|s| (*s).to_owned()),
        subresource: rest.get(2).map(|s| (*s).to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_and_group_paths() {
        let t = parse("/api/v1/namespaces/ns/configmaps/cm").unwrap();
        assert_eq!(t.gvr, Gvr::new("", "v1", "configmaps"));
        assert_eq!(t.namespace.as_deref(), Some("ns"));
        assert_eq!(t.name.as_deref(), Some("cm"));
        let t = parse("/apis/apps/v1/namespaces/ns/deployments/d/status").unwrap();
        assert_eq!(t.gvr.api_version(), "apps/v1");
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = parse("/apis/apps/v1/deployments").unwrap();
        assert_eq!(t.namespace, None);
        assert_eq!(t.name, None);
    }

    #[test]
    fn namespaces_themselves() {
        let t = parse("/api/v1/namespaces/ns").unwrap();
        assert_eq!(t.gvr.plural, "namespaces");
        assert_eq!(t.name.as_deref(), Some("ns"));
        let t = parse("/api/v1/namespaces/ns/status").unwrap();
        assert_eq!(t.gvr.plural, "namespaces");
        assert_eq!(t.subresource.as_deref(), Some("status"));
        assert!(parse("/api/v1/namespaces/ns/pods/p/log/extra").is_none());
        assert!(parse("/version").is_none());
    }
}
