//! Runs every committed input of every fuzz target once: the seed corpora under
//! `fuzz/corpus/<target>/` and any crash or regression inputs under
//! `fuzz/artifacts/<target>/`. This is how CI runs the fuzz targets (the fuzzing itself is
//! `bench/fuzz.sh`, a benchmark).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use switchboard_fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn every_committed_input_passes_its_target() {
    let mut failures = Vec::new();
    for (name, target) in TARGETS {
        let seeds = files(&fuzz_dir().join("corpus").join(name));
        assert!(!seeds.is_empty(), "fuzz/corpus/{name}/ has no seed inputs");
        let artifacts = files(&fuzz_dir().join("artifacts").join(name));
        for path in seeds.iter().chain(&artifacts) {
            let data = match std::fs::read(path) {
                Ok(d) => d,
                Err(e) => panic!("{}: {e}", path.display()),
            };
            if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
                failures.push(format!("{name}: {}", path.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "inputs that fail their target (panic messages above):\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_target_has_a_cargo_fuzz_wrapper_and_back() {
    let wrappers: Vec<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    let names: Vec<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(wrappers, sorted, "fuzz/fuzz_targets/*.rs vs TARGETS");
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap_or_default();
    for name in &names {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        let wrapper = std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs")))
            .unwrap_or_default();
        assert!(
            wrapper.contains(&format!("switchboard_fuzzing::{name}")),
            "fuzz/fuzz_targets/{name}.rs does not call switchboard_fuzzing::{name}"
        );
    }
}
