//! Child names and label values derived from tenant names: always valid, never longer
//! than 63 characters, distinct for distinct tenants.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

use std::collections::HashMap;

use switchboard_operator::labels::{
    MAX_NAME_LEN, child_name, children_selector, instance, is_label_value,
};

/// DNS-1035 label: what a Service name must be (the strictest owned kind).
fn is_dns1035_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Tenant names of every shape an API server accepts (DNS-1123 subdomains up to 253
/// characters), plus a few it would not.
fn samples() -> Vec<String> {
    let mut names = vec![
        "a".to_string(),
        "acme".into(),
        "1acme".into(),
        "9".into(),
        "a.b".into(),
        "a-b".into(),
        "support.example.com".into(),
        "support-example-com".into(),
        "x".repeat(55),
        "x".repeat(56),
        "x".repeat(63),
        "x".repeat(64),
        "y".repeat(253),
        format!("{}.{}", "a".repeat(60), "b".repeat(60)),
        "Upper_Case".into(),
        "üñí".into(),
        String::new(),
        "-.-".into(),
    ];
    for len in 1..=253 {
        let name: String = (0..len)
            .map(|i| match i % 11 {
                5 if i + 1 < len => '.',
                7 if i + 1 < len => '-',
                _ => char::from(b'a' + (i % 26) as u8),
            })
            .collect();
        names.push(name);
    }
    names
}

#[test]
fn child_names_are_dns_labels_of_at_most_63_characters() {
    for tenant in samples() {
        let name = child_name(&tenant);
        assert!(is_dns1035_label(&name), "{tenant:?} → {name:?}");
        assert!(name.ends_with("-gateway"), "{name}");
    }
}

#[test]
fn short_valid_names_are_kept_readable() {
    assert_eq!(child_name("acme"), "acme-gateway");
    assert_eq!(
        child_name("x".repeat(55).as_str()),
        format!("{}-gateway", "x".repeat(55))
    );
    assert_eq!(instance("acme"), "acme");
    assert_eq!(instance("support.example.com"), "support.example.com");
}

#[test]
fn distinct_tenants_never_share_a_child_name_or_instance() {
    let mut by_name: HashMap<String, String> = HashMap::new();
    let mut by_instance: HashMap<String, String> = HashMap::new();
    for tenant in samples() {
        if let Some(other) = by_name.insert(child_name(&tenant), tenant.clone()) {
            assert_eq!(other, tenant, "child name collision");
        }
        if let Some(other) = by_instance.insert(instance(&tenant), tenant.clone()) {
            assert_eq!(other, tenant, "instance collision");
        }
    }
    assert_ne!(child_name("a.b"), child_name("a-b"));
    assert_ne!(
        child_name("x".repeat(64).as_str()),
        child_name("x".repeat(65).as_str())
    );
}

#[test]
fn instance_labels_are_valid_label_values() {
    for tenant in samples() {
        let value = instance(&tenant);
        assert!(is_label_value(&value), "{tenant:?} → {value:?}");
        assert!(!value.is_empty(), "{tenant:?}");
    }
}

#[test]
fn label_value_rule() {
    assert!(is_label_value(""));
    assert!(is_label_value("a.b_c-d"));
    assert!(!is_label_value("-a"));
    assert!(!is_label_value("a."));
    assert!(!is_label_value("a/b"));
    assert!(!is_label_value(&"a".repeat(64)));
}

#[test]
fn children_selector_names_the_tenant_and_the_manager() {
    assert_eq!(
        children_selector("acme"),
        "app.kubernetes.io/instance=acme,app.kubernetes.io/managed-by=switchboard-operator,\
         app.kubernetes.io/name=switchboard-gateway"
    );
}
