//! The operator's command line (a public interface: the Helm chart uses exactly these
//! flags and variables; keep them stable).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::endpoints::{EndpointPolicy, HostList, Protocol};
use crate::tenant::config::{GatewayNetwork, OperatorConfig};
use crate::tenant::inputs::{
    DEFAULT_IMAGE_REPOSITORY, DataVolume, GatewayResources, default_gateway_image,
};

/// Turns VoiceTenants into running Switchboard gateways.
#[derive(Debug, Clone, Parser)]
#[command(name = "operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The operator's subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the controllers (with leader election by default).
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crd,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `operator run`; each is also an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(
        long,
        env = "SWITCHBOARD_OPERATOR_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub listen: SocketAddr,
    /// Gateway image of tenants that set none. Default: this operator's own version.
    #[arg(long, env = "SWITCHBOARD_GATEWAY_IMAGE")]
    pub gateway_image: Option<String>,
    /// Admin connection to the shared Postgres. Absent: tenants without
    /// `spec.database.url` keep the gateway's embedded SQLite.
    #[arg(long, env = "SWITCHBOARD_DATABASE_ADMIN_URL", hide_env_values = true)]
    pub database_admin_url: Option<String>,
    /// PEM CA bundle the gateways and the operator verify their Postgres server with (for
    /// RDS the AWS global bundle,
    /// https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem). Gateways with
    /// a database, and the operator's own admin and pgvector connections, connect with
    /// `sslmode=verify-full` unless their URL names an sslmode; without this file,
    /// against the driver's built-in roots.
    #[arg(long, env = "SWITCHBOARD_DATABASE_CA_FILE", value_parser = read_ca_bundle)]
    pub database_ca_file: Option<CaBundle>,
    /// The admin URL from AWS Secrets Manager instead (name or ARN of the secret; read at
    /// start with the AWS default credential chain, IRSA on EKS). Ignored when
    /// --database-admin-url is set.
    #[arg(long, env = "SWITCHBOARD_DATABASE_ADMIN_URL_SECRET_ID")]
    pub database_admin_url_secret_id: Option<String>,
    /// For a JSON secret: the field holding the admin URL.
    #[arg(long, env = "SWITCHBOARD_DATABASE_ADMIN_URL_SECRET_KEY")]
    pub database_admin_url_secret_key: Option<String>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "SWITCHBOARD_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Public domain: a tenant's host is `<name>.<namespace>.<domain>`.
    #[arg(long, env = "SWITCHBOARD_PUBLIC_DOMAIN")]
    pub public_domain: Option<String>,
    /// Ingress class of tenant Ingresses (with --public-domain).
    #[arg(long, env = "SWITCHBOARD_INGRESS_CLASS")]
    pub ingress_class: Option<String>,
    /// TLS Secret of tenant Ingresses (with --public-domain).
    #[arg(long, env = "SWITCHBOARD_INGRESS_TLS_SECRET")]
    pub ingress_tls_secret: Option<String>,
    /// Run the controllers only while holding the Lease.
    #[arg(
        long,
        env = "SWITCHBOARD_LEADER_ELECTION",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub leader_election: bool,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "SWITCHBOARD_LEASE_NAME",
        default_value = "switchboard-operator"
    )]
    pub lease_name: String,
    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease. Default: the host name.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a Lease stays valid after its last renewal.
    #[arg(long, env = "SWITCHBOARD_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Seconds between periodic re-reconciles of every tenant (idle ones write nothing).
    #[arg(long, env = "SWITCHBOARD_REQUEUE_SECONDS", default_value_t = 600)]
    pub requeue_seconds: u64,
    /// Seconds after deletion during which an unreachable database is retried before
    /// the finalizer gives up and leaves the role and schema.
    #[arg(
        long,
        env = "SWITCHBOARD_CLEANUP_TIMEOUT_SECONDS",
        default_value_t = 600
    )]
    pub cleanup_timeout_seconds: u64,
    /// Tenants reconciled at once.
    #[arg(long, env = "SWITCHBOARD_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// Directory of the all-MiniLM-L6-v2 model (model.safetensors, tokenizer.json,
    /// config.json) for knowledge bases with the local embedder; the image has it at
    /// /opt/switchboard/model.
    #[arg(long, env = "SWITCHBOARD_MODEL_DIR")]
    pub model_dir: Option<std::path::PathBuf>,
    /// S3-compatible endpoint (MinIO, moto) for knowledge bases' S3 sources, with
    /// path-style addressing. Default: AWS, or `AWS_ENDPOINT_URL_S3` when set.
    #[arg(long, env = "SWITCHBOARD_S3_ENDPOINT_URL")]
    pub s3_endpoint_url: Option<String>,
    /// Seconds between re-listings of knowledge bases with an S3 source (S3 cannot be
    /// watched; an unchanged bucket costs one listing and embeds nothing).
    #[arg(long, env = "SWITCHBOARD_S3_RESYNC_SECONDS", default_value_t = 300)]
    pub s3_resync_seconds: u64,
    /// Log format.
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    // Least privilege in the cluster (the gateways' NetworkPolicy, resources, data volume).
    /// Build a NetworkPolicy per tenant: ingress only from --ingress-namespace and
    /// --metrics-namespace, egress only to DNS, the database's port and 443.
    #[arg(
        long,
        env = "SWITCHBOARD_GATEWAY_NETWORK_POLICY",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub gateway_network_policy: bool,
    /// Namespace of the ingress controller (may reach the gateways' http port).
    #[arg(
        long,
        env = "SWITCHBOARD_INGRESS_NAMESPACE",
        default_value = "ingress-nginx"
    )]
    pub ingress_namespace: String,
    /// Namespace of the metrics scraper (may reach the gateways' /metrics).
    #[arg(
        long,
        env = "SWITCHBOARD_METRICS_NAMESPACE",
        default_value = "monitoring"
    )]
    pub metrics_namespace: String,
    /// Resources of gateways whose tenant sets no spec.gateway.resources, as JSON
    /// (`{"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"memory":"512Mi"}}`).
    #[arg(
        long,
        env = "SWITCHBOARD_GATEWAY_RESOURCES",
        default_value = DEFAULT_GATEWAY_RESOURCES,
        value_parser = parse_json::<GatewayResources>
    )]
    pub gateway_resources: GatewayResources,
    /// The gateways' data directory (spool, SQLite), as JSON:
    /// `{"type":"emptyDir","sizeLimit":"1Gi"}`,
    /// `{"type":"ephemeral","size":"5Gi","storageClassName":"gp3"}` (a claim per pod,
    /// deleted with it) or `{"type":"claim","claimName":"spool"}` (an existing claim in
    /// each tenant's namespace, shared, a directory per pod).
    #[arg(
        long,
        env = "SWITCHBOARD_GATEWAY_DATA_VOLUME",
        default_value = DEFAULT_GATEWAY_DATA_VOLUME,
        value_parser = parse_json::<DataVolume>
    )]
    pub gateway_data_volume: DataVolume,
    /// The claim the operator creates per recording tenant for its upload queue, shared
    /// by the tenant's gateway pods and outliving them, as JSON:
    /// `{"size":"20Gi","storageClassName":"efs-sc"}` (`accessMode` defaults to
    /// `ReadWriteMany`). Default: none (the queue stays in the data volume).
    #[arg(
        long,
        env = "SWITCHBOARD_GATEWAY_RECORDINGS_VOLUME",
        value_parser = parse_json::<crate::tenant::inputs::RecordingsVolume>
    )]
    pub gateway_recordings_volume: Option<crate::tenant::inputs::RecordingsVolume>,
    // Security policy (what tenants may reference); see docs/operations.md.
    /// Hosts a tenant's `spec.openai.realtimeUrl` may name (comma list; exact host names).
    #[arg(
        long,
        env = "SWITCHBOARD_REALTIME_HOSTS",
        value_delimiter = ',',
        default_value = "api.openai.com"
    )]
    pub realtime_hosts: Vec<String>,
    /// Hosts a `realtimeUrl` may name with plain `ws://` (comma list; default none): an
    /// in-cluster Realtime simulator in a test cluster. The OpenAI key travels in clear.
    #[arg(
        long,
        env = "SWITCHBOARD_REALTIME_INSECURE_HOSTS",
        value_delimiter = ','
    )]
    pub realtime_insecure_hosts: Vec<String>,
    /// Hosts an OpenAI-compatible HTTP API may be reached at: a tenant's
    /// `spec.analysis.baseUrl` and a knowledge base's `embedder.openai.baseUrl` (comma
    /// list; exact host names; `https://` only).
    #[arg(
        long,
        env = "SWITCHBOARD_OPENAI_HOSTS",
        value_delimiter = ',',
        default_value = "api.openai.com"
    )]
    pub openai_hosts: Vec<String>,
    /// Hosts those URLs may name with plain `http://` (comma list; default none): an
    /// in-cluster simulator in a test cluster. The key travels in clear.
    #[arg(long, env = "SWITCHBOARD_OPENAI_INSECURE_HOSTS", value_delimiter = ',')]
    pub openai_insecure_hosts: Vec<String>,
    /// Hosts a knowledge base's `backend.pinecone.apiUrl` (Pinecone's control plane) may
    /// name (comma list; exact host names; `https://` only).
    #[arg(
        long,
        env = "SWITCHBOARD_PINECONE_HOSTS",
        value_delimiter = ',',
        default_value = "api.pinecone.io"
    )]
    pub pinecone_hosts: Vec<String>,
    /// Hosts an `apiUrl` may name with plain `http://` (comma list; default none): an
    /// in-cluster Pinecone simulator or Pinecone Local in a test cluster.
    #[arg(
        long,
        env = "SWITCHBOARD_PINECONE_INSECURE_HOSTS",
        value_delimiter = ','
    )]
    pub pinecone_insecure_hosts: Vec<String>,
    /// Image prefixes a tenant's `spec.gateway.image` must start with (comma list; a
    /// repository such as `ghcr.io/acme/switchboard`, or `registry/org/` for everything
    /// under it). Default: the repository of the gateway image.
    #[arg(
        long,
        env = "SWITCHBOARD_ALLOWED_GATEWAY_IMAGES",
        value_delimiter = ','
    )]
    pub allowed_gateway_images: Vec<String>,
    /// S3 locations the knowledge bases of a namespace may read, as
    /// `NAMESPACE=bucket[/prefix]` (comma list, repeatable). Default: none.
    #[arg(
        long,
        env = "SWITCHBOARD_S3_ALLOW",
        value_delimiter = ',',
        value_parser = crate::knowledge::access::parse_grant
    )]
    pub s3_allow: Vec<crate::knowledge::access::S3Grant>,
    /// AWS Secrets Manager ids (names or ARNs) whose values the knowledge bases of a
    /// namespace may have the operator read for their embedder and Pinecone keys, as
    /// `NAMESPACE=PREFIX` (comma list, repeatable). Default: none.
    #[arg(
        long,
        env = "SWITCHBOARD_SECRETS_MANAGER_ALLOW",
        value_delimiter = ',',
        value_parser = crate::knowledge::access::parse_secret_grant
    )]
    pub secrets_manager_allow: Vec<crate::knowledge::access::SecretGrant>,
    /// IAM role of each tenant's gateway through IRSA, set as the
    /// `eks.amazonaws.com/role-arn` annotation of its ServiceAccount: an ARN in which
    /// `{namespace}` and `{name}` are replaced by the tenant's, e.g.
    /// `arn:aws:iam::123456789012:role/switchboard-{namespace}-{name}`. A tenant's
    /// `spec.aws.roleArn` takes precedence. Default: none.
    #[arg(
        long,
        env = "SWITCHBOARD_GATEWAY_ROLE_ARN_TEMPLATE",
        value_parser = crate::tenant::config::parse_role_arn_template
    )]
    pub gateway_role_arn_template: Option<String>,
}

/// `--gateway-resources` by default: Burstable pods, never evicted before BestEffort
/// ones, killed only above 512 MiB.
pub const DEFAULT_GATEWAY_RESOURCES: &str =
    r#"{"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"memory":"512Mi"}}"#;
/// `--gateway-data-volume` by default.
pub const DEFAULT_GATEWAY_DATA_VOLUME: &str = r#"{"type":"emptyDir","sizeLimit":"1Gi"}"#;

/// A PEM CA bundle read from `--database-ca-file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBundle(pub String);

/// Reads a PEM file with at least one certificate.
fn read_ca_bundle(path: &str) -> Result<CaBundle, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!("{path}: no PEM certificate in it"));
    }
    Ok(CaBundle(text))
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

impl RunArgs {
    /// The controllers' configuration from the flags.
    pub fn config(&self) -> OperatorConfig {
        let identity = self.identity.clone().unwrap_or_else(hostname);
        let mut config = OperatorConfig::new(identity);
        config.default_image = self
            .gateway_image
            .clone()
            .unwrap_or_else(|| default_gateway_image(DEFAULT_IMAGE_REPOSITORY));
        config.database_admin_url = self.database_admin_url.clone();
        config.database_ca = self.database_ca_file.as_ref().map(|c| c.0.clone());
        // The command line runs in the cluster: the operator's own connections verify
        // the server as the gateways' do.
        config.database_verify_full = true;
        config.database_admin_secret = self.database_admin_url_secret_id.clone().map(|secret_id| {
            switchboard_crds::AwsSecretsManagerRef {
                secret_id,
                key: self.database_admin_url_secret_key.clone(),
                version_stage: None,
            }
        });
        config.watch_namespace = self.watch_namespace.clone();
        config.public_domain = self.public_domain.clone();
        config.ingress_class = self.ingress_class.clone();
        config.ingress_tls_secret = self.ingress_tls_secret.clone();
        config.leader_election = self.leader_election;
        config.lease_name = self.lease_name.clone();
        config.lease_namespace = self.lease_namespace.clone();
        config.lease_duration = Duration::from_secs(self.lease_duration_seconds.max(2));
        // Renew at a third of the duration before expiry (15 s → renew every 10 s).
        config.lease_grace = Duration::from_secs((self.lease_duration_seconds / 3).max(1));
        config.requeue_interval = Duration::from_secs(self.requeue_seconds.max(1));
        config.cleanup_timeout = Duration::from_secs(self.cleanup_timeout_seconds);
        config.concurrency = self.concurrency.max(1);
        config.model_dir = self.model_dir.clone();
        // AWS_ENDPOINT_URL_S3 is the SDK's own variable; reading it here too tells the
        // client to address buckets by path, as S3-compatible stores need.
        config.s3.endpoint_url = self
            .s3_endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
            .filter(|u| !u.is_empty());
        config.s3.resync = Duration::from_secs(self.s3_resync_seconds.max(1));
        config.gateway_network = self.gateway_network_policy.then(|| GatewayNetwork {
            ingress_namespace: self.ingress_namespace.clone(),
            metrics_namespace: self.metrics_namespace.clone(),
        });
        config.gateway_resources = self.gateway_resources.clone();
        config.gateway_data_volume = Some(self.gateway_data_volume.clone());
        config.gateway_recordings_volume = self.gateway_recordings_volume.clone();
        config.references = crate::tenant::policy::ReferencePolicy::new(
            self.endpoints(),
            &self.allowed_gateway_images,
            &config.default_image,
        );
        config.s3.access = crate::knowledge::access::S3Access::new(self.s3_allow.clone());
        config.gateway_role_arn_template = self.gateway_role_arn_template.clone();
        config.secrets_manager_access =
            crate::knowledge::access::SecretsAccess::new(self.secrets_manager_allow.clone());
        config
    }

    /// The host lists of the flags ([`crate::endpoints`]).
    fn endpoints(&self) -> EndpointPolicy {
        EndpointPolicy {
            realtime: HostList::new(
                Protocol::WebSocket,
                &self.realtime_hosts,
                &self.realtime_insecure_hosts,
            ),
            openai: HostList::new(
                Protocol::Http,
                &self.openai_hosts,
                &self.openai_insecure_hosts,
            ),
            pinecone: HostList::new(
                Protocol::Http,
                &self.pinecone_hosts,
                &self.pinecone_insecure_hosts,
            ),
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "switchboard-operator".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> RunArgs {
        let mut argv = vec!["operator", "run"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(args) => *args,
            Command::Crd => panic!("parsed crd"),
        }
    }

    #[test]
    fn defaults_follow_the_contract() {
        let args = run_args(&["--identity", "op-0"]);
        assert_eq!(args.listen.to_string(), "0.0.0.0:8080");
        assert!(args.leader_election);
        assert_eq!(args.log_format, LogFormat::Text);
        let c = args.config();
        assert_eq!(c.identity, "op-0");
        assert_eq!(c.lease_name, "switchboard-operator");
        assert_eq!(
            c.default_image,
            format!(
                "ghcr.io/switchboard-dev/switchboard:{}",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(c.database_admin_url, None);
        assert_eq!(c.watch_namespace, None);
        assert_eq!(c.requeue_interval, Duration::from_secs(600));
        assert_eq!(c.s3.resync, Duration::from_secs(300));
        // Gateways: a NetworkPolicy, Burstable resources, a bounded spool by default.
        let inputs = c.base_inputs("t", "n");
        let policy = inputs.network_policy.unwrap();
        assert_eq!(policy.ingress_namespace, "ingress-nginx");
        assert_eq!(policy.metrics_namespace, "monitoring");
        assert_eq!(policy.database_port, 5432);
        assert_eq!(inputs.gateway_resources.limits["memory"], "512Mi");
        assert_eq!(
            inputs.data_volume,
            Some(DataVolume::EmptyDir {
                size_limit: "1Gi".into()
            })
        );
        let off = run_args(&[
            "--gateway-network-policy",
            "false",
            "--database-admin-url",
            "postgres://a@h:6543/d",
        ])
        .config();
        assert!(off.base_inputs("t", "n").network_policy.is_none());
        let on = run_args(&["--database-admin-url", "postgres://a@h:6543/d"]).config();
        assert_eq!(
            on.base_inputs("t", "n")
                .network_policy
                .unwrap()
                .database_port,
            6543
        );
        assert!(Cli::try_parse_from(["operator", "run", "--gateway-data-volume", "{}"]).is_err());
    }

    #[test]
    fn flags_set_the_config() {
        let c = run_args(&[
            "--leader-election",
            "false",
            "--gateway-image",
            "reg/gw:1",
            "--database-admin-url",
            "postgres://a@h/d",
            "--watch-namespace",
            "voice",
            "--public-domain",
            "example.com",
            "--ingress-class",
            "nginx",
            "--log-format",
            "json",
            "--lease-namespace",
            "ops",
            "--s3-endpoint-url",
            "http://127.0.0.1:9000",
            "--s3-resync-seconds",
            "60",
        ])
        .config();
        assert!(!c.leader_election);
        assert_eq!(c.default_image, "reg/gw:1");
        assert_eq!(c.database_admin_url.as_deref(), Some("postgres://a@h/d"));
        assert_eq!(c.watch_namespace.as_deref(), Some("voice"));
        assert_eq!(c.lease_namespace, "ops");
        assert_eq!(c.s3.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.s3.resync, Duration::from_secs(60));
        assert!(c.base_inputs("t", "n").public.unwrap().ingress.is_some());
    }

    #[test]
    fn the_database_ca_file_must_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("sb-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("ca.pem");
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        std::fs::write(&good, pem).unwrap();
        let bad = dir.join("bad.pem");
        std::fs::write(&bad, "not a certificate").unwrap();
        let c = run_args(&["--database-ca-file", good.to_str().unwrap()]).config();
        assert_eq!(c.database_ca.as_deref(), Some(pem));
        assert_eq!(c.base_inputs("t", "n").database_ca.as_deref(), Some(pem));
        for path in [bad, dir.join("missing.pem")] {
            let args = [
                "operator",
                "run",
                "--database-ca-file",
                path.to_str().unwrap(),
            ];
            assert!(Cli::try_parse_from(args).is_err(), "{}", path.display());
        }
        assert_eq!(run_args(&[]).config().database_ca, None);
        // The operator's own connections verify the server from the command line on.
        assert_eq!(
            c.pg_tls(),
            crate::pg_tls::PgTls::cluster(Some(pem.to_string()))
        );
        assert!(run_args(&[]).config().pg_tls().verify_full_by_default);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn crd_subcommand_parses() {
        let cli = Cli::try_parse_from(["operator", "crd"]).unwrap();
        assert!(matches!(cli.command, Command::Crd));
    }
}
