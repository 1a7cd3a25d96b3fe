//! A tenant's own role and schema on the shared Postgres (RDS in production).
//!
//! Pure parts apart from I/O: [`names`] derives and validates the role, schema and
//! Secret names; [`target`] reads the admin URL and writes a tenant's connection URL;
//! [`secret`] builds the credentials Secret; [`provision`] talks to Postgres.
//!
//! # Lifecycle (what the controller does with these)
//!
//! 1. **Names**: [`TenantDatabase::resolve`] takes the names from `status.database` when
//!    present, else derives them ([`TenantDatabase::for_tenant`]:
//!    `sb_<ns>_<name>_<digest of ns, name and UID>`). The controller writes them into
//!    `status.database` ([`TenantDatabase::to_status`]) the first time and uses the
//!    status from then on, so the naming scheme can change without orphaning data.
//! 2. **Secret, once**: if the Secret `secret_name` does not exist, generate a password
//!    ([`generate_password`]), then create the Secret ([`build_database_secret`]; create,
//!    409 = it exists) *before* creating the role, so a crash in between leaves a Secret
//!    whose password the role will be created with, never a role with a password nobody
//!    knows. The Secret is never rewritten (it is `immutable`). An existing Secret's
//!    password ([`password_of`]) is what `ensure` gets; check [`is_owned_by`] before
//!    trusting a Secret of that name.
//! 3. **Ensure**: [`Provisioner::ensure`] creates the role (only if missing: an
//!    existing role's password is never changed), the schema owned by it, isolation
//!    grants, and runs the gateway's migrations as the role. Idempotent.
//! 4. **Gateway**: `BuildInputs::database_url_secret` = [`url_key_selector`]; the gateway reads
//!    the URL from the Secret and finds its tables already migrated.
//! 5. **Ownership**: `ensure` marks the role and schema it creates with a comment
//!    naming the tenant's UID ([`Ownership::comment`]); every later `ensure` and every
//!    `drop` first checks it ([`Ownership::judge`]), because `status.database` is
//!    writable by anyone who may patch the status. Unmarked objects (created before the
//!    marking) are adopted only under the names derived from this tenant's namespace,
//!    name and UID.
//! 6. **Delete**: the finalizer calls [`Provisioner::drop`] only under
//!    `deletionPolicy: Delete`; under `Retain` (the default) role, schema and data stay
//!    (a tenant re-created with the same name gets a new UID, hence new names and a
//!    fresh role, and the retained data stays where it was). The Secret goes with the
//!    tenant (owner reference) either way.
//!
//! # Telling failures apart during delete
//!
//! [`DropOutcome`] covers everything that counts as done: dropped, already gone, or the
//! whole database gone ([`DropOutcome::DatabaseMissing`]). A failure's
//! [`DatabaseError::category`] separates "cannot reach it now" (`DatabaseUnreachable`,
//! [`DatabaseError::is_transient`]: the database may come back, so a finalizer may
//! retry, or release the tenant after a bound, by policy) from "it answered no"
//! (`DatabaseRefused`, `SchemaConflict`: a human must look).
//!
//! # Isolation
//!
//! Each role owns its schema and nothing else; `PUBLIC` has no privileges on tenant
//! schemas, so tenant A's role cannot read or write tenant B's tables, nor create in
//! `public`. Not covered here: catalogs are readable by every role (a tenant can list
//! other schemas' *names*), `TEMP` on the database stays as the server has it (temporary
//! tables are private to their session), and roles are server-wide, so a DBA who wants
//! tenants kept out of other databases revokes `CONNECT` on those from `PUBLIC`.

pub mod admin_secret;
pub mod error;
pub mod names;
pub mod provision;
mod scram;
pub mod secret;
pub mod target;

pub use error::DatabaseError;
pub use names::{Claim, ObjectKind, Ownership, TenantDatabase, validate_identifier};
pub use provision::{DropOutcome, EnsureOutcome, Provisioner, ProvisionerConfig};
pub use secret::{
    PASSWORD_KEY, URL_KEY, USERNAME_KEY, build_database_secret, generate_password, is_owned_by,
    password_of, url_key_selector,
};
pub use target::AdminTarget;
