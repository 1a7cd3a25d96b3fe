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
        let key = secrets
            .resolve(&job.api_key)
            .await
            .map_err(AnalysisError::Secret)?;
        let http = self.http().map_err(AnalysisError::Client)?;
        let url = client::completions_url(
            job.spec
                .base_url
                .as_deref()
                .unwrap_or(&self.default_base_url),
        );
        let body = request::body(&job.spec, &job.end);
        let answer = client::post(&http, &self.retry, &url, &key, &body).await?;
        Ok(request::parse_answer(&job.spec, &answer)?)
    }
}
