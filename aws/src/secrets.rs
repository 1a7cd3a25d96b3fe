//! Reading secrets from AWS Secrets Manager.

use aws_config::SdkConfig;

use crate::error::{AwsError, AwsErrorKind, classify};

/// A Secrets Manager client.
#[derive(Clone, Debug)]
pub struct SecretsManager {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManager {
    /// A client from a configuration built by [`crate::load_config`].
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_secretsmanager::Client::new(config),
        }
    }

    /// The value of `secret_id` at `version_stage` (default `AWSCURRENT`); with `key`, that
    /// field of the secret's JSON object. Surrounding whitespace is trimmed; an empty
    /// value is an error.
    ///
    /// # Errors
    /// [`AwsError`] when the secret cannot be read, is binary and not UTF-8, is not a JSON
    /// object with `key`, or is empty.
    pub async fn get(
        &self,
        secret_id: &str,
        key: Option<&str>,
        version_stage: Option<&str>,
    ) -> Result<String, AwsError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .set_version_stage(version_stage.map(str::to_string))
            .send()
            .await
            .map_err(|e| classify(secret_id, e))?;
        let text = match (out.secret_string(), out.secret_binary()) {
            (Some(s), _) => s.to_string(),
            (None, Some(b)) => String::from_utf8(b.clone().into_inner()).map_err(|_| {
                AwsError::new(
                    AwsErrorKind::Invalid,
                    secret_id,
                    "binary secret is not UTF-8",
                )
            })?,
            (None, None) => {
                return Err(AwsError::new(
                    AwsErrorKind::Invalid,
                    secret_id,
                    "the secret has no value",
                ));
            }
        };
        let value = match key {
            Some(key) => {
                pick(&text, key).map_err(|m| AwsError::new(AwsErrorKind::Invalid, secret_id, m))?
            }
            None => text,
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(AwsError::new(
                AwsErrorKind::Invalid,
                secret_id,
                "the value is empty",
            ));
        }
        Ok(value.to_string())
    }
}

/// The field `key` of a secret that holds a JSON object; a string field as is, a number
/// or boolean as its JSON text. The message never contains the secret.
pub fn pick(text: &str, key: &str) -> Result<String, String> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|_| format!("key {key:?} asked for, but the secret is not a JSON object"))?;
    let object = value
        .as_object()
        .ok_or_else(|| format!("key {key:?} asked for, but the secret is not a JSON object"))?;
    match object.get(key) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => Ok(v.to_string()),
        Some(_) => Err(format!("field {key:?} of the secret is not a string")),
        None => Err(format!("the secret has no field {key:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::pick;

    #[test]
    fn picks_a_field_and_never_echoes_the_secret() {
        let secret = r#"{"token":"s3cr3t","port":5432}"#;
        assert_eq!(pick(secret, "token").unwrap(), "s3cr3t");
        assert_eq!(pick(secret, "port").unwrap(), "5432");
        let err = pick(secret, "missing").unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
        let err = pick("plain-s3cr3t", "token").unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(pick(r#"{"token":{"nested":1}}"#, "token").is_err());
    }
}
