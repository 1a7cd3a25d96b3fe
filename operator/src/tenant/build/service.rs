//! The gateway's Service.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use switchboard_crds::VoiceTenant;

use super::{HTTP_PORT, HTTP_PORT_NAME, METRICS_PORT, METRICS_PORT_NAME};
use crate::labels::selector_labels;
use crate::owner::Owner;
use crate::tenant::build::BuildError;
use crate::tenant::inputs::BuildInputs;

/// Builds the ClusterIP Service `<tenant>-gateway` with the ports `http` ([`HTTP_PORT`])
/// and `metrics` ([`METRICS_PORT`]), both to the gateway's one listener.
///
/// # Errors
///
/// [`BuildError`] when the tenant lacks metadata.
pub fn build_service(vt: &VoiceTenant, _ctx: &BuildInputs) -> Result<Service, BuildError> {
    let owner = Owner::of(vt)?;
    Ok(Service {
        metadata: owner.meta(),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(selector_labels(&owner.tenant)),
            ports: Some(vec![
                port(HTTP_PORT_NAME, HTTP_PORT),
                port(METRICS_PORT_NAME, METRICS_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        // Both reach the container's one listener by its port name.
        target_port: Some(IntOrString::String(HTTP_PORT_NAME.to_string())),
        // Set explicitly: `protocol` is part of the ports list's merge key in apply.
        protocol: Some("TCP".to_string()),
        app_protocol: Some("http".to_string()),
        ..ServicePort::default()
    }
}
