//! Defaulting the real API server does on every write, for the kinds the operator owns,
//! so that code comparing live objects with desired ones meets the same extra fields it
//! would meet in a cluster: Service (type, clusterIP, protocols, target ports) and
//! Deployment (replicas, strategy, history and pod template defaults), Secret (`type`,
//! `stringData` folded into `data`). Other kinds are stored as sent.

use serde_json::{Map, Value, json};

use super::path::Gvr;

/// Fills defaults into `obj` of resource `gvr`.
pub(crate) fn apply(gvr: &Gvr, obj: &mut Value) {
    match (gvr.group.as_str(), gvr.plural.as_str()) {
        ("", "services") => service(obj),
        ("apps", "deployments") => deployment(obj),
        ("", "secrets") => secret(obj),
        _ => {}
    }
}

fn set_default(m: &mut Map<String, Value>, key: &str, v: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.into(), v);
    }
}

fn object_at<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let m = v.as_object_mut()?;
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.into(), Value::Object(Map::new()));
    }
    m.get_mut(key)?.as_object_mut()
}

fn service(obj: &mut Value) {
    let ident = format!(
        "{}/{}",
        obj.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    );
    let Some(spec) = object_at(obj, "spec") else {
        return;
    };
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    if spec.get("type").and_then(Value::as_str) != Some("ExternalName") {
        // A stable address per service, so re-writes do not "change" it.
        let h = ident.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let ip = format!("10.96.{}.{}", (h >> 8) % 256, 2 + h % 250);
        set_default(spec, "clusterIP", json!(ip));
        let ip = spec.get("clusterIP").cloned().unwrap_or(Value::Null);
        set_default(spec, "clusterIPs", json!([ip]));
        set_default(spec, "ipFamilies", json!(["IPv4"]));
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                set_default(p, "targetPort", port);
            }
        }
    }
}

/// `stringData` is write-only: the server folds it into `data` (base64), over `data`.
fn secret(obj: &mut Value) {
    use base64::Engine as _;
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    set_default(m, "type", json!("Opaque"));
    let Some(Value::Object(strings)) = m.remove("stringData") else {
        return;
    };
    let Some(data) = object_at(obj, "data") else {
        return;
    };
    for (k, v) in strings {
        let text = match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        data.insert(
            k,
            json!(base64::engine::general_purpose::STANDARD.encode(text)),
        );
    }
}

fn deployment(obj: &mut Value) {
    let Some(spec) = object_at(obj, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    set_default(spec, "strategy", json!({"type": "RollingUpdate"}));
    if let Some(strategy) = spec.get_mut("strategy").and_then(Value::as_object_mut)
        && strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
    {
        let ru = strategy
            .entry("rollingUpdate")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(ru) = ru.as_object_mut() {
            set_default(ru, "maxUnavailable", json!("25%"));
            set_default(ru, "maxSurge", json!("25%"));
        }
    }
    let Some(pod) = spec
        .get_mut("template")
        .and_then(|t| t.get_mut("spec"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    set_default(pod, "restartPolicy", json!("Always"));
    set_default(pod, "terminationGracePeriodSeconds", json!(30));
    set_default(pod, "dnsPolicy", json!("ClusterFirst"));
    set_default(pod, "securityContext", json!({}));
    set_default(pod, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        let Some(containers) = pod.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "resources", json!({}));
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            let tag = image
                .rsplit('/')
                .next()
                .and_then(|last| last.split_once(':'))
                .map(|(_, t)| t);
            let policy = if image.contains('@') || tag.is_some_and(|t| t != "latest") {
                "IfNotPresent"
            } else {
                "Always"
            };
            set_default(c, "imagePullPolicy", json!(policy));
            if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    set_default(p, "protocol", json!("TCP"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_defaults_are_stable() {
        let gvr = Gvr::new("", "v1", "services");
        let mut a =
            json!({"metadata": {"name": "s", "namespace": "n"}, "spec": {"ports": [{"port": 80}]}});
        apply(&gvr, &mut a);
        let mut b = a.clone();
        apply(&gvr, &mut b);
        assert_eq!(a, b);
        assert_eq!(a["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(a["spec"]["type"], "ClusterIP");
    }

    #[test]
    fn secret_string_data_folds_into_data() {
        let gvr = Gvr::new("", "v1", "secrets");
        let mut s = json!({"stringData": {"password": "hunter2"}, "data": {"user": "YWRh"}});
        apply(&gvr, &mut s);
        assert_eq!(
            s,
            json!({"type": "Opaque", "data": {"user": "YWRh", "password": "aHVudGVyMg=="}})
        );
    }

    #[test]
    fn deployment_defaults() {
        let gvr = Gvr::new("apps", "v1", "deployments");
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "gw:1.2"}]}}}});
        apply(&gvr, &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(
            d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            "25%"
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }
}
