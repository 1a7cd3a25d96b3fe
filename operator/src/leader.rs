//! Leader election: the controllers run only while this replica holds the
//! `coordination.k8s.io` Lease (kube-lease-manager), and stop as soon as it is lost.
//!
//! A standby replica keeps trying to take the Lease; it reports ready (`/readyz`), so a
//! rolling update of the operator's Deployment proceeds. On shutdown the leader stops
//! its controllers (finishing the reconciles in flight) and releases the Lease, so the
//! standby takes over without waiting for the Lease to expire.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;

use crate::metrics::{Health, Metrics};
use crate::run::{RunError, run_controllers};
use crate::tenant::config::OperatorConfig;

/// Runs the operator until `shutdown` resolves: the controllers directly when leader
/// election is off, otherwise whenever this replica holds the Lease.
///
/// # Errors
///
/// [`RunError`] when the controllers cannot start (unusable admin URL) or the Lease
/// cannot be created or read at start.
pub async fn run(
    client: Client,
    config: OperatorConfig,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    if !config.leader_election {
        metrics.leader.set(1);
        let result =
            run_controllers(client, config, metrics.clone(), health, stopped(stop_rx)).await;
        metrics.leader.set(0);
        return result;
    }
    lead(client, config, metrics, health, stop_rx).await
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens after it sent `true`.
    let _ = stop.wait_for(|s| *s).await;
}

async fn lead(
    client: Client,
    config: OperatorConfig,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let params = LeaseParams::new(
        config.identity.clone(),
        config.lease_duration.as_secs().max(1),
        config.lease_grace.as_secs().max(1),
    );
    let manager = LeaseManagerBuilder::new(client.clone(), config.lease_name.clone())
        .with_namespace(config.lease_namespace.clone())
        .with_parameters(params)
        .build()
        .await?;
    let (mut leading, lease_task) = manager.watch().await;
    health.set_standby(true);
    tracing::info!(identity = %config.identity, lease = %config.lease_name, "waiting for the leader Lease");

    loop {
        // Wait to become leader (or to be told to stop).
        tokio::select! {
            changed = leading.wait_for(|l| *l) => {
                if changed.is_err() {
                    tracing::error!("leader election stopped unexpectedly");
                    break;
                }
            }
            _ = stop.wait_for(|s| *s) => break,
        }
        tracing::info!(identity = %config.identity, "became leader; starting controllers");
        health.set_standby(false);
        metrics.leader.set(1);

        let (lost_tx, lost_rx) = watch::channel(false);
        let mut controllers = tokio::spawn(run_controllers(
            client.clone(),
            config.clone(),
            metrics.clone(),
            health.clone(),
            stopped(lost_rx),
        ));
        let mut finished = None;
        let shutting_down = tokio::select! {
            lost = leading.wait_for(|l| !*l) => {
                if lost.is_ok() {
                    tracing::warn!(identity = %config.identity, "lost the leader Lease; stopping controllers");
                }
                false
            }
            _ = stop.wait_for(|s| *s) => true,
            result = &mut controllers => { finished = Some(result); false }
        };
        let _ = lost_tx.send(true);
        let result = match finished {
            Some(result) => result,
            None => controllers.await,
        };
        metrics.leader.set(0);
        health.set_standby(true);
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                drop(leading);
                let _ = lease_task.await;
                return Err(e);
            }
            Err(e) => tracing::error!(error = %e, "controller task failed"),
        }
        if shutting_down || *stop.borrow() {
            break;
        }
        // Controllers ended while still leading (their watches broke): give the Lease
        // up so a healthier replica can lead, then compete again.
        if *leading.borrow() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    health.set_standby(false);
    // Closing the channel makes the lease task release the Lease and exit.
    drop(leading);
    match lease_task.await {
        Ok(Ok(_)) => tracing::info!("released the leader Lease"),
        Ok(Err(e)) => tracing::warn!(error = %e, "releasing the leader Lease failed"),
        Err(e) => tracing::warn!(error = %e, "lease task failed"),
    }
    Ok(())
}
