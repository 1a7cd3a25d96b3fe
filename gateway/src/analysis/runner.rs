//! One call's analysis: the API key read, the request sent, the answer checked. Started
//! by [`crate::records`] on its own task after the call's end record was queued (never on
//! the audio path, never holding up the record); sealing and writing the result stay
//! there, with the rest of the record's sealing.

use switchboard_crds::{AnalysisSpec, SecretRef};
use switchboard_store::CallEnd;

use super::Analyzer;
use super::client::{self, ClientError};
use super::request::{self, AnswerError, Verdict};
use crate::secrets::SecretSource;

/// Everything one analysis needs, taken from the call and its tenant when it ended.
#[derive(Debug, Clone)]
pub struct Job {
    /// The tenant's `spec.analysis`.
    pub spec: AnalysisSpec,
    /// The API key's reference (`spec.analysis.apiKey`, else `spec.openai.apiKey`).
    pub api_key: SecretRef,
    /// The call's record, in clear (it stays in this process's memory).
    pub end: CallEnd,
}

/// Why an analysis produced nothing.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The API key could not be read.
    #[error("API key unavailable: {0}")]
    Secret(String),
    /// No HTTP client (no TLS provider installed).
    #[error("HTTP client: {0}")]
    Client(String),
    /// The endpoint did not answer usefully.
    #[error(transparent)]
    Http(#[from] ClientError),
    /// The answer did not fit the schema.
    #[error(transparent)]
    Answer(#[from] AnswerError),
    /// The call's data key could not be unwrapped, or sealing failed.
    #[error("sealing the analysis: {0}")]
    Seal(String),
    /// The analysis names no key of its own and would go to a host other than OpenAI's
    /// with the tenant's OpenAI key: refused, nothing is sent.
    #[error(
        "spec.analysis.apiKey is required: the analysis goes to {0}, not OpenAI, and the tenant's OpenAI key is not lent to another host"
    )]
    KeyNotLent(String),
}

impl AnalysisError {
    /// Whether trying again later cannot help (the endpoint refused the request, or its
    /// answer is not usable): the call's analysis is then given up for good. An endpoint
    /// that stayed unavailable, a key or KMS that could not be reached are tried again
    /// by a later sweep.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            AnalysisError::Answer(_)
                | AnalysisError::KeyNotLent(_)
                | AnalysisError::Http(ClientError::Refused { .. } | ClientError::NotJson(_))
        )
    }

    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            AnalysisError::Secret(_) => "secret",
            AnalysisError::Client(_) => "client",
            AnalysisError::Http(e) => e.kind(),
            AnalysisError::Answer(_) => "bad_answer",
            AnalysisError::Seal(_) => "seal",
            AnalysisError::KeyNotLent(_) => "key_not_lent",
        }
    }
}

impl Analyzer {
    /// Runs one analysis: reads the key, posts the request (retrying), checks the answer.
    ///
    /// # Errors
    /// See [`AnalysisError`].
    pub async fn analyse(
        &self,
        secrets: &SecretSource,
        job: &Job,
    ) -> Result<Verdict, AnalysisError> {
        let base_url = endpoint(&job.spec, &self.default_base_url)?;
        let key = secrets
            .resolve(&job.api_key)
            .await
            .map_err(AnalysisError::Secret)?;
        let http = self.http().map_err(AnalysisError::Client)?;
        let url = client::completions_url(base_url);
        let body = request::body(&job.spec, &job.end);
        let answer = client::post(&http, &self.retry, &url, &key, &body).await?;
        Ok(request::parse_answer(&job.spec, &answer)?)
    }
}

/// Where an analysis goes: `baseUrl`, else the gateway's `--analysis-url`. Refused when the
/// analysis names no key of its own (it would borrow the tenant's OpenAI key) and that is
/// not OpenAI's host: the rule is about where the key goes, whoever named the host, so the
/// gateway's own default is held to it too.
fn endpoint<'a>(
    spec: &'a AnalysisSpec,
    default_base_url: &'a str,
) -> Result<&'a str, AnalysisError> {
    let base_url = spec.base_url.as_deref().unwrap_or(default_base_url);
    if spec.api_key.is_none() && !switchboard_crds::endpoint::is_openai(base_url) {
        return Err(AnalysisError::KeyNotLent(base_url.to_string()));
    }
    Ok(base_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> AnalysisSpec {
        let mut v = serde_json::json!({"model": "gpt-4o-mini"});
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(extra.clone());
        }
        serde_json::from_value(v).expect("an analysis spec")
    }

    #[test]
    fn the_openai_key_is_lent_only_to_openai_whoever_names_the_host() {
        let sim = "http://127.0.0.1:8200/v1";
        let openai = "https://api.openai.com/v1";
        // No key of its own: OpenAI's host only, the gateway's default included.
        assert_eq!(
            endpoint(&spec(serde_json::json!({})), openai).ok(),
            Some(openai)
        );
        assert!(matches!(
            endpoint(&spec(serde_json::json!({})), sim),
            Err(AnalysisError::KeyNotLent(u)) if u == sim
        ));
        assert!(matches!(
            endpoint(&spec(serde_json::json!({"baseUrl": sim})), openai),
            Err(AnalysisError::KeyNotLent(_))
        ));
        // A key of its own goes where the analysis says.
        let keyed = spec(serde_json::json!({"apiKey": {"env": "ANALYSIS_KEY"}}));
        assert_eq!(endpoint(&keyed, sim).ok(), Some(sim));
    }
}
