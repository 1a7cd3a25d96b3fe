//! Stand-ins for the controllers behind the API: after a Deployment changes, its status
//! reports the rollout (all replicas ready unless a test holds them back), as a separate
//! write by `kube-controller-manager`, the way a watcher sees it in a cluster; a
//! CustomResourceDefinition becomes `Established` (names accepted) the same way.

use serde_json::{Value, json};

use super::apply::{self, Scope};
use super::meta;
use super::path::Gvr;
use super::store::{ObjKey, Store, Stored};

/// The controller's field manager.
pub(crate) const CONTROLLER: &str = "kube-controller-manager";

fn deployments() -> Gvr {
    Gvr::new("apps", "v1", "deployments")
}

/// The API server's own CRD controller's field manager.
const CRD_CONTROLLER: &str = "kube-apiserver";

/// Runs the simulated controllers after a write to `gvr`/`key`.
pub(crate) fn after_write(store: &mut Store, gvr: &Gvr, key: &ObjKey) {
    if store.simulate_workloads && *gvr == deployments() {
        reconcile_deployment(store, key);
    }
    if gvr.group == "apiextensions.k8s.io" && gvr.plural == "customresourcedefinitions" {
        establish_crd(store, gvr, key);
    }
}

/// Sets a CRD's status the way the API server does once its names are accepted.
fn establish_crd(store: &mut Store, gvr: &Gvr, key: &ObjKey) {
    let Some(stored) = store.get(gvr, key).cloned() else {
        return;
    };
    if meta::meta_str(&stored.obj, "deletionTimestamp").is_some() {
        return;
    }
    let stored_versions: Vec<Value> = stored
        .obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let status = json!({
        "acceptedNames": stored.obj.pointer("/spec/names").cloned().unwrap_or_else(|| json!({})),
        "conditions": [
            condition(&stored.obj, "NamesAccepted", "True", "NoConflicts", "no conflicts found".into()),
            condition(&stored.obj, "Established", "True", "InitialNamesAccepted", "the initial names have been accepted".into()),
        ],
        "storedVersions": stored_versions,
    });
    write_status(store, gvr, key, &stored, status, CRD_CONTROLLER);
}

/// Writes `status` as `manager` unless it is already there.
fn write_status(
    store: &mut Store,
    gvr: &Gvr,
    key: &ObjKey,
    stored: &Stored,
    status: Value,
    manager: &str,
) {
    if stored.obj.get("status") == Some(&status) {
        return;
    }
    let mut new = stored.obj.clone();
    if let Some(m) = new.as_object_mut() {
        m.insert("status".into(), status);
    }
    let mut managed = stored.managed.clone();
    apply::record_update(&mut managed, manager, &stored.obj, &new, Scope::Status);
    apply::prune(&mut managed, &new);
    store.put(gvr, key.clone(), new, managed);
    store.counters.controller_changes += 1;
}

/// Brings a Deployment's status in line with its spec and the ready override.
pub(crate) fn reconcile_deployment(store: &mut Store, key: &ObjKey) {
    let gvr = deployments();
    let Some(stored) = store.get(&gvr, key).cloned() else {
        return;
    };
    if meta::meta_str(&stored.obj, "deletionTimestamp").is_some() {
        return;
    }
    let ready_override = store.ready_overrides.get(key).copied();
    let status = desired_status(&stored.obj, ready_override);
    write_status(store, &gvr, key, &stored, status, CONTROLLER);
}

/// `maxUnavailable` of a rolling update, in pods (25% by default, rounded down).
fn max_unavailable(obj: &Value, replicas: i64) -> i64 {
    let v = obj.pointer("/spec/strategy/rollingUpdate/maxUnavailable");
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<i64>().ok())
            .map(|p| replicas.saturating_mul(p) / 100)
            .unwrap_or(0),
        _ if obj.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate") => {
            replicas
        }
        _ => replicas / 4,
    }
}

fn condition(old: &Value, kind: &str, status: &str, reason: &str, message: String) -> Value {
    let now = meta::now_rfc3339();
    let prev = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        });
    let same_status = prev.is_some_and(|c| c.get("status").and_then(Value::as_str) == Some(status));
    let same_reason = same_status
        && prev.is_some_and(|c| c.get("reason").and_then(Value::as_str) == Some(reason));
    let keep = |field: &str, same: bool| {
        prev.filter(|_| same)
            .and_then(|c| c.get(field).cloned())
            .unwrap_or_else(|| json!(now))
    };
    json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": keep("lastUpdateTime", same_reason),
        "lastTransitionTime": keep("lastTransitionTime", same_status),
    })
}

fn desired_status(obj: &Value, ready_override: Option<i32>) -> Value {
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0);
    let ready = ready_override.map_or(replicas, |r| i64::from(r).clamp(0, replicas));
    let name = meta::meta_str(obj, "name").unwrap_or_default();
    let generation = obj
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let rs = format!(
        "{name}-{:x}",
        generation.wrapping_mul(0x9e37).rem_euclid(0xfffff) + 0x10000
    );
    let available = ready >= replicas.saturating_sub(max_unavailable(obj, replicas));
    let (av_status, av_reason, av_msg) = if available {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let (pr_reason, pr_msg) = if ready >= replicas {
        (
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs}\" has successfully progressed."),
        )
    } else {
        (
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs}\" is progressing."),
        )
    };
    let mut status = json!({
        "observedGeneration": generation,
        "conditions": [
            condition(obj, "Available", av_status, av_reason, av_msg.to_owned()),
            condition(obj, "Progressing", "True", pr_reason, pr_msg),
        ],
    });
    // Zero counts are omitted, as the real controller's output has them.
    for (field, n) in [
        ("replicas", replicas),
        ("updatedReplicas", replicas),
        ("readyReplicas", ready),
        ("availableReplicas", ready),
        ("unavailableReplicas", replicas - ready),
    ] {
        if n > 0 {
            status[field] = json!(n);
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_spec_and_override() {
        let d = json!({"metadata": {"name": "gw", "generation": 2},
                       "spec": {"replicas": 3, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}}});
        let s = desired_status(&d, None);
        assert_eq!(s["readyReplicas"], 3);
        assert_eq!(s["observedGeneration"], 2);
        assert_eq!(s["conditions"][0]["status"], "True");
        let stalled = desired_status(&d, Some(1));
        assert_eq!(stalled["readyReplicas"], 1);
        assert_eq!(stalled["unavailableReplicas"], 2);
        assert_eq!(stalled["conditions"][0]["status"], "False");
        assert_eq!(stalled["conditions"][1]["reason"], "ReplicaSetUpdated");
        // Unchanged conditions keep their timestamps.
        let mut with = d.clone();
        with["status"] = s.clone();
        assert_eq!(desired_status(&with, None), s);
    }

    #[test]
    fn absurd_specs_do_not_overflow() {
        for strategy in [
            json!({"rollingUpdate": {"maxUnavailable": "100%"}}),
            json!({"rollingUpdate": {"maxUnavailable": i64::MIN}}),
        ] {
            let d = json!({"metadata": {"name": "gw", "generation": i64::MAX},
                           "spec": {"replicas": i64::MAX, "strategy": strategy}});
            let s = desired_status(&d, Some(-3));
            assert!(s.get("readyReplicas").is_none());
        }
    }
}
