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
//! - `spec.gateway.image` must start with one of `--allowed-gateway-images`
//!   (`GatewayImageNotAllowed`);
//! - `spec.twilio.validateSignatures: false` is refused (`UnsignedWebhooksRefused`): it
//!   exists for a gateway on a laptop, never for one the operator deploys;
//! - every Secret the gateway reads must carry [`crate::labels::USABLE_SECRET_LABEL`]
//!   (checked by the dereference step, which reads the Secrets: `SecretNotUsable`).

use switchboard_crds::VoiceTenantSpec;

use super::error::TenantError;

/// The realtime host allowed by default.
pub const DEFAULT_REALTIME_HOST: &str = "api.openai.com";

/// What tenants may reference, from the operator's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferencePolicy {
    /// Host names `spec.openai.realtimeUrl` may name (lowercase, exact).
    pub realtime_hosts: Vec<String>,
    /// Host names `spec.openai.realtimeUrl` may name with plain `ws://` (lowercase,
    /// exact); empty by default. Not implied by [`Self::realtime_hosts`].
    pub realtime_insecure_hosts: Vec<String>,
    /// Prefixes `spec.gateway.image` must start with (see [`image_allowed`]).
    pub gateway_images: Vec<String>,
}

impl Default for ReferencePolicy {
    /// `api.openai.com`, and images of the operator's default repository.
    fn default() -> Self {
        Self {
            realtime_hosts: vec![DEFAULT_REALTIME_HOST.to_string()],
            realtime_insecure_hosts: Vec::new(),
            gateway_images: vec![super::inputs::DEFAULT_IMAGE_REPOSITORY.to_string()],
        }
    }
}

impl ReferencePolicy {
    /// The policy of the flags: `realtime_hosts`, and `gateway_images` or, when empty,
    /// the repository of `default_image` (the operator's own gateway image).
    pub fn new(realtime_hosts: &[String], gateway_images: &[String], default_image: &str) -> Self {
        Self::with_insecure(realtime_hosts, &[], gateway_images, default_image)
    }

    /// [`Self::new`], plus the hosts a `ws://` URL may name (`--realtime-insecure-hosts`).
    pub fn with_insecure(
        realtime_hosts: &[String],
        insecure_hosts: &[String],
        gateway_images: &[String],
        default_image: &str,
    ) -> Self {
        let clean = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let mut images = clean(gateway_images);
        if images.is_empty() {
            images.push(repository(default_image).to_string());
        }
        let hosts = |v: &[String]| -> Vec<String> {
            clean(v)
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect()
        };
        Self {
            realtime_hosts: hosts(realtime_hosts),
            realtime_insecure_hosts: hosts(insecure_hosts),
            gateway_images: images,
        }
    }

    /// Checks the spec's references (everything but Secrets).
    ///
    /// # Errors
    ///
    /// [`TenantError::RealtimeHostNotAllowed`], [`TenantError::GatewayImageNotAllowed`],
    /// [`TenantError::UnsignedWebhooksRefused`].
    pub fn admit(&self, spec: &VoiceTenantSpec) -> Result<(), TenantError> {
        if !spec.twilio.validate_signatures {
            return Err(TenantError::UnsignedWebhooksRefused);
        }
        if let Some(url) = &spec.openai.realtime_url {
            let allowed = match ws_host(url) {
                Some((true, host)) => self.realtime_hosts.contains(&host),
                Some((false, host)) => self.realtime_insecure_hosts.contains(&host),
                None => false,
            };
            if !allowed {
                let mut listed = self.realtime_hosts.join(",");
                if !self.realtime_insecure_hosts.is_empty() {
                    listed.push_str(&format!(
                        "; ws:// only to {}",
                        self.realtime_insecure_hosts.join(",")
                    ));
                }
                return Err(TenantError::RealtimeHostNotAllowed {
                    url: url.clone(),
                    allowed: listed,
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

/// Whether a `ws(s)://` URL is `wss://`, and its lowercase host; `None` for another
/// scheme, a user part, or no host.
fn ws_host(url: &str) -> Option<(bool, String)> {
    let lower = |n: usize| url.get(..n).map(str::to_ascii_lowercase);
    let (secure, rest) = if lower(6).as_deref() == Some("wss://") {
        (true, &url[6..])
    } else if lower(5).as_deref() == Some("ws://") {
        (false, &url[5..])
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains(['@', '\\', '[', ' ']) {
        return None;
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) => return None,
        None => authority,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some((secure, host))
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
            &["api.openai.com".into()],
            &[],
            "ghcr.io/switchboard-dev/switchboard:1.2.3",
        )
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
        let with = ReferencePolicy::with_insecure(
            &["api.openai.com".into()],
            &[sim.into()],
            &[],
            "ghcr.io/switchboard-dev/switchboard:1",
        );
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
}
