//! The ServiceAccount the gateway pods run as.

use k8s_openapi::api::core::v1::ServiceAccount;
use switchboard_crds::VoiceTenant;

use crate::tenant::build::BuildError;
use crate::tenant::inputs::BuildInputs;
use crate::tenant::owner::Owner;

/// Builds the ServiceAccount `<tenant>-gateway`, annotated from
/// `ctx.service_account_annotations` (an IAM role for S3 recordings through IRSA).
///
/// # Errors
///
/// [`BuildError`] when the tenant lacks metadata.
pub fn build_service_account(
    vt: &VoiceTenant,
    ctx: &BuildInputs,
) -> Result<ServiceAccount, BuildError> {
    let owner = Owner::of(vt)?;
    let mut metadata = owner.meta();
    if !ctx.service_account_annotations.is_empty() {
        metadata.annotations = Some(ctx.service_account_annotations.clone());
    }
    Ok(ServiceAccount {
        metadata,
        // The gateway never calls the Kubernetes API; IRSA's web identity token is
        // projected by EKS's own webhook, independently of this.
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    })
}
