//! What a tenant's editor may point the operator and the gateway at: a pure check of the
//! spec against the operator's configuration, run before anything is applied.
//!
//! A VoiceTenant's editor chooses where the gateway connects and what it sends there.
//! Unchecked, they could have it send a Secret of the namespace as a bearer token to a
//! host of their own, run any image under the tenant's ServiceAccount, or accept
//! unsigned webhooks (an open relay spending the tenant's OpenAI budget). So:
//!
//! - `spec.openai.realtimeUrl` must be `wss://` to a host of `--realtime-hosts`
//!   (`RealtimeHostNotAllowed`); plain `ws://` only to a host of
//!   `--realtime-insecure-hosts`, empty by default, for an in-cluster simulator in a test
//!   cluster (tests/e2e/kind.sh): the tenant's OpenAI key travels in clear to it;
//! - `spec.analysis.baseUrl` (default `https://api.openai.com/v1`) must be `https://` to a
//!   host of `--openai-hosts` (`AnalysisHostNotAllowed`; `http://` only to
//!   `--openai-insecure-hosts`), and without an `apiKey` of its own it must be OpenAI's
//!   (`AnalysisApiKeyRequired`): the tenant's OpenAI key is lent to the analysis for
//!   OpenAI's host only;
//! - the knowledge bases the agent searches must name allowed hosts too
//!   ([`ReferencePolicy::admit_knowledge`]: the gateway searches with their keys);
//! - `spec.gateway.image` must start with one of `--allowed-gateway-images`
//!   (`GatewayImageNotAllowed`);
//! - `spec.twilio.validateSignatures: false` is refused (`UnsignedWebhooksRefused`): it
//!   exists for a gateway on a laptop, never for one the operator deploys;
//! - every Secret the gateway reads must carry [`crate::labels::USABLE_SECRET_LABEL`]
//!   (checked by the dereference step, which reads the Secrets: `SecretNotUsable`).
//!
//! The host lists are [`crate::endpoints`]' (shared with the KnowledgeBase controller).

use switchboard_crds::{KnowledgeBase, VoiceTenantSpec};

use super::error::TenantError;
use crate::endpoints::EndpointPolicy;

/// The realtime host allowed by default.
pub const DEFAULT_REALTIME_HOST: &str = switchboard_crds::endpoint::OPENAI_API_HOST;

/// What tenants may reference, from the operator's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferencePolicy {
    /// The hosts each kind of URL may name.
    pub endpoints: EndpointPolicy,
    /// Prefixes `spec.gateway.image` must start with (see [`image_allowed`]).
    pub gateway_images: Vec<String>,
}

impl Default for ReferencePolicy {
    /// OpenAI's and Pinecone's hosts, and images of the operator's default repository.
    fn default() -> Self {
        Self {
            endpoints: EndpointPolicy::default(),
            gateway_images: vec![super::inputs::DEFAULT_IMAGE_REPOSITORY.to_string()],
        }
    }
}

impl ReferencePolicy {
    /// The policy of the flags: `endpoints`, and `gateway_images` or, when empty, the
    /// repository of `default_image` (the operator's own gateway image).
    pub fn new(endpoints: EndpointPolicy, gateway_images: &[String], default_image: &str) -> Self {
        let mut images: Vec<String> = gateway_images
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if images.is_empty() {
            images.push(repository(default_image).to_string());
        }
        Self {
            endpoints,
            gateway_images: images,
        }
    }

    /// Checks the spec's references (everything but Secrets and knowledge bases).
    ///
    /// # Errors
    ///
    /// [`TenantError::UnsignedWebhooksRefused`], [`TenantError::RealtimeHostNotAllowed`],
    /// [`TenantError::AnalysisHostNotAllowed`], [`TenantError::AnalysisApiKeyRequired`],
    /// [`TenantError::GatewayImageNotAllowed`].
    pub fn admit(&self, spec: &VoiceTenantSpec) -> Result<(), TenantError> {
        if !spec.twilio.validate_signatures {
            return Err(TenantError::UnsignedWebhooksRefused);
        }
        if let Some(url) = &spec.openai.realtime_url
            && !self.endpoints.realtime.admits(url)
        {
            return Err(TenantError::RealtimeHostNotAllowed {
                url: url.clone(),
                allowed: self.endpoints.realtime.describe(),
            });
        }
        if let Some(analysis) = &spec.analysis {
            let url = analysis.effective_base_url();
            if !self.endpoints.openai.admits(url) {
                return Err(TenantError::AnalysisHostNotAllowed {
                    url: url.to_string(),
                    allowed: self.endpoints.openai.describe(),
                });
            }
            if analysis.borrows_openai_key_elsewhere() {
                return Err(TenantError::AnalysisApiKeyRequired {
                    url: url.to_string(),
                });
            }
        }
        if let Some(image) = spec.gateway.as_ref().and_then(|g| g.image.as_ref())
            && !self.gateway_images.iter().any(|p| image_allowed(image, p))
        {
            return Err(TenantError::GatewayImageNotAllowed {
                image: image.clone(),
                allowed: self.gateway_images.join(","),
            });
        }
        Ok(())
    }

    /// Checks a knowledge base the tenant's gateway would search: the gateway embeds each
    /// question with its embedder and queries its index, with its keys, so its URLs must
    /// name allowed hosts as the KnowledgeBase controller's must
    /// ([`crate::knowledge::target::check_endpoints`]).
    ///
    /// # Errors
    ///
    /// [`TenantError::KnowledgeBaseRefused`].
    pub fn admit_knowledge(&self, kb: &KnowledgeBase) -> Result<(), TenantError> {
        crate::knowledge::target::check_endpoints(kb, &self.endpoints).map_err(|source| {
            TenantError::KnowledgeBaseRefused {
                kb: kb.metadata.name.clone().unwrap_or_default(),
                source,
            }
        })
    }
}

/// The repository of an image reference: without its `@digest` and `:tag` (a `:` after
/// the last `/` is a tag, before it a registry port).
pub fn repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rfind('/').map_or(0, |i| i + 1);
    match image[last..].find(':') {
        Some(i) => &image[..last + i],
        None => image,
    }
}

/// Whether `image` is under `prefix`: the prefix is a repository (then the image is it,
/// with any tag or digest), or ends in `/` (then everything under it).
pub fn image_allowed(image: &str, prefix: &str) -> bool {
    if prefix.ends_with('/') {
        return image.starts_with(prefix) && image.len() > prefix.len();
    }
    repository(image) == prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VoiceTenantSpec {
        switchboard_crds::parse_tenant(
            r#"
apiVersion: voice.switchboard.dev/v1alpha1
kind: VoiceTenant
metadata: { name: t, namespace: n }
spec:
  displayName: T
  phoneNumbers: ["+15005550006"]
  twilio:
    accountSid: ACe5b9b91d74144c1eab5502f239bd8ed9
    authToken: { secretKeyRef: { name: s, key: twilio } }
  openai:
    apiKey: { secretKeyRef: { name: s, key: openai } }
"#,
        )
        .unwrap()
        .spec
    }

    fn policy() -> ReferencePolicy {
        ReferencePolicy::new(
            EndpointPolicy::default(),
            &[],
            "ghcr.io/switchboard-dev/switchboard:1.2.3",
        )
    }

    /// The default policy, plus `insecure` for plain `ws://` Realtime and `http://`
    /// OpenAI-compatible and Pinecone URLs.
    fn with_insecure(insecure: &str) -> ReferencePolicy {
        let mut endpoints = EndpointPolicy::default();
        for list in [
            &mut endpoints.realtime,
            &mut endpoints.openai,
            &mut endpoints.pinecone,
        ] {
            list.insecure = vec![insecure.to_string()];
        }
        ReferencePolicy::new(endpoints, &[], "ghcr.io/switchboard-dev/switchboard:1")
    }

    fn category(spec: &VoiceTenantSpec) -> Option<&'static str> {
        policy().admit(spec).err().map(|e| e.category())
    }

    #[test]
    fn realtime_urls_must_be_wss_to_an_allowed_host() {
        let mut s = spec();
        assert_eq!(category(&s), None);
        for (url, ok) in [
            ("wss://api.openai.com/v1/realtime?model=x", true),
            ("WSS://API.OpenAI.com:443/v1/realtime", true),
            ("ws://api.openai.com/v1/realtime", false),
            ("https://api.openai.com/v1/realtime", false),
            ("wss://api.openai.com.evil.example/v1", false),
            ("wss://evil.example/api.openai.com", false),
            ("wss://api.openai.com@evil.example/", false),
            ("wss://evil.example\\@api.openai.com/", false),
            ("wss://evil.example:x@api.openai.com/", false),
            ("wss:///v1", false),
        ] {
            s.openai.realtime_url = Some(url.into());
            let expected = (!ok).then_some("RealtimeHostNotAllowed");
            assert_eq!(category(&s), expected, "{url}");
        }
    }

    #[test]
    fn plain_ws_only_to_a_listed_insecure_host() {
        let mut s = spec();
        let sim = "realtime-sim.sim.svc";
        let with = with_insecure(sim);
        for (url, ok_default, ok_with) in [
            ("ws://realtime-sim.sim.svc:8081/v1/realtime", false, true),
            ("WS://Realtime-Sim.sim.svc:8081/v1/realtime", false, true),
            ("wss://realtime-sim.sim.svc:8081/v1/realtime", false, false),
            ("ws://api.openai.com/v1/realtime", false, false),
            ("wss://api.openai.com/v1/realtime", true, true),
            ("ws://evil.example@realtime-sim.sim.svc/", false, false),
            ("ws://realtime-sim.sim.svc.evil.example/", false, false),
        ] {
            s.openai.realtime_url = Some(url.into());
            assert_eq!(policy().admit(&s).is_ok(), ok_default, "default: {url}");
            assert_eq!(with.admit(&s).is_ok(), ok_with, "with {sim}: {url}");
        }
        s.openai.realtime_url = Some("ws://x.example/".into());
        let message = with.admit(&s).unwrap_err().to_string();
        assert!(
            message.contains("ws:// only to realtime-sim.sim.svc"),
            "{message}"
        );
    }

    #[test]
    fn gateway_images_must_be_under_an_allowed_prefix() {
        assert_eq!(repository("ghcr.io/a/b:1.0"), "ghcr.io/a/b");
        assert_eq!(
            repository("localhost:5000/a/b@sha256:00"),
            "localhost:5000/a/b"
        );
        assert_eq!(repository("localhost:5000/a"), "localhost:5000/a");
        let mut s = spec();
        for (image, ok) in [
            ("ghcr.io/switchboard-dev/switchboard:1.2.4", true),
            ("ghcr.io/switchboard-dev/switchboard@sha256:abcd", true),
            ("ghcr.io/switchboard-dev/switchboard-evil:1", false),
            ("ghcr.io/switchboard-dev/switchboard/x:1", false),
            ("docker.io/attacker/switchboard:1", false),
        ] {
            s.gateway = Some(switchboard_crds::GatewaySpec {
                image: Some(image.into()),
                ..Default::default()
            });
            let expected = (!ok).then_some("GatewayImageNotAllowed");
            assert_eq!(category(&s), expected, "{image}");
        }
        assert!(image_allowed(
            "registry.example/team/gw:1",
            "registry.example/team/"
        ));
        assert!(!image_allowed(
            "registry.example/team",
            "registry.example/team/"
        ));
    }

    #[test]
    fn unsigned_webhooks_are_refused() {
        let mut s = spec();
        s.twilio.validate_signatures = false;
        assert_eq!(category(&s), Some("UnsignedWebhooksRefused"));
    }

    fn analysis(base_url: Option<&str>, api_key: bool) -> switchboard_crds::AnalysisSpec {
        let mut yaml = "model: gpt-4o-mini\n".to_string();
        if let Some(url) = base_url {
            yaml.push_str(&format!("baseUrl: {url}\n"));
        }
        if api_key {
            yaml.push_str("apiKey: { secretKeyRef: { name: s, key: analysis } }\n");
        }
        serde_saphyr::from_str(&yaml).unwrap()
    }

    #[test]
    fn analysis_urls_must_be_https_to_an_allowed_host() {
        let mut s = spec();
        for (url, key, expected) in [
            // OpenAI's own host: the tenant's OpenAI key may be lent.
            (None, false, None),
            (Some("https://api.openai.com/v1"), false, None),
            (Some("https://api.openai.com/v1"), true, None),
            // Anywhere else: refused, whatever key it names.
            (
                Some("https://evil.example/v1"),
                true,
                Some("AnalysisHostNotAllowed"),
            ),
            (
                Some("https://evil.example/v1"),
                false,
                Some("AnalysisHostNotAllowed"),
            ),
            (
                Some("http://api.openai.com/v1"),
                true,
                Some("AnalysisHostNotAllowed"),
            ),
            (
                Some("https://api.openai.com@evil.example/v1"),
                true,
                Some("AnalysisHostNotAllowed"),
            ),
            (
                Some("http://chat-sim.sim.svc/v1"),
                true,
                Some("AnalysisHostNotAllowed"),
            ),
        ] {
            s.analysis = Some(analysis(url, key));
            assert_eq!(category(&s), expected, "{url:?} key {key}");
        }
        let message = policy().admit(&s).unwrap_err().to_string();
        assert!(message.contains("--openai-hosts"), "{message}");
    }

    #[test]
    fn the_openai_key_is_lent_only_to_openai() {
        let mut s = spec();
        let sim = with_insecure("chat-sim.sim.svc");
        // An allowed host that is not OpenAI's: only with a key of its own.
        s.analysis = Some(analysis(Some("http://chat-sim.sim.svc/v1"), true));
        assert!(sim.admit(&s).is_ok());
        s.analysis = Some(analysis(Some("http://chat-sim.sim.svc/v1"), false));
        let err = sim.admit(&s).unwrap_err();
        assert_eq!(err.category(), "AnalysisApiKeyRequired", "{err}");
        assert!(err.to_string().contains("spec.analysis.apiKey"), "{err}");
    }

    fn knowledge_base(extra: &str) -> KnowledgeBase {
        switchboard_crds::parse_knowledge_base(&format!(
            r#"
apiVersion: voice.switchboard.dev/v1alpha1
kind: KnowledgeBase
metadata: {{ name: faq, namespace: n }}
spec:
  tenant: t
{extra}  sources:
    - inline: {{ documents: [{{ title: Hours, content: Open 9 to 5. }}] }}
"#
        ))
        .unwrap()
    }

    #[test]
    fn knowledge_bases_must_name_allowed_hosts() {
        let embedder = |url: &str| {
            knowledge_base(&format!(
                "  embedder:\n    type: openai\n    openai:\n      baseUrl: {url}\n      apiKey: {{ secretKeyRef: {{ name: s, key: e }} }}\n"
            ))
        };
        let pinecone = |url: Option<&str>| {
            let api_url = url
                .map(|u| format!("      apiUrl: {u}\n"))
                .unwrap_or_default();
            knowledge_base(&format!(
                "  backend:\n    type: pinecone\n    pinecone:\n      index: faq\n      cloud: aws\n      region: us-east-1\n{api_url}      apiKey: {{ secretKeyRef: {{ name: s, key: p }} }}\n"
            ))
        };
        let refused = |kb: &KnowledgeBase| {
            policy()
                .admit_knowledge(kb)
                .err()
                .map(|e| (e.category(), e.to_string()))
        };
        assert_eq!(refused(&knowledge_base("")), None);
        assert_eq!(refused(&embedder("https://api.openai.com/v1")), None);
        assert_eq!(refused(&pinecone(None)), None);
        assert_eq!(refused(&pinecone(Some("https://api.pinecone.io"))), None);
        let (category, message) = refused(&embedder("https://evil.example/v1")).unwrap();
        assert_eq!(category, "EmbedderHostNotAllowed");
        assert!(message.starts_with("knowledge base faq: "), "{message}");
        for url in ["https://evil.example", "http://api.pinecone.io"] {
            let (category, _) = refused(&pinecone(Some(url))).unwrap();
            assert_eq!(category, "PineconeHostNotAllowed", "{url}");
        }
        let sims = with_insecure("127.0.0.1");
        assert!(
            sims.admit_knowledge(&embedder("http://127.0.0.1:9/v1"))
                .is_ok()
        );
        assert!(
            sims.admit_knowledge(&pinecone(Some("http://127.0.0.1:9")))
                .is_ok()
        );
    }
}
