//! Envelope encryption: a data key per record from KMS, fields sealed with AES-256-GCM.
//!
//! KMS `GenerateDataKey` returns the key twice: in clear (used here, in memory only) and
//! wrapped under the tenant's KMS key (stored with the record). Both calls carry an
//! encryption context (e.g. `{tenant, call_sid}`); KMS binds it to the wrapped key, so
//! unwrapping with any other context fails: a record's key copied to another record
//! cannot be unwrapped there. Each field is sealed with AES-256-GCM (ring's AEAD, the
//! crypto provider already in the build) under a random 96-bit nonce, with associated
//! data naming the field's place, so a ciphertext moved to another field or row fails
//! its tag instead of decrypting to the wrong text.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{AwsError, AwsErrorKind, classify};

/// Prefix of a sealed field: format version 1 (`sb1:` + base64(nonce ‖ ciphertext ‖ tag)).
pub const SEALED_PREFIX: &str = "sb1:";

/// Why a field could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The text is not a sealed field (no prefix, bad base64, too short).
    #[error("not a sealed field")]
    Malformed,
    /// The tag does not verify: wrong key, or the ciphertext or its place was altered.
    #[error("the field does not authenticate under this record's key (altered or moved)")]
    Forged,
    /// The system's random generator failed (no nonce, nothing sealed).
    #[error("no random nonce available")]
    Random,
    /// KMS returned a data key that is not 32 bytes.
    #[error("KMS returned a data key of {0} bytes, expected 32")]
    KeyLength(usize),
}

/// A data key: the clear key (memory only) and its KMS-wrapped form.
pub struct DataKey {
    key: LessSafeKey,
    wrapped: Vec<u8>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("wrapped_bytes", &self.wrapped.len())
            .finish_non_exhaustive()
    }
}

impl DataKey {
    /// A data key from its clear bytes and wrapped form (what KMS returned).
    ///
    /// # Errors
    /// [`CryptoError::KeyLength`] unless `clear` is 32 bytes.
    pub fn from_parts(clear: &[u8], wrapped: Vec<u8>) -> Result<Self, CryptoError> {
        let unbound = UnboundKey::new(&AES_256_GCM, clear)
            .map_err(|_| CryptoError::KeyLength(clear.len()))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            wrapped,
        })
    }

    /// The wrapped key, to store with the record.
    pub fn wrapped(&self) -> &[u8] {
        &self.wrapped
    }

    /// The wrapped key as base64 text.
    pub fn wrapped_base64(&self) -> String {
        STANDARD.encode(&self.wrapped)
    }

    /// Seals `plaintext`, bound to `aad` (the field's place).
    ///
    /// # Errors
    /// [`CryptoError::Random`] when no nonce could be drawn.
    pub fn seal(&self, aad: &[u8], plaintext: &str) -> Result<String, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| CryptoError::Random)?;
        let mut buf = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| CryptoError::Random)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(out)))
    }

    /// Opens a field sealed by [`DataKey::seal`] with the same `aad`.
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] for text that is not a sealed field,
    /// [`CryptoError::Forged`] when it does not authenticate.
    pub fn open(&self, aad: &[u8], sealed: &str) -> Result<String, CryptoError> {
        let body = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(CryptoError::Malformed)?;
        let bytes = STANDARD.decode(body).map_err(|_| CryptoError::Malformed)?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(CryptoError::Malformed);
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Malformed)?;
        let mut buf = rest.to_vec();
        let clear = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::Forged)?;
        String::from_utf8(clear.to_vec()).map_err(|_| CryptoError::Forged)
    }
}

/// Whether `text` is a sealed field.
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(SEALED_PREFIX)
}

/// A KMS client for data keys.
#[derive(Clone, Debug)]
pub struct Kms {
    client: aws_sdk_kms::Client,
}

fn context_map(context: &[(&str, &str)]) -> HashMap<String, String> {
    context
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

impl Kms {
    /// A client from a configuration built by [`crate::load_config`].
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_kms::Client::new(config),
        }
    }

    /// A new AES-256 data key under `key_id`, bound to `context`.
    ///
    /// # Errors
    /// [`AwsError`] when KMS cannot be reached or refuses.
    pub async fn generate(
        &self,
        key_id: &str,
        context: &[(&str, &str)],
    ) -> Result<DataKey, AwsError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(|e| classify(key_id, e))?;
        let (Some(clear), Some(wrapped)) = (out.plaintext(), out.ciphertext_blob()) else {
            return Err(AwsError::new(
                AwsErrorKind::Other,
                key_id,
                "GenerateDataKey answered without a key",
            ));
        };
        DataKey::from_parts(clear.as_ref(), wrapped.as_ref().to_vec())
            .map_err(|e| AwsError::new(AwsErrorKind::Other, key_id, e.to_string()))
    }

    /// Unwraps a stored data key; `context` must be the one it was generated with.
    ///
    /// # Errors
    /// [`AwsErrorKind::InvalidCiphertext`] for another context or key;
    /// [`AwsErrorKind::Unreachable`] and others as for any call.
    pub async fn unwrap(
        &self,
        wrapped: &[u8],
        context: &[(&str, &str)],
    ) -> Result<DataKey, AwsError> {
        let out = self
            .client
            .decrypt()
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(|e| classify("data key", e))?;
        let Some(clear) = out.plaintext() else {
            return Err(AwsError::new(
                AwsErrorKind::Other,
                "data key",
                "Decrypt answered without a key",
            ));
        };
        DataKey::from_parts(clear.as_ref(), wrapped.to_vec())
            .map_err(|e| AwsError::new(AwsErrorKind::InvalidCiphertext, "data key", e.to_string()))
    }

    /// Re-wraps a data key for another encryption context (KMS `ReEncrypt`: the clear key
    /// never leaves KMS): `wrapped` must unwrap with `from`; the result is wrapped under
    /// `key_id` with `to`. Lets a record sealed under a key obtained before its call
    /// ended carry a key bound to its own context.
    ///
    /// # Errors
    /// [`AwsErrorKind::InvalidCiphertext`] when `wrapped` does not unwrap with `from`;
    /// [`AwsErrorKind::Unreachable`] and others as for any call.
    pub async fn rewrap(
        &self,
        wrapped: &[u8],
        from: &[(&str, &str)],
        key_id: &str,
        to: &[(&str, &str)],
    ) -> Result<Vec<u8>, AwsError> {
        let out = self
            .client
            .re_encrypt()
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .set_source_encryption_context(Some(context_map(from)))
            .destination_key_id(key_id)
            .set_destination_encryption_context(Some(context_map(to)))
            .send()
            .await
            .map_err(|e| classify(key_id, e))?;
        out.ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| {
                AwsError::new(
                    AwsErrorKind::Other,
                    key_id,
                    "ReEncrypt answered without a key",
                )
            })
    }

    /// [`Kms::unwrap`] of a key stored as base64 text.
    ///
    /// # Errors
    /// As [`Kms::unwrap`]; [`AwsErrorKind::Invalid`] for text that is not base64.
    pub async fn unwrap_base64(
        &self,
        wrapped: &str,
        context: &[(&str, &str)],
    ) -> Result<DataKey, AwsError> {
        let bytes = STANDARD.decode(wrapped.trim()).map_err(|_| {
            AwsError::new(
                AwsErrorKind::Invalid,
                "data key",
                "the stored key is not base64",
            )
        })?;
        self.unwrap(&bytes, context).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> DataKey {
        DataKey::from_parts(&[byte; 32], vec![1, 2, 3]).unwrap()
    }

    #[test]
    fn seal_open_round_trip_and_fresh_nonces() {
        let k = key(7);
        let a = k.seal(b"t/CA1/transcript/0", "hello there").unwrap();
        let b = k.seal(b"t/CA1/transcript/0", "hello there").unwrap();
        assert!(is_sealed(&a));
        assert_ne!(a, b, "a nonce was reused");
        assert!(!a.contains("hello"));
        assert_eq!(k.open(b"t/CA1/transcript/0", &a).unwrap(), "hello there");
    }

    #[test]
    fn wrong_key_place_or_bytes_are_refused_never_garbage() {
        let k = key(7);
        let sealed = k.seal(b"place-a", "secret words").unwrap();
        assert_eq!(key(8).open(b"place-a", &sealed), Err(CryptoError::Forged));
        assert_eq!(k.open(b"place-b", &sealed), Err(CryptoError::Forged));
        let mut bytes = STANDARD.decode(&sealed[SEALED_PREFIX.len()..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let flipped = format!("{SEALED_PREFIX}{}", STANDARD.encode(bytes));
        assert_eq!(k.open(b"place-a", &flipped), Err(CryptoError::Forged));
        assert_eq!(
            k.open(b"place-a", "plain text"),
            Err(CryptoError::Malformed)
        );
        assert_eq!(k.open(b"place-a", "sb1:AAAA"), Err(CryptoError::Malformed));
    }

    #[test]
    fn a_data_key_must_be_32_bytes() {
        assert_eq!(
            DataKey::from_parts(&[0; 16], vec![]).unwrap_err(),
            CryptoError::KeyLength(16)
        );
    }
}
