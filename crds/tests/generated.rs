//! The committed CRD YAML must be what this build generates.

#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join(switchboard_crds::CRDS_PATH);
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let generated = switchboard_crds::crd_yaml().unwrap();
    if committed != generated {
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "{} is stale (first difference at line {}). Regenerate it from the workspace root with\n\n    \
             cargo run -p switchboard-crds --bin crdgen > {}\n",
            switchboard_crds::CRDS_PATH,
            first_difference + 1,
            switchboard_crds::CRDS_PATH,
        );
    }
}
