//! Server-side apply: which manager owns which field, conflicts, and the merge.
//!
//! Ownership is kept per (manager, operation, subresource) as a set of leaf paths, in a
//! side table rather than `metadata.managedFields`. A leaf is a scalar, a list or an empty
//! map: lists are atomic (replaced as a whole, never merged by key), which is what the
//! real server does for lists without a merge key and a simplification for keyed lists
//! such as `containers` (two managers sharing one list conflict here).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A path to a leaf field, one map key per element.
pub(crate) type FieldPath = Vec<String>;

/// The fields one manager owns through one kind of operation on one subresource.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Managed {
    pub manager: String,
    /// Server-side apply (`true`) or an update (create, put, non-apply patch).
    pub apply: bool,
    /// Through the `status` subresource.
    pub status: bool,
    pub fields: BTreeSet<FieldPath>,
}

/// Which part of the object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The main resource; `status_separate` when `.status` belongs to the subresource.
    Main { status_separate: bool },
    /// The `status` subresource.
    Status,
}

impl Scope {
    fn is_status(self) -> bool {
        self == Scope::Status
    }
}

/// Leaf paths of the fields of `obj` that a write in `scope` can own.
pub(crate) fn field_set(obj: &Value, scope: Scope) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    match scope {
        Scope::Status => {
            if let Some(s) = map.get("status") {
                leaves(s, vec!["status".into()], &mut out);
            }
        }
        Scope::Main { status_separate } => {
            for (k, v) in map {
                match k.as_str() {
                    "apiVersion" | "kind" => {}
                    "status" if status_separate => {}
                    "metadata" => {
                        for key in ["labels", "annotations"] {
                            if let Some(m) = v.get(key) {
                                leaves(m, vec!["metadata".into(), key.into()], &mut out);
                            }
                        }
                        for key in ["finalizers", "ownerReferences"] {
                            if v.get(key).is_some() {
                                out.insert(vec!["metadata".into(), key.into()]);
                            }
                        }
                    }
                    _ => leaves(v, vec![k.clone()], &mut out),
                }
            }
        }
    }
    out
}

fn leaves(v: &Value, prefix: FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let mut p = prefix.clone();
                p.push(k.clone());
                leaves(child, p, out);
            }
        }
        _ => {
            out.insert(prefix);
        }
    }
}

/// The value at `path`.
pub(crate) fn get<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.as_object()?.get(k))
}

/// Removes the field at `path`, then any map it leaves empty (never `metadata`).
fn remove(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = &mut *v;
    for k in parents {
        match cur.as_object_mut().and_then(|m| m.get_mut(k)) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
        let now_empty = m.is_empty();
        if now_empty && !parents.is_empty() && parents != ["metadata"] {
            remove(v, parents);
        }
    }
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn dotted(path: &[String]) -> String {
    format!(".{}", path.join("."))
}

/// `null` in an applied configuration means "not specified".
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The part of an applied configuration a write in `scope` merges into the object.
fn restricted(applied: &Value, scope: Scope) -> Value {
    let mut out = Map::new();
    let Some(map) = applied.as_object() else {
        return Value::Object(out);
    };
    for (k, v) in map {
        match (k.as_str(), scope) {
            ("status", Scope::Status) => {
                out.insert(k.clone(), v.clone());
            }
            (_, Scope::Status) | ("apiVersion" | "kind", _) => {}
            (
                "status",
                Scope::Main {
                    status_separate: true,
                },
            ) => {}
            ("metadata", _) => {
                let mut meta = Map::new();
                for key in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(x) = v.get(key) {
                        meta.insert(key.into(), x.clone());
                    }
                }
                out.insert(k.clone(), Value::Object(meta));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

fn deep_merge(target: &mut Value, src: &Value) {
    match (target, src) {
        (Value::Object(t), Value::Object(s)) => {
            for (k, v) in s {
                match t.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => deep_merge(slot, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, s) => *t = s.clone(),
    }
}

/// The object and ownership after an apply.
#[derive(Debug)]
pub(crate) struct Applied {
    pub object: Value,
    pub managed: Vec<Managed>,
}

/// Applies `config` for `manager` onto `current`. Fails with (manager, field) conflicts
/// when another manager owns a field `config` sets to a different value, unless `force`,
/// which takes those fields over.
pub(crate) fn apply(
    current: &Value,
    managed: &[Managed],
    manager: &str,
    config: &Value,
    scope: Scope,
    force: bool,
) -> Result<Applied, Vec<(String, String)>> {
    let config = strip_nulls(config);
    let wanted = field_set(&config, scope);
    let mut managed = managed.to_vec();
    let mut conflicts = Vec::new();
    for entry in managed.iter_mut().filter(|e| e.manager != manager) {
        let mut lost = Vec::new();
        for owned in &entry.fields {
            for path in wanted.iter().filter(|w| overlaps(w, owned)) {
                let longer = if owned.len() >= path.len() {
                    owned
                } else {
                    path
                };
                if get(current, longer) != get(&config, longer) {
                    if force {
                        lost.push(owned.clone());
                    } else {
                        conflicts.push((entry.manager.clone(), dotted(longer)));
                    }
                    break;
                }
            }
        }
        for p in lost {
            entry.fields.remove(&p);
        }
    }
    if !conflicts.is_empty() {
        conflicts.sort();
        conflicts.dedup();
        return Err(conflicts);
    }
    let status = scope.is_status();
    let mine = managed
        .iter()
        .position(|e| e.manager == manager && e.apply && e.status == status);
    let before = mine.map(|i| managed[i].fields.clone()).unwrap_or_default();
    let mut object = current.clone();
    for dropped in before.difference(&wanted) {
        let shared = managed
            .iter()
            .enumerate()
            .any(|(i, e)| Some(i) != mine && e.fields.iter().any(|o| overlaps(o, dropped)));
        if !shared {
            remove(&mut object, dropped);
        }
    }
    deep_merge(&mut object, &restricted(&config, scope));
    match mine {
        Some(i) => managed[i].fields = wanted,
        None => managed.push(Managed {
            manager: manager.to_owned(),
            apply: true,
            status,
            fields: wanted,
        }),
    }
    Ok(Applied { object, managed })
}

/// Records an update (create, put, non-apply patch) by `manager`: it takes over every
/// field whose value it changed.
pub(crate) fn record_update(
    managed: &mut Vec<Managed>,
    manager: &str,
    old: &Value,
    new: &Value,
    scope: Scope,
) {
    let changed: BTreeSet<FieldPath> = field_set(new, scope)
        .into_iter()
        .filter(|p| get(old, p) != get(new, p))
        .collect();
    if changed.is_empty() {
        return;
    }
    let status = scope.is_status();
    for e in managed.iter_mut() {
        if !(e.manager == manager && !e.apply && e.status == status) {
            e.fields.retain(|p| !changed.contains(p));
        }
    }
    match managed
        .iter_mut()
        .find(|e| e.manager == manager && !e.apply && e.status == status)
    {
        Some(e) => e.fields.extend(changed),
        None => managed.push(Managed {
            manager: manager.to_owned(),
            apply: false,
            status,
            fields: changed,
        }),
    }
}

/// Forgets ownership of fields that no longer exist, and managers left with nothing.
pub(crate) fn prune(managed: &mut Vec<Managed>, obj: &Value) {
    for e in managed.iter_mut() {
        e.fields.retain(|p| get(obj, p).is_some());
    }
    managed.retain(|e| !e.fields.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAIN: Scope = Scope::Main {
        status_separate: true,
    };

    #[test]
    fn reapply_drops_fields_no_longer_sent() {
        let base = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        let cfg1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v", "gone": "soon"}});
        let a = apply(&base, &[], "op", &cfg1, MAIN, false).unwrap();
        assert_eq!(a.object["data"]["gone"], "soon");
        let cfg2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
        let b = apply(&a.object, &a.managed, "op", &cfg2, MAIN, false).unwrap();
        assert_eq!(b.object["data"], json!({"k": "v"}));
        assert!(b.object["metadata"].get("labels").is_none());
        assert_eq!(b.object["metadata"]["name"], "a");
    }

    #[test]
    fn other_managers_conflict_unless_forced() {
        let base = json!({"metadata": {"name": "a"}});
        let a = apply(
            &base,
            &[],
            "one",
            &json!({"spec": {"x": 1, "y": 2}}),
            MAIN,
            false,
        )
        .unwrap();
        // Same value: shared ownership, no conflict.
        let b = apply(
            &a.object,
            &a.managed,
            "two",
            &json!({"spec": {"x": 1}}),
            MAIN,
            false,
        )
        .unwrap();
        let err = apply(
            &b.object,
            &b.managed,
            "two",
            &json!({"spec": {"y": 3}}),
            MAIN,
            false,
        )
        .unwrap_err();
        assert_eq!(err, vec![("one".to_string(), ".spec.y".to_string())]);
        let c = apply(
            &b.object,
            &b.managed,
            "two",
            &json!({"spec": {"y": 3}}),
            MAIN,
            true,
        )
        .unwrap();
        assert_eq!(c.object["spec"], json!({"x": 1, "y": 3}));
        // "one" no longer owns y; dropping x from "two" keeps it (still owned by "one").
        let d = apply(
            &c.object,
            &c.managed,
            "one",
            &json!({"spec": {"x": 1}}),
            MAIN,
            false,
        )
        .unwrap();
        assert_eq!(d.object["spec"], json!({"x": 1, "y": 3}));
    }

    #[test]
    fn updates_take_ownership() {
        let base = json!({"metadata": {"name": "a"}});
        let a = apply(&base, &[], "op", &json!({"spec": {"x": 1}}), MAIN, false).unwrap();
        let mut managed = a.managed.clone();
        let mut edited = a.object.clone();
        edited["spec"]["x"] = json!(5);
        record_update(&mut managed, "kubectl", &a.object, &edited, MAIN);
        prune(&mut managed, &edited);
        assert_eq!(managed.len(), 1);
        assert_eq!(managed[0].manager, "kubectl");
        // The applier re-asserting its value now conflicts with kubectl.
        assert!(
            apply(
                &edited,
                &managed,
                "op",
                &json!({"spec": {"x": 1}}),
                MAIN,
                false
            )
            .is_err()
        );
    }

    #[test]
    fn status_scope_is_separate() {
        let obj = json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"ready": true}});
        let s = field_set(&obj, Scope::Status);
        assert_eq!(s.len(), 1);
        let m = field_set(&obj, MAIN);
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            vec![vec!["spec".to_string(), "x".to_string()]]
        );
    }
}
