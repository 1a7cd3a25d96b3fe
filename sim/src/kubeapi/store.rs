//! The in-memory object store: objects by resource, namespace and name; one global
//! resourceVersion counter; a bounded history of changes for watch resumption; deletion
//! with finalizers and owner-reference garbage collection.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::WriteRecord;
use super::apply::Managed;
use super::kinds;
use super::meta;
use super::path::Gvr;
use super::selector::Filter;
use super::status::ApiError;

/// (namespace, name); namespace is `""` for cluster-scoped objects.
pub(crate) type ObjKey = (String, String);

/// An object and who owns its fields.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub obj: Value,
    pub managed: Vec<Managed>,
}

/// A watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watchers see it.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub gvr: Gvr,
    pub event: EventType,
    /// The object before (for selector transitions).
    pub old: Option<Value>,
    /// The object after (the final state for deletions).
    pub new: Value,
}

/// Retained changes to replay, and a receiver for the ones after them.
pub(crate) type Replay = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>);

/// Write counters.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub writes: u64,
    pub changes: u64,
    pub controller_changes: u64,
}

/// What a delete did.
#[derive(Debug)]
pub(crate) enum Deleted {
    /// Finalizers hold the object: it now has a deletionTimestamp (`changed` if it had
    /// none before).
    Pending { obj: Value, changed: bool },
    /// The object is gone.
    Gone,
}

/// How many write records are kept.
const WRITE_LOG_LIMIT: usize = 100_000;

/// The store.
pub(crate) struct Store {
    objects: BTreeMap<Gvr, BTreeMap<ObjKey, Stored>>,
    kinds: HashMap<Gvr, String>,
    uids: HashMap<String, (Gvr, ObjKey)>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    evicted_rv: u64,
    tx: broadcast::Sender<Arc<Change>>,
    pub counters: Counters,
    pub log: VecDeque<WriteRecord>,
    /// Ready replicas forced by tests, per deployment.
    pub ready_overrides: HashMap<ObjKey, i32>,
    pub simulate_workloads: bool,
}

impl Store {
    /// An empty store.
    pub fn new(history_limit: usize, simulate_workloads: bool) -> Store {
        Store {
            objects: BTreeMap::new(),
            kinds: HashMap::new(),
            uids: HashMap::new(),
            rv: 1,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            evicted_rv: 0,
            tx: broadcast::channel(16_384).0,
            counters: Counters::default(),
            log: VecDeque::new(),
            ready_overrides: HashMap::new(),
            simulate_workloads,
        }
    }

    /// The current (latest) resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The kind of a resource: learned from objects, known, or guessed.
    pub fn kind(&self, gvr: &Gvr) -> String {
        self.kinds
            .get(gvr)
            .cloned()
            .or_else(|| kinds::builtin_kind(gvr).map(str::to_owned))
            .unwrap_or_else(|| kinds::guess_kind(&gvr.plural))
    }

    /// Remembers the kind objects of `gvr` declare.
    pub fn learn_kind(&mut self, gvr: &Gvr, kind: &str) {
        if !self.kinds.contains_key(gvr) {
            self.kinds.insert(gvr.clone(), kind.to_owned());
        }
    }

    /// An object.
    pub fn get(&self, gvr: &Gvr, key: &ObjKey) -> Option<&Stored> {
        self.objects.get(gvr)?.get(key)
    }

    /// Replaces an object's ownership table without a new version (ownership is not part
    /// of the object here).
    pub fn set_managed(&mut self, gvr: &Gvr, key: &ObjKey, managed: Vec<Managed>) {
        if let Some(s) = self.objects.get_mut(gvr).and_then(|m| m.get_mut(key)) {
            s.managed = managed;
        }
    }

    /// Objects of `gvr` selected by `filter`, ordered by namespace and name.
    pub fn list(&self, gvr: &Gvr, filter: &Filter) -> Vec<Value> {
        self.objects
            .get(gvr)
            .map(|m| {
                m.values()
                    .filter(|s| filter.matches(&s.obj))
                    .map(|s| s.obj.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Object counts by kind.
    pub fn count_by_kind(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (gvr, objs) in &self.objects {
            if !objs.is_empty() {
                *out.entry(self.kind(gvr)).or_insert(0) += objs.len();
            }
        }
        out
    }

    /// Appends a write record.
    pub fn record(&mut self, rec: WriteRecord) {
        self.counters.writes += 1;
        if rec.changed {
            self.counters.changes += 1;
        }
        if self.log.len() >= WRITE_LOG_LIMIT {
            self.log.pop_front();
        }
        self.log.push_back(rec);
    }

    /// Changes after `from` still in the history, and a receiver for later ones. Must be
    /// called with the store locked so that nothing falls between the two.
    pub fn watch_from(&self, from: u64) -> Result<Replay, ApiError> {
        if from < self.evicted_rv {
            return Err(ApiError::expired(from));
        }
        let replay = self
            .history
            .iter()
            .filter(|c| c.rv > from)
            .cloned()
            .collect();
        Ok((replay, self.tx.subscribe()))
    }

    /// A receiver for changes after now.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    fn emit(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(Arc::clone(&change));
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.evicted_rv = old.rv;
            }
        }
        // No receivers is fine: nobody watches.
        let _ = self.tx.send(change);
    }

    /// Stores `obj` as the next version of an object (new or existing) and returns it.
    pub fn put(&mut self, gvr: &Gvr, key: ObjKey, mut obj: Value, managed: Vec<Managed>) -> Value {
        self.rv += 1;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), json!(self.rv.to_string()));
        }
        if let Some(uid) = meta::meta_str(&obj, "uid") {
            self.uids.insert(uid.to_owned(), (gvr.clone(), key.clone()));
        }
        let old = self
            .objects
            .entry(gvr.clone())
            .or_default()
            .insert(
                key,
                Stored {
                    obj: obj.clone(),
                    managed,
                },
            )
            .map(|s| s.obj);
        self.emit(Change {
            rv: self.rv,
            gvr: gvr.clone(),
            event: if old.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            },
            old,
            new: obj.clone(),
        });
        obj
    }

    /// Removes an object now; with `collect`, its dependents are garbage-collected.
    /// `last` is its final state (e.g. with the last finalizer gone).
    pub fn remove(&mut self, gvr: &Gvr, key: &ObjKey, mut last: Value, collect: bool) -> Value {
        let Some(old) = self.objects.get_mut(gvr).and_then(|m| m.remove(key)) else {
            return last;
        };
        self.rv += 1;
        if let Some(m) = last.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), json!(self.rv.to_string()));
        }
        let uid = meta::meta_str(&old.obj, "uid").map(str::to_owned);
        if let Some(uid) = &uid {
            self.uids.remove(uid);
        }
        if gvr.group == "apps" && gvr.plural == "deployments" {
            self.ready_overrides.remove(key);
        }
        self.emit(Change {
            rv: self.rv,
            gvr: gvr.clone(),
            event: EventType::Deleted,
            old: Some(old.obj),
            new: last.clone(),
        });
        if collect && let Some(uid) = uid {
            self.collect_dependents(&uid);
        }
        last
    }

    /// Deletes an object the way DELETE does: finalizers hold it with a deletionTimestamp
    /// (and a generation bump, as the real server does), otherwise it is removed.
    pub fn delete(&mut self, gvr: &Gvr, key: &ObjKey, collect: bool) -> Option<Deleted> {
        let stored = self.get(gvr, key)?.clone();
        if meta::finalizers(&stored.obj).is_empty() {
            self.remove(gvr, key, stored.obj, collect);
            return Some(Deleted::Gone);
        }
        if meta::meta_str(&stored.obj, "deletionTimestamp").is_some() {
            return Some(Deleted::Pending {
                obj: stored.obj,
                changed: false,
            });
        }
        let mut obj = stored.obj;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("deletionTimestamp".into(), json!(meta::now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            let generation = m.get("generation").and_then(Value::as_i64).unwrap_or(0);
            m.insert("generation".into(), json!(generation + 1));
        }
        let obj = self.put(gvr, key.clone(), obj, stored.managed);
        Some(Deleted::Pending { obj, changed: true })
    }

    /// Background garbage collection: objects all of whose owners are gone and one of
    /// which was `owner_uid` are deleted (recursively, honouring their finalizers).
    fn collect_dependents(&mut self, owner_uid: &str) {
        let mut doomed = Vec::new();
        for (gvr, objs) in &self.objects {
            for (key, s) in objs {
                let Some(refs) = s
                    .obj
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                else {
                    continue;
                };
                let uids: Vec<&str> = refs
                    .iter()
                    .filter_map(|r| r.get("uid").and_then(Value::as_str))
                    .collect();
                if uids.contains(&owner_uid) && uids.iter().all(|u| !self.uids.contains_key(*u)) {
                    doomed.push((gvr.clone(), key.clone()));
                }
            }
        }
        for (gvr, key) in doomed {
            let _ = self.delete(&gvr, &key, true);
        }
    }
}
