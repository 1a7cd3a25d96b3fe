//! The public edge's flags: timeouts, connection caps, the drain window.

use std::time::Duration;

use ipnet::IpNet;

/// Default `--header-read-timeout-seconds`.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECONDS: u64 = 10;
/// Default `--request-timeout-seconds`: Twilio waits 15 s for a webhook's answer, so an
/// answer later than this is worth nothing to it.
pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: u64 = 10;
/// Default `--max-connections`: every live call holds one (its media stream), webhooks
/// come and go; four times the default `--max-calls` leaves room for both.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default `--max-connections-per-ip`.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
/// Default `--trusted-proxies`: the private ranges. In a cluster every peer of a gateway
/// is the ingress controller or a node forwarding a LoadBalancer Service (the tenant's
/// NetworkPolicy admits nothing else), each carrying many callers.
pub const DEFAULT_TRUSTED_PROXIES: &str =
    "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7";
/// Default `--drain-min-seconds`: the time a terminating pod takes to leave every load
/// balancer's endpoints (the operator's `ENDPOINT_PROPAGATION_SECONDS`).
pub const DEFAULT_DRAIN_MIN_SECONDS: u64 = 10;
/// Largest request body accepted, bytes. Twilio's webhook forms are a few dozen short
/// parameters, 1–3 KiB in practice (the `/twilio/voice` form with caller name and
/// STIR/SHAKEN fields stays under 4 KiB); 64 KiB is sixteen times that and still costs
/// nothing to hold. No other route takes a body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest request head (request line and headers), bytes; a bigger one is answered 431.
/// Twilio's heads are under 2 KiB.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Largest read buffer hyper keeps for a connection, bytes: its default (~400 KiB) would
/// let 4096 connections hold 1.6 GB.
pub const MAX_BUF_BYTES: usize = 64 * 1024;

/// How the gateway's HTTP server limits its peers and how long it keeps serving on
/// SIGTERM. Flattened into the gateway's [`Cli`](crate::cli::Cli).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeOptions {
    /// Time a connection may take to send a complete request head, seconds, counted from
    /// the moment it is accepted or its previous response was sent. So it is also how long
    /// a kept-alive connection may sit idle (hyper runs one timer for both): a client that
    /// trickles header bytes (slowloris) is cut here, and a load balancer in front should
    /// close idle upstream connections sooner than this.
    #[arg(
        long,
        env = "SWITCHBOARD_HEADER_READ_TIMEOUT_SECONDS",
        default_value_t = DEFAULT_HEADER_READ_TIMEOUT_SECONDS
    )]
    pub header_read_timeout_seconds: u64,
    /// Time a request (its body and the answer) may take, seconds; past it the answer is
    /// 503. Not the media streams: their HTTP request ends with the upgrade.
    #[arg(
        long,
        env = "SWITCHBOARD_REQUEST_TIMEOUT_SECONDS",
        default_value_t = DEFAULT_REQUEST_TIMEOUT_SECONDS
    )]
    pub request_timeout_seconds: u64,
    /// Open connections accepted by the process; more are refused at once (503, closed).
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Open connections accepted from one peer address (0: no per-peer cap). Peers in
    /// `--trusted-proxies` are counted only against `--max-connections`.
    #[arg(
        long,
        env = "SWITCHBOARD_MAX_CONNECTIONS_PER_IP",
        default_value_t = DEFAULT_MAX_CONNECTIONS_PER_IP
    )]
    pub max_connections_per_ip: usize,
    /// Peer networks (CIDRs, comma-separated; empty for none) that carry many callers' connections:
    /// load balancers, ingress controllers, nodes. Exempt from the per-peer cap. Headers
    /// such as `X-Forwarded-For` are never read, whatever this says.
    #[arg(
        long,
        env = "SWITCHBOARD_TRUSTED_PROXIES",
        default_value = DEFAULT_TRUSTED_PROXIES
    )]
    pub trusted_proxies: Networks,
    /// On SIGTERM, the least time the server keeps serving with readiness false, seconds,
    /// even with no call live: load balancers still send new calls here until the pod's
    /// endpoint removal reaches them.
    #[arg(
        long,
        env = "SWITCHBOARD_DRAIN_MIN_SECONDS",
        default_value_t = DEFAULT_DRAIN_MIN_SECONDS
    )]
    pub drain_min_seconds: u64,
}

impl Default for ServeOptions {
    /// The flags' defaults.
    fn default() -> Self {
        Self {
            header_read_timeout_seconds: DEFAULT_HEADER_READ_TIMEOUT_SECONDS,
            request_timeout_seconds: DEFAULT_REQUEST_TIMEOUT_SECONDS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            trusted_proxies: DEFAULT_TRUSTED_PROXIES.parse().unwrap_or_default(),
            drain_min_seconds: DEFAULT_DRAIN_MIN_SECONDS,
        }
    }
}

/// A comma-separated list of networks (`10.0.0.0/8,fc00::/7`); empty is none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(pub Vec<IpNet>);

impl std::str::FromStr for Networks {
    type Err = ipnet::AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Networks)
    }
}

impl Networks {
    /// Whether `ip` is in one of the networks (an IPv4-mapped IPv6 address counts as its
    /// IPv4 address: a dual-stack listener sees IPv4 peers that way).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }
}

impl ServeOptions {
    /// `--header-read-timeout-seconds` (at least 1 s: zero would cut every connection).
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_seconds.max(1))
    }

    /// `--request-timeout-seconds` (at least 1 s).
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds.max(1))
    }

    /// `--drain-min-seconds`.
    pub fn drain_min(&self) -> Duration {
        Duration::from_secs(self.drain_min_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        serve: ServeOptions,
    }

    #[test]
    fn default_matches_the_flags_defaults() {
        let parsed = Wrap::try_parse_from(["x"]).map(|w| w.serve);
        let parsed = parsed.unwrap_or_else(|e| panic!("{e}"));
        let d = ServeOptions::default();
        assert_eq!(format!("{parsed:?}"), format!("{d:?}"));
        assert_eq!(d.trusted_proxies.0.len(), 5);
        assert!(
            d.trusted_proxies
                .contains("10.1.2.3".parse().unwrap_or_else(|e| panic!("{e}")))
        );
        assert!(
            d.trusted_proxies.contains(
                "::ffff:192.168.0.9"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}"))
            )
        );
        assert!(
            !d.trusted_proxies
                .contains("127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")))
        );
        assert!(
            !d.trusted_proxies
                .contains("203.0.113.7".parse().unwrap_or_else(|e| panic!("{e}")))
        );
    }

    #[test]
    fn trusted_proxies_can_be_emptied_and_bad_cidrs_are_refused() {
        let w = Wrap::try_parse_from(["x", "--trusted-proxies", ""]);
        assert!(w.is_ok_and(|w| w.serve.trusted_proxies.0.is_empty()));
        assert!(Wrap::try_parse_from(["x", "--trusted-proxies", "10.0.0.0/33"]).is_err());
        assert!(Wrap::try_parse_from(["x", "--trusted-proxies", "203.0.113.7/32,::1/128"]).is_ok());
    }
}
