//! A kube client for the simulated Kubernetes API server
//! ([`switchboard_sim::kubeapi::KubeApiSim`]).

use switchboard_sim::kubeapi::KubeApiSim;

/// A kube client talking plain HTTP to `sim`, default namespace `default`, with kube's
/// built-in retry of 429/503/504 responses.
pub async fn client(sim: &KubeApiSim) -> ::kube::Client {
    client_with_retry(sim, true)
}

/// Like [`client`], with kube's retry of 429/503/504 on or off (off to see a 503 as is).
pub fn client_with_retry(sim: &KubeApiSim, retry: bool) -> ::kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = sim
        .url()
        .parse()
        .expect("the simulator's URL is a valid URI");
    let mut config = ::kube::Config::new(url);
    config.default_retry = retry;
    ::kube::Client::try_from(config).expect("a kube client for a plain-HTTP URL")
}
