//! How the operator process is configured (from the command line, or by a test). It
//! lives with the tenant controller, whose builders most of it feeds; the lease and the
//! knowledge controller read their parts of it too.

use std::time::Duration;

use crate::tenant::inputs::{
    BuildInputs, DEFAULT_DATABASE_PORT, DataVolume, GatewayResources, IngressSettings,
    NetworkPolicySettings, PublicAccess,
};

/// Everything the controllers and the leader election need besides a client.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// Gateway image for tenants that set no `spec.gateway.image`.
    pub default_image: String,
    /// Admin connection to the shared Postgres. Absent: tenants without
    /// `spec.database.url` keep the gateway's embedded SQLite.
    pub database_admin_url: Option<String>,
    /// PEM CA bundle the gateways verify their Postgres server with
    /// ([`crate::tenant::build::database_tls`]), and the operator its own connections.
    pub database_ca: Option<String>,
    /// The operator's own Postgres connections (admin URL, pgvector) use `verify-full`
    /// unless their URL names an sslmode: on for the command line (the cluster), off in
    /// [`OperatorConfig::new`] (tests against a Postgres without TLS). See
    /// [`crate::pg_tls`].
    pub database_verify_full: bool,
    /// Where the admin URL is read from when `database_admin_url` is not given: a secret
    /// in AWS Secrets Manager, read at start ([`OperatorConfig::resolve_database_admin_url`]).
    pub database_admin_secret: Option<switchboard_crds::AwsSecretsManagerRef>,
    /// AWS overrides (tests); empty: the SDK's default chain and `AWS_ENDPOINT_URL*`.
    pub aws: switchboard_aws::AwsOptions,
    /// Watch one namespace only; `None` watches all.
    pub watch_namespace: Option<String>,
    /// Public domain: a tenant's public host is `<name>.<namespace>.<domain>`.
    pub public_domain: Option<String>,
    /// Ingress class of tenant Ingresses.
    pub ingress_class: Option<String>,
    /// TLS Secret of tenant Ingresses.
    pub ingress_tls_secret: Option<String>,
    /// Run the controllers only while holding the Lease.
    pub leader_election: bool,
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease.
    pub lease_namespace: String,
    /// This replica's identity in the Lease.
    pub identity: String,
    /// How long a Lease stays valid after its last renewal (whole seconds).
    pub lease_duration: Duration,
    /// The holder renews this long before the Lease expires (whole seconds).
    pub lease_grace: Duration,
    /// Periodic re-reconcile of every tenant (writes nothing when nothing changed).
    pub requeue_interval: Duration,
    /// First retry delay after a failed reconcile.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// How long after `deletionTimestamp` the finalizer keeps retrying an unreachable
    /// database before it gives up, leaves the role and schema, and lets the tenant go.
    pub cleanup_timeout: Duration,
    /// Tenants reconciled at once.
    pub concurrency: u16,
    /// The all-MiniLM-L6-v2 model directory for knowledge bases with the local embedder
    /// (the KnowledgeBase controller loads it once, on first use).
    pub model_dir: Option<std::path::PathBuf>,
    /// S3 sources of knowledge bases: endpoint (MinIO, moto), re-list period, and which
    /// buckets each namespace may read ([`crate::access`]).
    pub s3: crate::access::S3Settings,
    /// IAM role of each tenant's gateway (IRSA), with `{namespace}` and `{name}` replaced
    /// by the tenant's (`--gateway-role-arn-template`); a tenant's `spec.aws.roleArn`
    /// takes precedence. `None`: no role annotation unless the tenant names one.
    pub gateway_role_arn_template: Option<String>,
    /// Which AWS Secrets Manager ids each namespace's knowledge bases may name for
    /// their API keys (`--secrets-manager-allow`; [`crate::access`]).
    pub secrets_manager_access: crate::access::SecretsAccess,
    /// Build a NetworkPolicy per tenant admitting these namespaces; `None`: none.
    pub gateway_network: Option<GatewayNetwork>,
    /// Resources of gateways whose tenant sets none.
    pub gateway_resources: GatewayResources,
    /// The gateways' data volume; `None`: the builder's default (`emptyDir`, 1Gi).
    pub gateway_data_volume: Option<DataVolume>,
    /// The claim of each recording tenant's upload queue; `None`: the queue stays in the
    /// data volume.
    pub gateway_recordings_volume: Option<crate::tenant::inputs::RecordingsVolume>,
    /// What a tenant may reference ([`crate::tenant::policy`]): the hosts of every URL
    /// that receives a key ([`crate::endpoints`], shared with the KnowledgeBase
    /// controller) and gateway image prefixes.
    pub references: crate::tenant::policy::ReferencePolicy,
}

/// Who may reach the gateways (`--ingress-namespace`, `--metrics-namespace`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayNetwork {
    /// The ingress controller's namespace.
    pub ingress_namespace: String,
    /// The metrics scraper's namespace.
    pub metrics_namespace: String,
}

impl OperatorConfig {
    /// The TLS policy of the operator's own Postgres connections.
    pub fn pg_tls(&self) -> crate::pg_tls::PgTls {
        crate::pg_tls::PgTls {
            verify_full_by_default: self.database_verify_full,
            ca_pem: self.database_ca.clone(),
        }
    }

    /// Defaults of the command line, with `identity` as the Lease holder; except that the
    /// gateways get no NetworkPolicy, no default resources and the builder's default data
    /// volume (the command line's defaults turn all three on: [`crate::cli::RunArgs`]).
    pub fn new(identity: impl Into<String>) -> Self {
        Self {
            default_image: crate::tenant::inputs::default_gateway_image(
                crate::tenant::inputs::DEFAULT_IMAGE_REPOSITORY,
            ),
            database_admin_url: None,
            database_ca: None,
            database_verify_full: false,
            database_admin_secret: None,
            aws: switchboard_aws::AwsOptions::default(),
            watch_namespace: None,
            public_domain: None,
            ingress_class: None,
            ingress_tls_secret: None,
            leader_election: true,
            lease_name: "switchboard-operator".into(),
            lease_namespace: "default".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            lease_grace: Duration::from_secs(5),
            requeue_interval: Duration::from_secs(600),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            cleanup_timeout: Duration::from_secs(600),
            concurrency: 16,
            model_dir: None,
            s3: crate::access::S3Settings::default(),
            secrets_manager_access: crate::access::SecretsAccess::default(),
            gateway_role_arn_template: None,
            gateway_network: None,
            gateway_resources: GatewayResources::default(),
            gateway_data_volume: None,
            gateway_recordings_volume: None,
            references: crate::tenant::policy::ReferencePolicy::default(),
        }
    }

    /// The builders' context for a tenant named `name` in `namespace`, before the
    /// dereference step adds Secret versions and the provisioned database.
    pub fn base_inputs(&self, name: &str, namespace: &str) -> BuildInputs {
        let mut ctx = BuildInputs::new(self.default_image.clone());
        ctx.public = self.public_domain.as_ref().map(|domain| PublicAccess {
            host: format!("{name}.{namespace}.{domain}"),
            // Either setting asks for an Ingress: a class alone uses no TLS (a terminating
            // load balancer in front), a TLS Secret alone uses the cluster's default class.
            ingress: (self.ingress_class.is_some() || self.ingress_tls_secret.is_some()).then(
                || IngressSettings {
                    class_name: self.ingress_class.clone(),
                    tls_secret_name: self.ingress_tls_secret.clone(),
                    annotations: Default::default(),
                },
            ),
        });
        ctx.network_policy = self
            .gateway_network
            .as_ref()
            .map(|n| NetworkPolicySettings {
                ingress_namespace: n.ingress_namespace.clone(),
                metrics_namespace: n.metrics_namespace.clone(),
                database_port: self.database_port(),
            });
        ctx.gateway_resources = self.gateway_resources.clone();
        ctx.data_volume = self.gateway_data_volume.clone();
        ctx.recordings_volume = self.gateway_recordings_volume.clone();
        ctx.database_ca = self.database_ca.clone();
        if let Some(arn) = self
            .gateway_role_arn_template
            .as_deref()
            .and_then(|t| gateway_role_arn(t, namespace, name))
        {
            ctx.service_account_annotations.insert(
                crate::tenant::build::service_account::ROLE_ARN_ANNOTATION.to_string(),
                arn,
            );
        }
        ctx
    }

    /// Reads the admin URL from Secrets Manager when it is named there and not given
    /// directly (the direct URL wins). Call before anything uses the URL.
    ///
    /// # Errors
    /// [`switchboard_aws::AwsError`] when the secret cannot be read.
    pub async fn resolve_database_admin_url(&mut self) -> Result<(), switchboard_aws::AwsError> {
        if self.database_admin_url.is_none()
            && let Some(secret) = &self.database_admin_secret
        {
            self.database_admin_url =
                Some(crate::database::admin_secret::read_admin_url(secret, &self.aws).await?);
        }
        Ok(())
    }

    /// The port of the admin URL's server (where the gateways connect), else Postgres'.
    fn database_port(&self) -> u16 {
        self.database_admin_url
            .as_deref()
            .and_then(|url| crate::database::AdminTarget::from_admin_url(url).ok())
            .map_or(DEFAULT_DATABASE_PORT, |t| t.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_host_and_ingress_from_flags() {
        let mut c = OperatorConfig::new("me");
        assert_eq!(c.base_inputs("acme", "prod").public, None);
        c.public_domain = Some("voice.example.com".into());
        let public = c.base_inputs("acme", "prod").public.unwrap();
        assert_eq!(public.host, "acme.prod.voice.example.com");
        assert_eq!(public.ingress, None);
        c.ingress_class = Some("nginx".into());
        let ingress = c
            .base_inputs("acme", "prod")
            .public
            .unwrap()
            .ingress
            .unwrap();
        assert_eq!(ingress.class_name.as_deref(), Some("nginx"));
        assert_eq!(ingress.tls_secret_name, None);
    }
}

/// The IAM role ARN `template` names for tenant `name` in `namespace` (`{namespace}` and
/// `{name}` replaced); `None` when the result is not a role ARN (a name too long for an
/// IAM role name: the tenant gets no annotation, and says so in the log).
pub fn gateway_role_arn(template: &str, namespace: &str, name: &str) -> Option<String> {
    let arn = template
        .replace("{namespace}", namespace)
        .replace("{name}", name);
    if switchboard_crds::is_iam_role_arn(&arn) {
        Some(arn)
    } else {
        tracing::warn!(
            namespace,
            tenant = name,
            arn,
            "--gateway-role-arn-template gives no valid IAM role ARN for this tenant (role names are at most 64 characters); no role annotation"
        );
        None
    }
}

/// Checks a `--gateway-role-arn-template` value: an IAM role ARN once `{namespace}` and
/// `{name}` are filled in.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_role_arn_template(text: &str) -> Result<String, String> {
    let sample = text
        .replace("{namespace}", "ns")
        .replace("{name}", "tenant");
    if switchboard_crds::is_iam_role_arn(&sample) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{text:?}: expected an IAM role ARN, e.g. arn:aws:iam::123456789012:role/switchboard-{{namespace}}-{{name}}"
        ))
    }
}

#[cfg(test)]
mod role_tests {
    use super::*;

    #[test]
    fn the_role_template_names_each_tenant_its_own_role() {
        let t = parse_role_arn_template("arn:aws:iam::123456789012:role/sb-{namespace}-{name}")
            .unwrap();
        let mut config = OperatorConfig::new("op");
        config.gateway_role_arn_template = Some(t);
        let ctx = config.base_inputs("acme", "voice");
        assert_eq!(
            ctx.service_account_annotations
                .get("eks.amazonaws.com/role-arn")
                .map(String::as_str),
            Some("arn:aws:iam::123456789012:role/sb-voice-acme")
        );
        // Too long for an IAM role name: no annotation rather than a broken one.
        let long = "n".repeat(70);
        assert!(
            config
                .base_inputs(&long, "voice")
                .service_account_annotations
                .is_empty()
        );
        assert!(parse_role_arn_template("switchboard-{name}").is_err());
        assert!(parse_role_arn_template("arn:aws:iam::123:role/{name}").is_err());
    }
}
