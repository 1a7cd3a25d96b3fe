//! `GET /api/v1/calls/{call_sid}/recording`: a call's recording.
//!
//! Where it is comes from the call's record (read through the one read path, so another
//! tenant's call is "not found"), never from the request. A recording in S3 is answered
//! with a redirect to a short-lived presigned URL; one kept in the gateway's data
//! directory (laptop mode) is streamed by tower-http's `ServeFile` (`Range`, `If-Range`,
//! 206/416, `Accept-Ranges`), after checking that its key names a file inside the
//! recordings directory.

use std::path::{Path, PathBuf};

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use switchboard_store::RecordingRef;
use tower_http::services::ServeFile;

use super::auth::Caller;
use super::calls::read_record;
use super::problem::Problem;
use super::types::{RecordingLink, RecordingParams, recording_route, rfc3339};
use crate::recording::s3::CONTENT_TYPE;
use crate::state::AppState;

pub use crate::recording::LocalKeyError;

/// The file of a local recording `key` under `dir`: a relative path of plain names, not
/// in the gateway's working folders, that still lies inside `dir` once links are
/// resolved. Whoever could write the record (a database shared with other gateways, a
/// restored backup) must not be able to make this route read another file.
///
/// # Errors
/// See [`LocalKeyError`].
pub fn local_file(dir: &Path, key: &str) -> Result<PathBuf, LocalKeyError> {
    let rel = crate::recording::check_local_key(key)?;
    let root = dir.canonicalize().map_err(|_| LocalKeyError::Missing)?;
    let file = dir
        .join(rel)
        .canonicalize()
        .map_err(|_| LocalKeyError::Missing)?;
    if !file.starts_with(&root) || !file.is_file() {
        return Err(LocalKeyError::Outside);
    }
    Ok(file)
}

/// The call's recording: a redirect to a presigned S3 URL, or the WAV itself.
#[utoipa::path(
    get,
    path = "/api/v1/calls/{call_sid}/recording",
    tag = "calls",
    params(("call_sid" = String, Path, description = "Twilio CallSid"), RecordingParams),
    responses(
        (status = 200, description = "The recording (a WAV this gateway keeps locally): 16-bit PCM, 8 kHz, two channels (left the caller, right the agent as heard). `Accept-Ranges: bytes`. With `?redirect=false`: where to fetch it, as JSON.", content(
            ("audio/wav"),
            (RecordingLink = "application/json"),
        )),
        (status = 206, description = "The byte range asked for with `Range` (`Content-Range` says which)", content_type = "audio/wav"),
        (status = 302, description = "The recording is in S3: `Location` is a presigned GET URL, valid for `--recording-link-seconds` (default 300, at most 900)", headers(("Location" = String, description = "Presigned S3 URL"))),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such call for this key's tenant, or the call has no recording", body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "The range lies outside the recording (`Content-Range: bytes */<size>`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited (see Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The record does not decrypt, or names a file outside the recordings directory", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Call store, disk or S3 credentials unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_recording(
    State(state): State<AppState>,
    Caller(key): Caller,
    UrlPath(call_sid): UrlPath<String>,
    params: Result<Query<RecordingParams>, QueryRejection>,
    request: Request,
) -> Result<Response, Problem> {
    let Query(params) = params.map_err(|e| Problem::bad_request(e.body_text()))?;
    let rec = read_record(&state, &key.tenant, &call_sid).await?;
    let Some(recording) = rec.recording else {
        return Err(Problem::not_found("recording of this call"));
    };
    let redirect = params.redirect.unwrap_or(true);
    match &recording.bucket {
        Some(bucket) => s3_link(&state, &call_sid, bucket, &recording, redirect).await,
        None if !redirect => {
            Ok(Json(link(recording_route(&call_sid), None, "local", &recording)).into_response())
        }
        None => serve_local(&state, &call_sid, &recording, request).await,
    }
}

fn link(url: String, expires_at: Option<String>, storage: &str, r: &RecordingRef) -> RecordingLink {
    RecordingLink {
        url,
        expires_at,
        storage: storage.into(),
        content_type: CONTENT_TYPE.into(),
        duration_ms: r.duration_ms,
        bytes: r.bytes,
    }
}

async fn s3_link(
    state: &AppState,
    call_sid: &str,
    bucket: &str,
    recording: &RecordingRef,
    redirect: bool,
) -> Result<Response, Problem> {
    let signed = state
        .recordings
        .s3()
        .presign_get(bucket, &recording.key)
        .await
        .map_err(|e| {
            tracing::warn!(call_sid, error = %e, "could not presign a recording link");
            Problem::recording_unavailable()
        })?;
    let mut r = if redirect {
        let location = HeaderValue::from_str(&signed.url).map_err(|_| {
            tracing::error!(call_sid, "presigned URL is not a header value");
            Problem::recording_unavailable()
        })?;
        let mut r = StatusCode::FOUND.into_response();
        r.headers_mut().insert(header::LOCATION, location);
        r
    } else {
        let expires = rfc3339(signed.expires_unix_s.saturating_mul(1000));
        Json(link(signed.url, expires, "s3", recording)).into_response()
    };
    // The URL is a credential until it expires: not to be kept by caches.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

async fn serve_local(
    state: &AppState,
    call_sid: &str,
    recording: &RecordingRef,
    request: Request,
) -> Result<Response, Problem> {
    let file = match local_file(state.recordings.dir(), &recording.key) {
        Ok(f) => f,
        Err(LocalKeyError::Missing) => {
            tracing::warn!(call_sid, key = recording.key, "recording file is missing");
            return Err(Problem::not_found("recording file of this call"));
        }
        Err(e) => {
            tracing::error!(call_sid, key = recording.key, error = %e, "refused a recording key");
            return Err(Problem::recording_refused());
        }
    };
    let served = ServeFile::new(&file).try_call(request).await.map_err(|e| {
        tracing::warn!(call_sid, error = %e, "reading a recording failed");
        Problem::recording_unavailable()
    })?;
    let (mut parts, body) = served.into_parts();
    match parts.status {
        StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED => {}
        StatusCode::RANGE_NOT_SATISFIABLE => {
            let len = recording_len(&parts.headers);
            let mut r = Problem::range_not_satisfiable(len).into_response();
            if let Some(v) = parts.headers.get(header::CONTENT_RANGE) {
                r.headers_mut().insert(header::CONTENT_RANGE, v.clone());
            }
            r.headers_mut()
                .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return Ok(r);
        }
        StatusCode::NOT_FOUND => return Err(Problem::not_found("recording file of this call")),
        other => {
            tracing::warn!(call_sid, status = %other, "serving a recording failed");
            return Err(Problem::recording_unavailable());
        }
    }
    let h = &mut parts.headers;
    // The WAV's type, whatever the file name would suggest.
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{call_sid}.wav\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// The size in `Content-Range: bytes */<size>`.
fn recording_len(h: &axum::http::HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_RANGE)?
        .to_str()
        .ok()?
        .rsplit_once('/')?
        .1
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_inside_the_recordings_directory_are_served() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("recordings");
        let day = dir.join("demo/2026/12/07");
        std::fs::create_dir_all(&day).unwrap();
        std::fs::create_dir_all(dir.join("queue")).unwrap();
        std::fs::write(day.join("CA1.wav"), b"RIFF").unwrap();
        std::fs::write(dir.join("queue/CA2.wav"), b"RIFF").unwrap();
        std::fs::write(tmp.path().join("secret.wav"), b"RIFF").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret.wav"), day.join("CA3.wav")).unwrap();

        assert_eq!(
            local_file(&dir, "demo/2026/12/07/CA1.wav").unwrap(),
            day.join("CA1.wav").canonicalize().unwrap()
        );
        for (key, want) in [
            ("../secret.wav", LocalKeyError::NotPlain),
            ("demo/../../secret.wav", LocalKeyError::NotPlain),
            ("/etc/passwd", LocalKeyError::NotPlain),
            ("./demo/2026/12/07/CA1.wav", LocalKeyError::NotPlain),
            ("demo\\..\\..\\secret.wav", LocalKeyError::NotPlain),
            ("demo/2026/12/07/CA1.txt", LocalKeyError::NotPlain),
            ("", LocalKeyError::NotPlain),
            ("queue/CA2.wav", LocalKeyError::WorkingFolder),
            ("work/CA2.wav", LocalKeyError::WorkingFolder),
            ("demo/2026/12/07/CA9.wav", LocalKeyError::Missing),
            ("demo/2026/12/07/CA3.wav", LocalKeyError::Outside),
        ] {
            assert_eq!(local_file(&dir, key), Err(want), "{key}");
        }
    }
}
