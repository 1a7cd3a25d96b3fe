//! The workspace's layout rules, checked on the sources themselves:
//!
//! - inside each product crate, the top-level modules (`crate::x`) depend on each other
//!   without cycles, so every module has a place in a layering a newcomer can follow;
//! - the operator does not depend on the gateway (what they share lives in crates of its
//!   own, e.g. `switchboard-store`).
//!
//! Edges are read from `crate::x…` paths (in `use` trees too) and from `super::` chains
//! that climb to the crate root. Line comments are skipped (a doc link is not a
//! dependency); the scan is textual, not a parser, which is enough for these rules.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Workspace members that are not product crates.
const NOT_PRODUCT: &[&str] = &["tests", "testenv"];

/// Top-level module name → the modules it uses.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `members = [...]` of the workspace manifest.
fn members(root: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let start = manifest.find("members").expect("workspace members") + "members".len();
    let open = start + manifest[start..].find('[').unwrap();
    let close = open + manifest[open..].find(']').unwrap();
    manifest[open + 1..close]
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under `src/` (`call/task.rs` → `[call, task]`,
/// `call/mod.rs` → `[call]`, `lib.rs` → `[]`); `None` for other crate roots (`bin/`).
fn module_path(rel: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    let file = parts.pop()?;
    let stem = file.strip_suffix(".rs")?;
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return Some(Vec::new());
    }
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    Some(parts)
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first segment of each path in a `use` tree group (`{a, b::c, self}` → a, b).
fn group_heads(s: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut at_item_start = true;
    for (i, c) in s.char_indices() {
        match c {
            '{' => {
                depth += 1;
                at_item_start = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => at_item_start = true,
            c if c.is_whitespace() => {}
            _ if at_item_start && depth == 1 => {
                heads.push(ident_at(&s[i..]).to_string());
                at_item_start = false;
            }
            _ => {}
        }
    }
    heads
}

/// The top-level modules a line of `file` (at module path `here`) refers to.
fn referenced(line: &str, here: &[String]) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        // `switchboard_crate::` or `$crate::` are not this crate's root.
        let before = rest[..i].chars().last();
        let after = &rest[i + "crate::".len()..];
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            if after.starts_with('{') {
                out.extend(group_heads(after));
            } else {
                out.push(ident_at(after).to_string());
            }
        }
        rest = after;
    }
    let mut rest = code;
    while let Some(i) = rest.find("super::") {
        let before = rest[..i].chars().last();
        let mut after = &rest[i..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            rest = &after["super::".len()..];
            continue;
        }
        let mut climbs = 0;
        while let Some(r) = after.strip_prefix("super::") {
            climbs += 1;
            after = r;
        }
        if climbs >= here.len() {
            if after.starts_with('{') {
                out.extend(group_heads(after));
            } else {
                out.push(ident_at(after).to_string());
            }
        }
        rest = after;
    }
    out
}

/// The top-level module graph of the crate in `dir`.
fn graph(dir: &Path) -> Graph {
    let src = dir.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for file in files {
        if let Some(path) = module_path(file.strip_prefix(&src).unwrap()) {
            modules.insert(file, path);
        }
    }
    let tops: BTreeSet<String> = modules
        .values()
        .filter_map(|p| p.first().cloned())
        .collect();
    let mut g: Graph = tops.iter().map(|t| (t.clone(), BTreeSet::new())).collect();
    for (file, path) in &modules {
        let Some(top) = path.first() else {
            continue; // the crate root declares and re-exports; it is not a layer
        };
        let text = std::fs::read_to_string(file).unwrap();
        for line in text.lines() {
            for to in referenced(line, path) {
                if &to != top && tops.contains(&to) {
                    g.get_mut(top).unwrap().insert(to);
                }
            }
        }
    }
    g
}

/// A cycle of `g` as `[a, b, …, a]`, if there is one.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &Graph,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for next in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, g, done, stack) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut done, &mut Vec::new()))
}

#[test]
fn top_level_modules_have_no_cycles() {
    let root = workspace_root();
    let crates: Vec<String> = members(&root)
        .into_iter()
        .filter(|m| !NOT_PRODUCT.contains(&m.as_str()))
        .collect();
    for expected in ["crds", "gateway", "knowledge", "operator", "sim", "store"] {
        assert!(
            crates.iter().any(|c| c == expected),
            "{expected} missing from {crates:?}"
        );
    }
    let mut failures = Vec::new();
    for krate in &crates {
        let g = graph(&root.join(krate));
        assert!(!g.is_empty(), "{krate}: no modules found under src/");
        if let Some(c) = find_cycle(&g) {
            failures.push(format!("{krate}: {}", c.join(" -> ")));
        }
    }
    assert!(
        failures.is_empty(),
        "module cycles:\n{}",
        failures.join("\n")
    );
}

#[test]
fn operator_does_not_depend_on_gateway() {
    let manifest = std::fs::read_to_string(workspace_root().join("operator/Cargo.toml")).unwrap();
    let offending: Vec<&str> = manifest
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.strip_prefix("switchboard-gateway")
                .is_some_and(|r| r.starts_with([' ', '.', '=']))
                || l.contains("package = \"switchboard-gateway\"")
        })
        .collect();
    assert!(offending.is_empty(), "operator/Cargo.toml: {offending:?}");
}

#[test]
fn the_scanner_sees_what_it_must() {
    let here = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        referenced("use crate::{a::B, b, self};", &here(&["x"])),
        ["a", "b", "self"]
    );
    assert_eq!(
        referenced("let t = crate::clock::now();", &here(&["x"])),
        ["clock"]
    );
    assert_eq!(
        referenced("use super::super::{StoreError, y};", &here(&["q", "spool"])),
        ["StoreError", "y"]
    );
    assert!(referenced("use super::rows;", &here(&["q", "spool"])).is_empty());
    assert!(referenced("use switchboard_crate::a; // crate::b", &here(&["x"])).is_empty());
    assert_eq!(module_path(Path::new("call/mod.rs")).unwrap(), ["call"]);
    assert!(module_path(Path::new("bin/x.rs")).is_none());

    let mut g = Graph::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        g.entry(a.into()).or_default().insert(b.into());
        g.entry(b.into()).or_default();
    }
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    g.get_mut("c").unwrap().remove("a");
    assert_eq!(find_cycle(&g), None);
}
