//! Reserve data keys: one per encrypting tenant, fetched from KMS while it answers, so a
//! record whose call ends while KMS does not can still be sealed at once.
//!
//! A reserve key is an ordinary KMS data key whose encryption context is
//! `{tenant, reserve: <id>}` instead of a call's. Its clear form lives in this process's
//! memory only; its wrapped form goes to disk with the records sealed under it
//! (the sealing directory of `records`), so they are ciphertext at rest that only KMS can open. When KMS
//! answers again each such record's key is re-wrapped (`ReEncrypt`) for its own
//! `{tenant, call_sid}` context, the only one the read path accepts.
//!
//! A reserve key is replaced after it has been used (records of one outage share it;
//! records of the next get another), and when the tenant's `kmsKeyId` changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use switchboard_aws::{AwsError, DataKey, Kms};

/// The KMS encryption context of a reserve key.
pub fn context<'a>(tenant: &'a str, id: &'a str) -> [(&'static str, &'a str); 2] {
    [("tenant", tenant), ("reserve", id)]
}

/// A data key held for a tenant's next record that cannot get one of its own.
pub struct ReserveKey {
    /// Random id, part of the key's encryption context.
    pub id: String,
    /// The KMS key it was generated under.
    pub kms_key_id: String,
    /// The key (clear in memory, wrapped form for the disk).
    pub key: DataKey,
}

impl std::fmt::Debug for ReserveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReserveKey")
            .field("id", &self.id)
            .field("kms_key_id", &self.kms_key_id)
            .finish_non_exhaustive()
    }
}

/// The reserve keys of every tenant (behind a lock taken at call end and by the
/// refresher: never on the audio path).
#[derive(Debug, Default)]
pub struct Reserves {
    keys: Mutex<HashMap<String, (Arc<ReserveKey>, bool)>>,
}

impl Reserves {
    /// Takes `tenant`'s reserve key for a record (marking it used: the refresher replaces
    /// it once KMS answers); `None` when there is none for `kms_key_id`.
    pub fn take(&self, tenant: &str, kms_key_id: &str) -> Option<Arc<ReserveKey>> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let (key, used) = keys.get_mut(tenant)?;
        if key.kms_key_id != kms_key_id {
            return None;
        }
        *used = true;
        Some(key.clone())
    }

    /// Whether `tenant` holds an unused reserve key under `kms_key_id`.
    pub fn ready(&self, tenant: &str, kms_key_id: &str) -> bool {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.get(tenant)
            .is_some_and(|(k, used)| !used && k.kms_key_id == kms_key_id)
    }

    /// Fetches a reserve key for `tenant` unless it holds an unused one under
    /// `kms_key_id`; `Ok(true)` when one was fetched.
    ///
    /// # Errors
    /// [`AwsError`] when KMS cannot be reached or refuses (the old key, if any, stays).
    pub async fn ensure(
        &self,
        kms: &Kms,
        tenant: &str,
        kms_key_id: &str,
    ) -> Result<bool, AwsError> {
        if self.ready(tenant, kms_key_id) {
            return Ok(false);
        }
        let id = random_id();
        let key = kms.generate(kms_key_id, &context(tenant, &id)).await?;
        let reserve = Arc::new(ReserveKey {
            id,
            kms_key_id: kms_key_id.to_string(),
            key,
        });
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tenant.to_string(), (reserve, false));
        Ok(true)
    }
}

/// 128 random bits as hex (an id, not a secret).
fn random_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
