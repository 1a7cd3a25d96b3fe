//! `spec.aws`: the AWS identity of the tenant's gateway.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The pattern of an IAM role ARN (partition, 12-digit account, optional path, name):
/// the same rule as [`is_iam_role_arn`], for the API server.
pub const IAM_ROLE_ARN_PATTERN: &str = r"^arn:aws(-cn|-us-gov|-iso|-iso-b)?:iam::[0-9]{12}:role/([A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]{1,64}$";

/// The AWS identity of the tenant's gateway pods.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSpec {
    /// The IAM role the gateway pods assume through IRSA (EKS IAM Roles for Service
    /// Accounts): set as the `eks.amazonaws.com/role-arn` annotation of the tenant's
    /// gateway ServiceAccount, instead of the operator's `--gateway-role-arn-template`.
    /// The role's trust policy must admit the ServiceAccount
    /// `system:serviceaccount:<namespace>:<tenant>-gateway`: naming a role does not grant
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IAM_ROLE_ARN_PATTERN), length(max = 2048))]
    pub role_arn: Option<String>,
}

/// Whether `s` is an IAM role ARN (`arn:<partition>:iam::<12 digits>:role/[path/]name`).
pub fn is_iam_role_arn(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("arn:") else {
        return false;
    };
    let Some((partition, rest)) = rest.split_once(':') else {
        return false;
    };
    if !["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"].contains(&partition) {
        return false;
    }
    let Some(rest) = rest.strip_prefix("iam::") else {
        return false;
    };
    let Some((account, resource)) = rest.split_once(':') else {
        return false;
    };
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Some(path) = resource.strip_prefix("role/") else {
        return false;
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    let segments: Vec<&str> = path.split('/').collect();
    let name = segments.last().copied().unwrap_or_default();
    s.len() <= 2048
        && (1..=64).contains(&name.len())
        && segments
            .iter()
            .all(|seg| !seg.is_empty() && seg.chars().all(allowed))
}

#[cfg(test)]
mod tests {
    use super::is_iam_role_arn;

    #[test]
    fn role_arns_are_told_from_other_text() {
        for ok in [
            "arn:aws:iam::123456789012:role/switchboard-acme",
            "arn:aws:iam::123456789012:role/voice/tenants/acme_gw@prod",
            "arn:aws-us-gov:iam::123456789012:role/x",
        ] {
            assert!(is_iam_role_arn(ok), "{ok}");
        }
        for bad in [
            "",
            "switchboard-acme",
            "arn:aws:iam::12345678901:role/short-account",
            "arn:aws:iam::123456789012:user/not-a-role",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a//b",
            "arn:aws:iam::123456789012:role/has space",
            "arn:evil:iam::123456789012:role/x",
            &format!("arn:aws:iam::123456789012:role/{}", "n".repeat(65)),
        ] {
            assert!(!is_iam_role_arn(bad), "{bad}");
        }
    }
}
