//! The test S3 API: moto's server (`eval "$(scripts/moto.sh start)"` sets
//! `SWITCHBOARD_TEST_S3_URL`), written to with plain path-style requests so the tests
//! never share the operator's S3 client.
//!
//! moto does not verify signatures, but it treats a request without an `Authorization`
//! header as anonymous and refuses anonymous overwrites and deletes: each request carries
//! a well-formed SigV4 header with a dummy signature.

use switchboard_operator::knowledge::S3Settings;
use switchboard_operator::knowledge::s3::StaticCredentials;

/// The moto server's URL, or `None` (after the gate's notice) when none was started.
///
/// # Panics
/// When none was started under `CI=true`.
pub fn url() -> Option<String> {
    crate::services::s3()
}

/// Operator settings for the moto server at `url`: its endpoint, moto's fixed keys,
/// and a re-listing every `resync`.
pub fn settings(url: &str, resync: std::time::Duration) -> S3Settings {
    S3Settings {
        endpoint_url: Some(url.to_string()),
        credentials: Some(StaticCredentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
        }),
        resync,
        ..S3Settings::default()
    }
}

/// A bucket of the moto server.
#[derive(Clone)]
pub struct Bucket {
    base: String,
    /// Its name.
    pub name: String,
    http: reqwest::Client,
}

impl Bucket {
    /// Bucket `name` at `url` (not created yet).
    pub fn new(url: &str, name: &str) -> Bucket {
        Bucket {
            base: url.trim_end_matches('/').to_string(),
            name: name.to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) {
        self.fetch(req, what).await;
    }

    async fn fetch(&self, req: reqwest::RequestBuilder, what: &str) -> reqwest::Response {
        let now = jiff::Timestamp::now();
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=testing/{}/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={}",
            now.strftime("%Y%m%d"),
            "0".repeat(64)
        );
        let resp = req
            .header("authorization", authorization)
            .header("x-amz-date", now.strftime("%Y%m%dT%H%M%SZ").to_string())
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        if !resp.status().is_success() {
            panic!(
                "{what}: HTTP {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            );
        }
        resp
    }

    /// Object `key`: its headers (content type, `x-amz-meta-*`, encryption) and body.
    pub async fn get(&self, key: &str) -> (reqwest::header::HeaderMap, Vec<u8>) {
        let url = format!("{}/{}/{key}", self.base, self.name);
        let resp = self.fetch(self.http.get(url), &format!("get {key}")).await;
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("object body").to_vec();
        (headers, body)
    }

    /// Keys under `prefix` (one page: up to 1000).
    pub async fn list(&self, prefix: &str) -> Vec<String> {
        let url = format!("{}/{}?list-type=2&prefix={prefix}", self.base, self.name);
        let xml = self
            .fetch(self.http.get(url), &format!("list {prefix}"))
            .await
            .text()
            .await
            .expect("listing");
        xml.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// Creates the bucket (in us-east-1, which needs no location constraint).
    pub async fn create(&self) {
        let url = format!("{}/{}", self.base, self.name);
        self.send(self.http.put(url), "create bucket").await;
    }

    /// Writes object `key`.
    pub async fn put(&self, key: &str, body: impl Into<Vec<u8>>) {
        let url = format!("{}/{}/{key}", self.base, self.name);
        self.send(self.http.put(url).body(body.into()), &format!("put {key}"))
            .await;
    }

    /// Deletes object `key`.
    pub async fn delete(&self, key: &str) {
        let url = format!("{}/{}/{key}", self.base, self.name);
        self.send(self.http.delete(url), &format!("delete {key}"))
            .await;
    }
}
