//! `VoiceTenant` and `KnowledgeBase` manifests from YAML text.

use switchboard_crds::{parse_knowledge_base, parse_tenant};

/// `switchboard_crds::parse_tenant` and `parse_knowledge_base` on the input (what the
/// gateway does with `--tenant` / `--knowledge` files).
///
/// Must hold: no panic; a manifest that loads, written back as JSON (as an API server
/// returns it; JSON is YAML), loads again to the same value.
pub fn manifest(data: &[u8]) {
    let text = crate::text(data);
    if let Ok(tenant) = parse_tenant(&text) {
        let json = to_json(&tenant);
        match parse_tenant(&json) {
            Ok(again) => assert_eq!(again, tenant, "{json}"),
            Err(e) => panic!("tenant written back does not load: {e}\n{json}"),
        }
    } else if let Ok(kb) = parse_knowledge_base(&text) {
        let json = to_json(&kb);
        match parse_knowledge_base(&json) {
            Ok(again) => assert_eq!(again, kb, "{json}"),
            Err(e) => panic!("knowledge base written back does not load: {e}\n{json}"),
        }
    }
}

fn to_json(value: &impl serde::Serialize) -> String {
    match serde_json::to_string(value) {
        Ok(s) => s,
        Err(e) => panic!("a loaded manifest does not serialize: {e}"),
    }
}
