//! The optional Ingress through which Twilio reaches the tenant.

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use switchboard_crds::VoiceTenant;

use super::{HTTP_PORT_NAME, public_url};
use crate::owner::Owner;
use crate::tenant::build::BuildError;
use crate::tenant::inputs::BuildInputs;

/// The only paths exposed publicly: Twilio's webhooks and media streams. Metrics, health
/// and the call API stay inside the cluster.
pub const PUBLIC_PATH_PREFIX: &str = "/twilio";

/// Builds the Ingress `<tenant>-gateway` for `ctx.public.host`, or `None` when the context
/// asks for no Ingress. The host is the one in the gateway's `--public-url`, so the URL
/// Twilio signs is the URL the gateway checks.
///
/// # Errors
///
/// [`BuildError`] when the tenant lacks metadata or the host is not a DNS name.
pub fn build_ingress(vt: &VoiceTenant, ctx: &BuildInputs) -> Result<Option<Ingress>, BuildError> {
    let owner = Owner::of(vt)?;
    let Some(public) = &ctx.public else {
        return Ok(None);
    };
    let Some(settings) = &public.ingress else {
        return Ok(None);
    };
    // Validates the host the same way the Deployment's --public-url is derived.
    public_url(vt, ctx)?;
    let mut metadata = owner.meta();
    if !settings.annotations.is_empty() {
        metadata.annotations = Some(settings.annotations.clone());
    }
    Ok(Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: settings.class_name.clone(),
            tls: settings.tls_secret_name.as_ref().map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![public.host.clone()]),
                    secret_name: Some(secret.clone()),
                }]
            }),
            rules: Some(vec![IngressRule {
                host: Some(public.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(PUBLIC_PATH_PREFIX.to_string()),
                        path_type: "Prefix".to_string(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: owner.name.clone(),
                                port: Some(ServiceBackendPort {
                                    name: Some(HTTP_PORT_NAME.to_string()),
                                    number: None,
                                }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            default_backend: None,
        }),
        status: None,
    }))
}
