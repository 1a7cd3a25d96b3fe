//! The gateway's HorizontalPodAutoscaler (autoscaling/v2).

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
    MetricIdentifier, MetricSpec, MetricTarget, PodsMetricSource, ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use switchboard_crds::VoiceTenant;

use crate::owner::Owner;
use crate::tenant::build::BuildError;
use crate::tenant::inputs::BuildInputs;

/// CPU utilisation target when the tenant sets none, percent of the CPU request. Below
/// Kubernetes' implicit 80 %: relay latency suffers before the CPU is saturated.
pub const DEFAULT_CPU_TARGET: i32 = 70;
/// Active calls per pod the autoscaler aims for, percent of the pod's call capacity
/// (`maxCallsPerPod`), leaving room for the calls that arrive while a new pod starts.
pub const ACTIVE_CALLS_TARGET_PERCENT: u32 = 70;
/// The gateway's own `--max-calls` default, the capacity of a pod when the tenant sets
/// no `maxCallsPerPod`.
pub const GATEWAY_DEFAULT_MAX_CALLS: u32 = 1000;

/// Builds the HorizontalPodAutoscaler `<tenant>-gateway`, or `None` when the tenant does
/// not autoscale (the controller then prunes an existing one).
///
/// It scales on CPU utilisation and, when `ctx.active_calls_metric` names the gateway's
/// active-calls gauge in the custom metrics API, also on active calls per pod.
///
/// # Errors
///
/// [`BuildError`] when the tenant lacks metadata.
pub fn build_hpa(
    vt: &VoiceTenant,
    ctx: &BuildInputs,
) -> Result<Option<HorizontalPodAutoscaler>, BuildError> {
    let owner = Owner::of(vt)?;
    let Some(gateway) = &vt.spec.gateway else {
        return Ok(None);
    };
    let Some(autoscaling) = &gateway.autoscaling else {
        return Ok(None);
    };
    let mut metrics = vec![MetricSpec {
        type_: "Resource".to_string(),
        resource: Some(ResourceMetricSource {
            name: "cpu".to_string(),
            target: MetricTarget {
                type_: "Utilization".to_string(),
                average_utilization: Some(
                    autoscaling
                        .target_cpu_utilization
                        .unwrap_or(DEFAULT_CPU_TARGET),
                ),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    }];
    if let Some(metric) = &ctx.active_calls_metric {
        let capacity = gateway
            .max_calls_per_pod
            .unwrap_or(GATEWAY_DEFAULT_MAX_CALLS);
        let target = (u64::from(capacity) * u64::from(ACTIVE_CALLS_TARGET_PERCENT) / 100).max(1);
        metrics.push(MetricSpec {
            type_: "Pods".to_string(),
            pods: Some(PodsMetricSource {
                metric: MetricIdentifier {
                    name: metric.clone(),
                    selector: None,
                },
                target: MetricTarget {
                    type_: "AverageValue".to_string(),
                    average_value: Some(Quantity(target.to_string())),
                    ..MetricTarget::default()
                },
            }),
            ..MetricSpec::default()
        });
    }
    Ok(Some(HorizontalPodAutoscaler {
        metadata: owner.meta(),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_string()),
                kind: "Deployment".to_string(),
                name: owner.name.clone(),
            },
            min_replicas: Some(autoscaling.min_replicas),
            max_replicas: autoscaling.max_replicas,
            metrics: Some(metrics),
            behavior: None,
        },
        status: None,
    }))
}
