//! The claim of a recording tenant's upload queue: one PersistentVolumeClaim per tenant,
//! mounted by every gateway pod of the tenant at [`RECORDINGS_DIR`].
//!
//! Why shared rather than per pod: a Deployment's pods cannot each keep a claim that
//! outlives them (only a StatefulSet's can), and a pod replaced during an S3 outage
//! must not take its queued recordings with it. On one shared claim whatever a pod
//! left queued is found by the others on their next rescan (30 s) and by its
//! replacement at start; the queue's claim files (an exclusive create per recording, a
//! heartbeat, a stale claim taken over after 2 minutes) keep two pods from uploading the
//! same recording. Track files of live calls stay on each pod's data volume (written at
//! the audio's pace); a finished WAV is copied onto the claim.
//!
//! The claim exists while the tenant has `spec.recordings` (also with `enabled: false`,
//! so pods keep draining what is queued) and the operator is given a volume
//! (`--gateway-recordings-volume`); removing `spec.recordings` deletes it with anything
//! still queued (wait for `switchboard_recording_queue_depth` to reach 0 first). It
//! goes with the tenant (owner reference). Its storage class and access mode cannot
//! change once created (Kubernetes refuses it): delete the claim to change them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use switchboard_crds::VoiceTenant;

use crate::owner::Owner;
use crate::tenant::build::BuildError;
use crate::tenant::inputs::{BuildInputs, RecordingsVolume};

/// Where the gateway pods mount the claim (their `--recordings-dir`).
pub const RECORDINGS_DIR: &str = "/var/lib/switchboard-recordings";

/// Name of the claim of the tenant whose children are named `child`.
pub fn claim_name(child: &str) -> String {
    format!("{child}-recordings")
}

/// The volume of the tenant's upload queue, when it gets a claim of its own.
pub fn recordings_volume<'a>(
    vt: &VoiceTenant,
    ctx: &'a BuildInputs,
) -> Option<&'a RecordingsVolume> {
    vt.spec.recordings.as_ref()?;
    ctx.recordings_volume.as_ref()
}

/// Builds the PersistentVolumeClaim `<tenant>-gateway-recordings`, or `None` when the
/// tenant has no `spec.recordings` or the operator no recordings volume.
///
/// # Errors
///
/// [`BuildError`] when the tenant lacks metadata.
pub fn build_recordings_claim(
    vt: &VoiceTenant,
    ctx: &BuildInputs,
) -> Result<Option<PersistentVolumeClaim>, BuildError> {
    let owner = Owner::of(vt)?;
    let Some(volume) = recordings_volume(vt, ctx) else {
        return Ok(None);
    };
    let mut metadata = owner.meta();
    metadata.name = Some(claim_name(&owner.name));
    Ok(Some(PersistentVolumeClaim {
        metadata,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![volume.access_mode.clone()]),
            storage_class_name: volume.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(volume.size.clone()),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }))
}
