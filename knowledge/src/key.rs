//! An API key that can be replaced while the clients using it keep running (rotation
//! without a restart).
//!
//! Clones share one cell: whoever re-reads the secret calls [`RotatingKey::set`] and every
//! client built with a clone sends the new value from its next request on. Reading is a
//! lock-free load of an `Arc` (arc-swap), taken per request and never held across an
//! await, so a lookup never waits for the refresher and vice versa.

use std::sync::Arc;

use arc_swap::ArcSwap;

/// A shared, replaceable secret value. Its `Debug` never prints the value.
#[derive(Clone)]
pub struct RotatingKey(Arc<ArcSwap<String>>);

impl RotatingKey {
    /// A key holding `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(value.into())))
    }

    /// The value now (a cheap clone of an `Arc`).
    pub fn current(&self) -> Arc<String> {
        self.0.load_full()
    }

    /// Replaces the value for every clone; `true` when it differed.
    pub fn set(&self, value: impl Into<String>) -> bool {
        let value = value.into();
        if **self.0.load() == value {
            return false;
        }
        self.0.store(Arc::new(value));
        true
    }

    /// Whether the value now is empty.
    pub fn is_empty(&self) -> bool {
        self.0.load().is_empty()
    }
}

impl std::fmt::Debug for RotatingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RotatingKey(<redacted>)")
    }
}

impl From<String> for RotatingKey {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for RotatingKey {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_see_a_replaced_value_and_debug_hides_it() {
        let a = RotatingKey::new("sk-old");
        let b = a.clone();
        assert!(!a.set("sk-old"));
        assert!(a.set("sk-new"));
        assert_eq!(b.current().as_str(), "sk-new");
        assert!(!format!("{b:?}").contains("sk-"));
        assert!(!b.is_empty());
        assert!(RotatingKey::from("").is_empty());
    }
}
