//! The Secret with a tenant's database credentials, and its password.
//!
//! The controller creates it once (create, where 409 means it exists) and never writes
//! it again: the password in it is the one its role was created with, and a role's
//! password is never changed afterwards.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use rand::Rng;
use rand::distr::Alphanumeric;
use switchboard_crds::{SecretKeySelector, VoiceTenant};

use super::error::DatabaseError;
use super::names::TenantDatabase;
use super::target::AdminTarget;
use crate::owner::Owner;

/// Key of the role name in the Secret.
pub const USERNAME_KEY: &str = "username";
/// Key of the password in the Secret.
pub const PASSWORD_KEY: &str = "password";
/// Key of the gateway's connection URL in the Secret (what `SWITCHBOARD_DATABASE_URL`
/// comes from).
pub const URL_KEY: &str = "url";
/// Length of generated passwords: 40 alphanumerics, about 238 bits.
pub const PASSWORD_LEN: usize = 40;

/// A fresh random password: [`PASSWORD_LEN`] ASCII alphanumerics from the thread's
/// cryptographically secure generator. Nothing in it needs escaping in a URL or in SQL.
pub fn generate_password() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(PASSWORD_LEN)
        .map(char::from)
        .collect()
}

/// Builds the tenant's database Secret `db.secret_name`: `username`, `password` and the
/// gateway's connection `url`, with the labels and controller owner reference of the
/// tenant's other children (deleting the tenant deletes it). Marked immutable: the
/// operator never rewrites it, and neither should anyone else.
///
/// # Errors
///
/// [`DatabaseError::Tenant`] when the tenant lacks a name, namespace or UID.
pub fn build_database_secret(
    vt: &VoiceTenant,
    db: &TenantDatabase,
    password: &str,
    target: &AdminTarget,
) -> Result<Secret, DatabaseError> {
    let owner = Owner::of(vt)?;
    let mut metadata = owner.meta();
    metadata.name = Some(db.secret_name.clone());
    let data = BTreeMap::from([
        (USERNAME_KEY.to_string(), bytes(&db.role)),
        (PASSWORD_KEY.to_string(), bytes(password)),
        (URL_KEY.to_string(), bytes(&target.tenant_url(db, password))),
    ]);
    Ok(Secret {
        metadata,
        type_: Some("Opaque".to_string()),
        immutable: Some(true),
        data: Some(data),
        ..Secret::default()
    })
}

/// The Secret key the gateway's database URL comes from: what the controller puts in
/// `BuildInputs::database_url_secret` once the tenant is provisioned.
pub fn url_key_selector(db: &TenantDatabase) -> SecretKeySelector {
    SecretKeySelector {
        name: db.secret_name.clone(),
        key: URL_KEY.to_string(),
    }
}

/// The password stored in an existing database Secret, if it has one.
pub fn password_of(secret: &Secret) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(PASSWORD_KEY)
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .filter(|p| !p.is_empty())
}

/// Whether `secret` was created by this operator for `vt`: its controller owner is this
/// very tenant object. A Secret of the same name that is not (a user's own, or one left
/// from an earlier tenant of the same name) must not be trusted for credentials.
pub fn is_owned_by(secret: &Secret, vt: &VoiceTenant) -> bool {
    let Some(uid) = vt.uid() else {
        return false;
    };
    secret
        .owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

fn bytes(text: &str) -> ByteString {
    ByteString(text.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels;

    fn tenant() -> VoiceTenant {
        let yaml = r#"
apiVersion: voice.switchboard.dev/v1alpha1
kind: VoiceTenant
metadata:
  name: dental
  namespace: acme
  uid: 6f1b0c7e-0000-4000-8000-000000000001
spec:
  displayName: Dental
  phoneNumbers: ["+15005550006"]
  twilio:
    accountSid: ACe5b9b91d74144c1eab5502f239bd8ed9
    authToken: { secretKeyRef: { name: demo-secrets, key: twilio-auth-token } }
  openai:
    apiKey: { secretKeyRef: { name: demo-secrets, key: openai-api-key } }
"#;
        switchboard_crds::parse_tenant(yaml).unwrap()
    }

    fn text(secret: &Secret, key: &str) -> String {
        String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
    }

    #[test]
    fn secret_holds_credentials_and_url() {
        let vt = tenant();
        let db = TenantDatabase::for_tenant(&vt).unwrap();
        let target = AdminTarget::from_admin_url("postgres://admin:x@pg.db:5432/voice").unwrap();
        let secret = build_database_secret(&vt, &db, "pw123", &target).unwrap();

        assert_eq!(secret.metadata.name.as_deref(), Some("dental-database"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("acme"));
        assert_eq!(secret.metadata.labels, Some(labels::labels("dental")));
        let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "VoiceTenant");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        assert_eq!(secret.immutable, Some(true));
        assert_eq!(text(&secret, USERNAME_KEY), db.role);
        assert_eq!(text(&secret, PASSWORD_KEY), "pw123");
        assert_eq!(
            text(&secret, URL_KEY),
            format!(
                "postgres://{}:pw123@pg.db:5432/voice?options=-c%20search_path%3D{}",
                db.role, db.schema
            )
        );
        assert_eq!(password_of(&secret).as_deref(), Some("pw123"));
        assert!(is_owned_by(&secret, &vt));

        let json = serde_json::to_value(&secret).unwrap();
        assert_eq!(json["apiVersion"], "v1");
        assert_eq!(json["kind"], "Secret");
        assert!(!json.to_string().contains("null"));
    }

    #[test]
    fn someone_elses_secret_is_not_ours() {
        let vt = tenant();
        let db = TenantDatabase::for_tenant(&vt).unwrap();
        let target = AdminTarget::from_admin_url("postgres://a@h/d").unwrap();
        let mut secret = build_database_secret(&vt, &db, "pw", &target).unwrap();
        secret.metadata.owner_references = None;
        assert!(!is_owned_by(&secret, &vt));
    }

    #[test]
    fn passwords_are_long_url_safe_and_fresh() {
        let a = generate_password();
        let b = generate_password();
        assert!(a.len() >= 32);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }
}
