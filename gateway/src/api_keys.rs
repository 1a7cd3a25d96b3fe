//! Tenants' API keys (`spec.console.apiKeys`): only SHA-256 digests are kept, and a
//! presented key is compared with every digest in constant time, so neither the values nor
//! the timing of a refusal says anything about them.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Who a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId {
    /// The tenant whose calls the key opens.
    pub tenant: String,
    /// The key's name in the manifest.
    pub name: String,
}

/// One key: who holds it and the digest of its value.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Owner.
    pub id: KeyId,
    digest: [u8; 32],
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

impl ApiKey {
    /// A key of `tenant` named `name` with the value `value` (kept as a digest only).
    pub fn new(tenant: &str, name: &str, value: &str) -> Self {
        Self {
            id: KeyId {
                tenant: tenant.to_string(),
                name: name.to_string(),
            },
            digest: digest(value),
        }
    }
}

/// Every tenant's keys.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys(Vec<ApiKey>);

impl ApiKeys {
    /// The index of `keys`.
    pub fn new(keys: Vec<ApiKey>) -> Self {
        Self(keys)
    }

    /// The owner of `presented`, if it is a key. Every digest is compared (no early exit)
    /// and each comparison takes the same time whatever the bytes.
    pub fn find(&self, presented: &str) -> Option<&KeyId> {
        self.find_key(presented).map(|k| &k.id)
    }

    /// The key `presented` is, if any (as [`Self::find`]).
    pub fn find_key(&self, presented: &str) -> Option<&ApiKey> {
        let d = digest(presented);
        let mut found = None;
        for k in &self.0 {
            if bool::from(k.digest.ct_eq(&d)) {
                found = Some(k);
            }
        }
        found
    }

    /// Whether `key` (its owner, name and value) is still one of the keys: false once its
    /// Secret was rotated or the key removed. Sessions opened with a key check this on
    /// every request.
    pub fn holds(&self, key: &ApiKey) -> bool {
        let mut held = false;
        for k in &self.0 {
            if k.id == key.id && bool::from(k.digest.ct_eq(&key.digest)) {
                held = true;
            }
        }
        held
    }

    /// Whether no tenant has a key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_owner_and_nothing_else() {
        let keys = ApiKeys::new(vec![
            ApiKey::new("a", "ops", "k-a-0123456789abcdef0123456789abcdef"),
            ApiKey::new("b", "ops", "k-b-0123456789abcdef0123456789abcdef"),
        ]);
        let id = keys.find("k-b-0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!((id.tenant.as_str(), id.name.as_str()), ("b", "ops"));
        assert!(keys.find("k-b-0123456789abcdef0123456789abcde").is_none());
        assert!(keys.find("").is_none());
        assert!(!format!("{keys:?}").contains("k-a"));
    }

    #[test]
    fn a_rotated_or_removed_key_is_no_longer_held() {
        let old = ApiKey::new("a", "ops", "k-a-0123456789abcdef0123456789abcdef");
        let keys = ApiKeys::new(vec![old.clone()]);
        assert!(keys.holds(&old));
        let rotated = ApiKeys::new(vec![ApiKey::new(
            "a",
            "ops",
            "k-a-fedcba9876543210fedcba9876543210",
        )]);
        assert!(!rotated.holds(&old));
        assert!(!ApiKeys::default().holds(&old));
        // The same value under another name or tenant is another key.
        let renamed = ApiKeys::new(vec![ApiKey::new(
            "a",
            "other",
            "k-a-0123456789abcdef0123456789abcdef",
        )]);
        assert!(!renamed.holds(&old));
    }
}
