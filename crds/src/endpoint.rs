//! Where a URL of a spec sends its requests: its scheme and host, for the rules on what a
//! tenant's editor may point a key at (the operator's host allow-lists, and the analysis
//! key's fallback to the tenant's OpenAI key, which the gateway checks too).
//!
//! The host is the one the HTTP and WebSocket clients connect to: the URL is parsed by
//! the `url` crate (WHATWG), which reqwest itself uses. Anything two parsers might read
//! differently is refused outright rather than interpreted: a user part (`key@host`),
//! backslashes, percent-escapes, whitespace or control characters in the URL's authority.

/// OpenAI's API host: the default of `spec.openai.realtimeUrl`, `spec.analysis.baseUrl`
/// and a knowledge base's `embedder.openai.baseUrl`.
pub const OPENAI_API_HOST: &str = "api.openai.com";
/// Pinecone's control-plane host: the default of `backend.pinecone.apiUrl`.
pub const PINECONE_API_HOST: &str = "api.pinecone.io";

/// The scheme and host of a URL ([`url_host`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlHost {
    /// Lowercase scheme (`https`, `wss`, `http`, `ws`, …).
    pub scheme: String,
    /// Lowercase host, without a trailing `.` (an IPv6 address in brackets).
    pub host: String,
}

impl UrlHost {
    /// Whether the scheme is `https` or `wss`.
    pub fn is_tls(&self) -> bool {
        self.scheme == "https" || self.scheme == "wss"
    }
}

/// The scheme and host `url` sends to; `None` when it is not an absolute URL with a host,
/// or its authority holds anything a client could read differently (see the module).
pub fn url_host(url: &str) -> Option<UrlHost> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains(['@', '\\', '%']) {
        return None;
    }
    let parsed = url::Url::parse(url).ok()?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return None;
    }
    let host = parsed
        .host_str()?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    (!host.is_empty()).then(|| UrlHost {
        scheme: parsed.scheme().to_ascii_lowercase(),
        host,
    })
}

/// Whether `url` goes to OpenAI's own API over TLS (`https://api.openai.com/…`): the only
/// place the tenant's `spec.openai.apiKey` is sent to when another field (the analysis)
/// names no key of its own.
pub fn is_openai(url: &str) -> bool {
    url_host(url).is_some_and(|u| u.scheme == "https" && u.host == OPENAI_API_HOST)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(url: &str) -> Option<(String, String)> {
        url_host(url).map(|u| (u.scheme, u.host))
    }

    #[test]
    fn hosts_as_the_clients_see_them() {
        let h = |s: &str, h: &str| Some((s.to_string(), h.to_string()));
        assert_eq!(
            host("https://api.openai.com/v1"),
            h("https", "api.openai.com")
        );
        assert_eq!(
            host("HTTPS://API.OpenAI.com.:443/v1"),
            h("https", "api.openai.com")
        );
        assert_eq!(
            host("wss://api.openai.com/v1/realtime?model=x"),
            h("wss", "api.openai.com")
        );
        assert_eq!(host("http://127.0.0.1:9000/v1"), h("http", "127.0.0.1"));
        assert_eq!(host("http://[::1]:9000/v1"), h("http", "[::1]"));
        assert_eq!(
            host("https://api.openai.com.evil.example/v1"),
            h("https", "api.openai.com.evil.example")
        );
    }

    #[test]
    fn ambiguous_urls_have_no_host() {
        for url in [
            "https://api.openai.com@evil.example/v1",
            "https://evil.example\\@api.openai.com/",
            "https://evil.example:x@api.openai.com/",
            "https://api%2Eopenai.com/v1",
            "https://api.openai.com /v1",
            "https://api.openai.com\t/v1",
            "https:///v1",
            "api.openai.com/v1",
            "",
        ] {
            assert_eq!(host(url), None, "{url:?}");
        }
    }

    #[test]
    fn only_https_to_openai_is_openai() {
        assert!(is_openai("https://api.openai.com/v1"));
        assert!(is_openai("https://API.OPENAI.COM/v1/"));
        assert!(!is_openai("http://api.openai.com/v1"));
        assert!(!is_openai("https://api.openai.com.evil.example/v1"));
        assert!(!is_openai("https://evil.example/api.openai.com"));
        assert!(!is_openai("https://api.openai.com@evil.example/v1"));
        assert!(!is_openai("http://127.0.0.1:8080/v1"));
    }
}
