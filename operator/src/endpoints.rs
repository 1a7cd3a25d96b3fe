//! Which hosts a tenant's editor may point a key (and the tenant's data) at.
//!
//! Every URL of a VoiceTenant or KnowledgeBase that receives an API key is written by
//! whoever may edit those objects, while the key is often a Secret they cannot read (or
//! one in AWS Secrets Manager read with the operator's identity). Left unchecked, the
//! editor would have the key, the callers' transcripts or the documents sent to a host of
//! their own. So each kind of endpoint has a host allow-list from the operator's flags
//! (chart values `tenantPolicy.*Hosts`):
//!
//! | kind | URLs | flags (default) |
//! |---|---|---|
//! | [`EndpointPolicy::realtime`] | `spec.openai.realtimeUrl` | `--realtime-hosts` (`api.openai.com`), `--realtime-insecure-hosts` |
//! | [`EndpointPolicy::openai`] | `spec.analysis.baseUrl`, a knowledge base's `embedder.openai.baseUrl` | `--openai-hosts` (`api.openai.com`), `--openai-insecure-hosts` |
//! | [`EndpointPolicy::pinecone`] | a knowledge base's `backend.pinecone.apiUrl` | `--pinecone-hosts` (`api.pinecone.io`), `--pinecone-insecure-hosts` |
//!
//! One list for every OpenAI-compatible HTTP API (chat completions and embeddings alike):
//! both take an OpenAI-style bearer key, and the providers an operator trusts with one
//! (OpenAI, Azure OpenAI, an in-house proxy) serve both, so two lists would always be
//! set alike. Realtime keeps its own (another protocol, which fewer providers serve) and
//! Pinecone its own (another key). A URL must use TLS (`wss://`, `https://`) to a listed
//! host; plain `ws://`/`http://` only to a host of the matching `…-insecure-hosts` list,
//! empty by default (an in-cluster simulator in a test cluster). Hosts are compared
//! exactly (lowercase, no wildcards), ports are not: the host is who gets the key.
//!
//! Pinecone's data-plane host is not in a spec: it is what the (allowed) control plane
//! answers for the index.

use switchboard_crds::endpoint::{OPENAI_API_HOST, PINECONE_API_HOST, url_host};

/// The two schemes of a kind of endpoint: with TLS and without.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `wss://`, or `ws://` to an insecure host.
    WebSocket,
    /// `https://`, or `http://` to an insecure host.
    Http,
}

impl Protocol {
    fn schemes(self) -> (&'static str, &'static str) {
        match self {
            Self::WebSocket => ("wss", "ws"),
            Self::Http => ("https", "http"),
        }
    }
}

/// The hosts one kind of endpoint may name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostList {
    /// Its schemes.
    pub protocol: Protocol,
    /// Hosts a URL with TLS may name (lowercase, exact).
    pub secure: Vec<String>,
    /// Hosts a URL without TLS may name (lowercase, exact); not implied by
    /// [`Self::secure`].
    pub insecure: Vec<String>,
}

impl HostList {
    /// The list of the flags' values (trimmed, lowercased, empty entries dropped).
    pub fn new(protocol: Protocol, secure: &[String], insecure: &[String]) -> Self {
        let hosts = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect()
        };
        Self {
            protocol,
            secure: hosts(secure),
            insecure: hosts(insecure),
        }
    }

    /// Whether `url` uses one of the protocol's schemes to a host listed for it.
    pub fn admits(&self, url: &str) -> bool {
        let (tls, plain) = self.protocol.schemes();
        match url_host(url) {
            Some(u) if u.scheme == tls => self.secure.contains(&u.host),
            Some(u) if u.scheme == plain => self.insecure.contains(&u.host),
            _ => false,
        }
    }

    /// What is allowed, for a refusal's message: `a,b` or `a,b; http:// only to c`.
    pub fn describe(&self) -> String {
        let mut listed = if self.secure.is_empty() {
            "no host".to_string()
        } else {
            format!("{}://{}", self.protocol.schemes().0, self.secure.join(","))
        };
        if !self.insecure.is_empty() {
            listed.push_str(&format!(
                "; {}:// only to {}",
                self.protocol.schemes().1,
                self.insecure.join(",")
            ));
        }
        listed
    }
}

/// Every kind of endpoint a tenant's editor may send a key to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointPolicy {
    /// `spec.openai.realtimeUrl`.
    pub realtime: HostList,
    /// `spec.analysis.baseUrl`, knowledge bases' `embedder.openai.baseUrl`.
    pub openai: HostList,
    /// Knowledge bases' `backend.pinecone.apiUrl`.
    pub pinecone: HostList,
}

impl Default for EndpointPolicy {
    /// OpenAI's and Pinecone's own hosts, with TLS only.
    fn default() -> Self {
        let only = |protocol, host: &str| HostList::new(protocol, &[host.to_string()], &[]);
        Self {
            realtime: only(Protocol::WebSocket, OPENAI_API_HOST),
            openai: only(Protocol::Http, OPENAI_API_HOST),
            pinecone: only(Protocol::Http, PINECONE_API_HOST),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_to_a_listed_host_or_plain_to_an_insecure_one() {
        let list = HostList::new(
            Protocol::Http,
            &[" API.OpenAI.com ".into(), String::new()],
            &["chat-sim.sim.svc".into()],
        );
        assert_eq!(list.secure, ["api.openai.com"]);
        for (url, ok) in [
            ("https://api.openai.com/v1", true),
            ("https://api.openai.com:8443/v1", true),
            ("http://api.openai.com/v1", false),
            ("wss://api.openai.com/v1", false),
            ("http://chat-sim.sim.svc:8080/v1", true),
            ("https://chat-sim.sim.svc/v1", false),
            ("https://api.openai.com.evil.example/v1", false),
            ("https://evil.example/api.openai.com", false),
            ("https://api.openai.com@evil.example/v1", false),
            ("https://evil.example\\@api.openai.com/v1", false),
            ("not a url", false),
        ] {
            assert_eq!(list.admits(url), ok, "{url}");
        }
        assert_eq!(
            list.describe(),
            "https://api.openai.com; http:// only to chat-sim.sim.svc"
        );
    }

    #[test]
    fn the_default_is_openai_and_pinecone_with_tls() {
        let p = EndpointPolicy::default();
        assert!(p.realtime.admits("wss://api.openai.com/v1/realtime"));
        assert!(!p.realtime.admits("https://api.openai.com/v1/realtime"));
        assert!(p.openai.admits(switchboard_crds::DEFAULT_OPENAI_BASE_URL));
        assert!(!p.openai.admits("https://api.pinecone.io"));
        assert!(p.pinecone.admits("https://api.pinecone.io"));
        assert!(!p.pinecone.admits("http://127.0.0.1:9000"));
    }
}
