//! Rotation of the call store's database URL without a restart.
//!
//! A tenant may name its database URL in AWS Secrets Manager (`spec.database.url` with
//! `awsSecretsManager`; Secrets Manager's RDS rotation changes the password, or
//! alternates between two users). The refresh schedule ([`crate::server`]) re-reads it;
//! when it changed, a store is opened on the new URL first, then swapped in
//! ([`SwappableStore::replace`]): writes and reads that start from then on use it, those
//! running finish on the old pool, which is closed once they are done. A URL that cannot
//! be opened (refused login, bad URL) leaves the current store in place.
//!
//! A URL given with `--database-url` / `SWITCHBOARD_DATABASE_URL` (an environment
//! variable, fixed for the life of the process) is not re-read: a new value there needs
//! new pods.

use std::sync::{Arc, Mutex, PoisonError};

use switchboard_store::{self as store, SwappableStore};

use crate::secrets::SecretSource;
use crate::tenants::{TenantError, Tenants};

/// Why a re-read database URL was not put in place.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// The secret could not be read (or tenants disagree on it).
    #[error(transparent)]
    Secret(#[from] TenantError),
    /// The new URL could not be opened; the current store stays.
    #[error("opening the call store at the rotated database URL: {0}")]
    Open(#[from] store::StoreError),
}

/// The call store whose URL came from AWS Secrets Manager, with that URL.
pub struct CallStoreUrl {
    store: Arc<SwappableStore>,
    /// The URL the current store was opened with (never logged).
    url: Mutex<String>,
}

impl std::fmt::Debug for CallStoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallStoreUrl").finish_non_exhaustive()
    }
}

impl CallStoreUrl {
    /// `store`, opened with `url`.
    pub fn new(store: Arc<SwappableStore>, url: String) -> Self {
        Self {
            store,
            url: Mutex::new(url),
        }
    }

    /// Re-reads the URL; when it changed, opens the store there and swaps it in.
    /// `Ok(Some(url))` with the new URL when the store was replaced (the knowledge
    /// bases' pgvector lookups follow it: [`crate::knowledge::Knowledge::set_database_url`]).
    ///
    /// # Errors
    /// [`RotationError`] when the secret cannot be read or the new URL cannot be opened;
    /// the current store stays in either case.
    pub async fn refresh(
        &self,
        tenants: &Tenants,
        secrets: &SecretSource,
    ) -> Result<Option<String>, RotationError> {
        let Some(url) = tenants.database_url_from_aws(secrets).await? else {
            return Ok(None);
        };
        if *self.url.lock().unwrap_or_else(PoisonError::into_inner) == url {
            return Ok(None);
        }
        // Connect (and check the schema) before anything uses it.
        let next = store::open(&url).await?;
        self.store.replace(next);
        *self.url.lock().unwrap_or_else(PoisonError::into_inner) = url.clone();
        tracing::info!(
            "the call store's database URL changed: new writes use the new connections, the old pool drains"
        );
        Ok(Some(url))
    }
}
