//! Shared test helpers: tenant fixtures and serde round trips.

#![allow(dead_code)] // each test binary uses a different subset
#![allow(clippy::unwrap_used)] // test helpers

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use switchboard_crds::VoiceTenant;
use switchboard_operator::BuildInputs;

/// A tenant as an API server returns it, with the context the controller would build.
#[derive(Debug, serde::Deserialize)]
pub struct Fixture {
    pub ctx: BuildInputs,
    pub tenant: VoiceTenant,
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Loads `tests/fixtures/<name>.yaml`.
pub fn load(name: &str) -> Fixture {
    let path = fixtures_dir().join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Names of every fixture, sorted.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Serializes `obj` to YAML, parses it back into its own type and checks nothing was
/// lost; returns the YAML.
pub fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(obj: &T) -> String {
    let yaml = serde_saphyr::to_string(obj).unwrap();
    let back: T = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(&back, obj, "YAML round trip changed the object:\n{yaml}");
    let json = serde_json::to_value(obj).unwrap();
    let back: T = serde_json::from_value(json).unwrap();
    assert_eq!(&back, obj, "JSON round trip changed the object");
    yaml
}

/// A `Time` from RFC 3339 text.
pub fn time(text: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    serde_json::from_value(serde_json::Value::String(text.to_string())).unwrap()
}
