//! Connection caps: one for the process, one per peer address.
//!
//! Taken once per accepted TCP connection and given back when it closes (a media stream
//! holds its permit for the whole call: the permit travels inside the socket), never on
//! the per-frame path.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::metrics::EdgeMetrics;
use super::options::Networks;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// `--max-connections` connections are open.
    #[error("the process has --max-connections connections open")]
    Process,
    /// `--max-connections-per-ip` connections from this peer are open.
    #[error("this peer has --max-connections-per-ip connections open")]
    Peer,
}

impl Refused {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refused::Process => "max_connections",
            Refused::Peer => "max_connections_per_ip",
        }
    }
}

/// The caps and what is open now.
pub struct ConnectionLimits {
    process: Arc<Semaphore>,
    per_peer: usize,
    trusted: Networks,
    open: Mutex<HashMap<IpAddr, usize>>,
    metrics: EdgeMetrics,
}

/// One open connection's claim; dropping it gives it back.
pub struct ConnectionPermit {
    _process: OwnedSemaphorePermit,
    /// The peer, when it counts against the per-peer cap.
    peer: Option<(Arc<ConnectionLimits>, IpAddr)>,
    metrics: EdgeMetrics,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.metrics.open.dec();
        if let Some((limits, ip)) = self.peer.take() {
            let mut open = limits.lock();
            if let Some(n) = open.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}

impl ConnectionLimits {
    /// Caps of `max` connections for the process and `per_peer` per peer address (0: no
    /// per-peer cap); peers in `trusted` are counted only against `max`.
    pub fn new(max: usize, per_peer: usize, trusted: Networks, metrics: EdgeMetrics) -> Arc<Self> {
        Arc::new(Self {
            process: Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS))),
            per_peer,
            trusted,
            open: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Each critical section is one map update: a poisoned lock is still consistent.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a permit for a connection from `peer`, or says why not (and counts it).
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<ConnectionPermit, Refused> {
        let refused = |why: Refused| {
            self.metrics.refused.with_label_values(&[why.label()]).inc();
            why
        };
        let process = self
            .process
            .clone()
            .try_acquire_owned()
            .map_err(|_| refused(Refused::Process))?;
        let peer = peer.to_canonical();
        let counted = self.per_peer > 0 && !self.trusted.contains(peer);
        if counted {
            let mut open = self.lock();
            let n = open.entry(peer).or_insert(0);
            if *n >= self.per_peer {
                drop(open);
                return Err(refused(Refused::Peer));
            }
            *n += 1;
        }
        self.metrics.open.inc();
        Ok(ConnectionPermit {
            _process: process,
            peer: counted.then(|| (self.clone(), peer)),
            metrics: self.metrics.clone(),
        })
    }

    /// Peers with a connection open and counted against the per-peer cap.
    pub fn counted_peers(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_per_peer_cap_counts_each_address_and_spares_trusted_proxies() {
        let metrics = EdgeMetrics::new().unwrap();
        let limits = ConnectionLimits::new(5, 2, "10.0.0.0/8".parse().unwrap(), metrics.clone());
        let a1 = limits.admit(ip("203.0.113.1")).unwrap();
        let _a2 = limits.admit(ip("203.0.113.1")).unwrap();
        assert_eq!(limits.admit(ip("203.0.113.1")).err(), Some(Refused::Peer));
        // The same peer over IPv4-mapped IPv6 is the same peer.
        assert_eq!(
            limits.admit(ip("::ffff:203.0.113.1")).err(),
            Some(Refused::Peer)
        );
        let _b = limits.admit(ip("203.0.113.2")).unwrap();
        // An ingress controller: only the process cap applies.
        let _lb1 = limits.admit(ip("10.1.0.1")).unwrap();
        let _lb2 = limits.admit(ip("10.1.0.1")).unwrap();
        assert_eq!(limits.admit(ip("10.1.0.1")).err(), Some(Refused::Process));
        assert_eq!(
            limits.admit(ip("203.0.113.3")).err(),
            Some(Refused::Process)
        );
        assert_eq!(metrics.open.get(), 5);
        drop(a1);
        assert_eq!(metrics.open.get(), 4);
        let _a3 = limits.admit(ip("203.0.113.1")).unwrap();
        assert_eq!(
            metrics
                .refused
                .with_label_values(&["max_connections_per_ip"])
                .get(),
            2
        );
        assert_eq!(
            metrics
                .refused
                .with_label_values(&["max_connections"])
                .get(),
            2
        );
    }

    #[test]
    fn closed_connections_leave_no_entries() {
        let limits =
            ConnectionLimits::new(100, 3, Networks::default(), EdgeMetrics::new().unwrap());
        let permits: Vec<_> = (0..50)
            .map(|i| limits.admit(IpAddr::from([198, 51, 100, i])).unwrap())
            .collect();
        assert_eq!(limits.counted_peers(), 50);
        drop(permits);
        assert_eq!(limits.counted_peers(), 0);
    }

    #[test]
    fn zero_means_no_per_peer_cap() {
        let limits = ConnectionLimits::new(10, 0, Networks::default(), EdgeMetrics::new().unwrap());
        let _p: Vec<_> = (0..10)
            .map(|_| limits.admit(ip("127.0.0.1")).unwrap())
            .collect();
        assert_eq!(limits.admit(ip("127.0.0.1")).err(), Some(Refused::Process));
        assert_eq!(limits.counted_peers(), 0);
    }
}
