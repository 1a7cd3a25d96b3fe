//! The ServiceAccount the gateway pods run as.

use k8s_openapi::api::core::v1::ServiceAccount;
use switchboard_crds::VoiceTenant;

use crate::owner::Owner;
use crate::tenant::build::BuildError;
use crate::tenant::inputs::BuildInputs;

/// The annotation EKS reads the IAM role of a ServiceAccount's pods from (IRSA).
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// Builds the ServiceAccount `<tenant>-gateway`, annotated from
/// `ctx.service_account_annotations` (the operator's `--gateway-role-arn-template`) and
/// the tenant's `spec.aws.roleArn`, which names the IRSA role instead (its trust policy
/// decides whether this ServiceAccount may assume it).
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
    let mut annotations = ctx.service_account_annotations.clone();
    if let Some(arn) = vt.spec.aws.as_ref().and_then(|a| a.role_arn.as_ref()) {
        annotations.insert(ROLE_ARN_ANNOTATION.to_string(), arn.clone());
    }
    if !annotations.is_empty() {
        metadata.annotations = Some(annotations);
    }
    Ok(ServiceAccount {
        metadata,
        // The gateway never calls the Kubernetes API; IRSA's web identity token is
        // projected by EKS's own webhook, independently of this.
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    })
}
