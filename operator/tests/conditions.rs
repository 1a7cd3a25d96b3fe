//! Status conditions: computed from facts, timestamps moved only on real transitions.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use switchboard_crds::VoiceTenantStatus;
use switchboard_operator::BuildError;
use switchboard_operator::conditions::{DEGRADED, Failure, MAX_MESSAGE_LEN, PROGRESSING, READY};
use switchboard_operator::tenant::build::build_deployment;
use switchboard_operator::tenant::status::{Observed, Rollout, conditions, tenant_status};

fn t0() -> Time {
    common::time("2026-05-01T10:00:00Z")
}
fn t1() -> Time {
    common::time("2026-05-01T10:05:00Z")
}
fn t2() -> Time {
    common::time("2026-05-01T10:09:00Z")
}

fn get<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
    conditions.iter().find(|c| c.type_ == type_).unwrap()
}

/// (status, reason) of each of our conditions.
fn summary(conditions: &[Condition]) -> [(String, String); 3] {
    [READY, PROGRESSING, DEGRADED].map(|t| {
        let c = get(conditions, t);
        (c.status.clone(), c.reason.clone())
    })
}

fn pair(status: &str, reason: &str) -> (String, String) {
    (status.to_string(), reason.to_string())
}

fn rollout(desired: i32, updated: i32, available: i32) -> Rollout {
    Rollout {
        desired,
        replicas: updated,
        updated,
        available,
        current: true,
        stalled: false,
    }
}

fn observed(rollout: Option<Rollout>, failure: Option<Failure>) -> Observed {
    Observed {
        generation: Some(4),
        rollout,
        failure,
        ..Observed::default()
    }
}

#[test]
fn a_new_tenant_is_progressing_and_not_ready() {
    let c = conditions(&observed(None, None), &[], &t0());
    assert_eq!(
        summary(&c),
        [
            pair("False", "GatewayNotCreated"),
            pair("True", "Creating"),
            pair("False", "AsExpected")
        ]
    );
    for cond in &c {
        assert_eq!(cond.last_transition_time, t0());
        assert_eq!(cond.observed_generation, Some(4));
        assert!(!cond.message.is_empty());
    }
    let types: Vec<_> = c.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, [READY, PROGRESSING, DEGRADED]);
}

#[test]
fn unchanged_facts_give_an_identical_status() {
    let facts = [
        observed(None, None),
        observed(Some(rollout(2, 2, 2)), None),
        observed(Some(rollout(3, 1, 2)), None),
        observed(
            None,
            Some(Failure::new("DatabaseUnavailable", "connection refused")),
        ),
    ];
    for facts in facts {
        let first = tenant_status(None, &facts, &t0());
        let again = tenant_status(Some(&first), &facts, &t1());
        assert_eq!(
            again, first,
            "a reconcile with nothing new must write nothing"
        );
    }
}

#[test]
fn transitions_move_only_the_conditions_that_changed() {
    let creating = conditions(&observed(Some(rollout(2, 2, 0)), None), &[], &t0());
    assert_eq!(
        summary(&creating),
        [
            pair("False", "GatewayUnavailable"),
            pair("True", "RollingOut"),
            pair("False", "AsExpected")
        ]
    );

    let one_up = conditions(&observed(Some(rollout(2, 2, 1)), None), &creating, &t1());
    assert_eq!(get(&one_up, READY).status, "True");
    assert_eq!(get(&one_up, READY).last_transition_time, t1());
    assert_eq!(
        get(&one_up, READY).message,
        "1 of 2 gateway replicas available"
    );
    // Still rolling: same status, so its time stays even though the message changed.
    assert_eq!(get(&one_up, PROGRESSING).last_transition_time, t0());
    assert_ne!(
        get(&one_up, PROGRESSING).message,
        get(&creating, PROGRESSING).message
    );
    assert_eq!(get(&one_up, DEGRADED).last_transition_time, t0());

    let done = conditions(&observed(Some(rollout(2, 2, 2)), None), &one_up, &t2());
    assert_eq!(
        summary(&done),
        [
            pair("True", "GatewayAvailable"),
            pair("False", "RolloutComplete"),
            pair("False", "AsExpected")
        ]
    );
    assert_eq!(get(&done, READY).last_transition_time, t1());
    assert_eq!(
        get(&done, READY).message,
        "2 of 2 gateway replicas available"
    );
    assert_eq!(get(&done, PROGRESSING).last_transition_time, t2());
    assert_eq!(get(&done, DEGRADED).last_transition_time, t0());
}

#[test]
fn a_failure_degrades_and_recovery_clears_it() {
    let healthy = conditions(&observed(Some(rollout(2, 2, 2)), None), &[], &t0());
    let err = BuildError::SecretNotObserved {
        name: "acme-twilio".into(),
    };
    let failed = conditions(
        &observed(Some(rollout(2, 2, 2)), Some(Failure::from(&err))),
        &healthy,
        &t1(),
    );
    let degraded = get(&failed, DEGRADED);
    assert_eq!(degraded.status, "True");
    assert_eq!(degraded.reason, err.category());
    assert_eq!(degraded.message, err.to_string());
    assert_eq!(degraded.last_transition_time, t1());
    // The pods still serve calls with the previous config.
    assert_eq!(get(&failed, READY).status, "True");
    assert_eq!(get(&failed, READY).last_transition_time, t0());

    let recovered = conditions(&observed(Some(rollout(2, 2, 2)), None), &failed, &t2());
    assert_eq!(get(&recovered, DEGRADED).status, "False");
    assert_eq!(get(&recovered, DEGRADED).reason, "AsExpected");
    assert_eq!(get(&recovered, DEGRADED).last_transition_time, t2());
}

#[test]
fn a_failure_before_the_gateway_exists_blocks_progress() {
    let failure = Failure::new("DatabaseUnavailable", "connecting to postgres: refused");
    let c = conditions(&observed(None, Some(failure)), &[], &t0());
    assert_eq!(
        summary(&c),
        [
            pair("False", "GatewayNotCreated"),
            pair("False", "Blocked"),
            pair("True", "DatabaseUnavailable")
        ]
    );
}

#[test]
fn a_stalled_rollout_is_degraded() {
    let stalled = Rollout {
        stalled: true,
        ..rollout(3, 1, 2)
    };
    let c = conditions(&observed(Some(stalled), None), &[], &t0());
    assert_eq!(
        summary(&c),
        [
            pair("True", "GatewayAvailable"),
            pair("False", "ProgressDeadlineExceeded"),
            pair("True", "ProgressDeadlineExceeded")
        ]
    );
}

#[test]
fn scaled_to_zero_is_not_ready() {
    let c = conditions(&observed(Some(rollout(0, 0, 0)), None), &[], &t0());
    assert_eq!(get(&c, READY).reason, "ScaledToZero");
    assert_eq!(get(&c, READY).status, "False");
    assert_eq!(get(&c, PROGRESSING).status, "False");
}

#[test]
fn other_conditions_are_kept() {
    let foreign = Condition {
        type_: "KnowledgeSynced".into(),
        status: "True".into(),
        reason: "Synced".into(),
        message: "ok".into(),
        observed_generation: Some(1),
        last_transition_time: t0(),
    };
    let c = conditions(&observed(None, None), std::slice::from_ref(&foreign), &t1());
    assert_eq!(c.len(), 4);
    assert_eq!(c[3], foreign);
}

#[test]
fn status_carries_the_observed_generation() {
    let s = tenant_status(None, &observed(None, None), &t0());
    assert_eq!(s.observed_generation, Some(4));
    let previous = VoiceTenantStatus {
        observed_generation: Some(3),
        conditions: s.conditions.clone(),
        ..VoiceTenantStatus::default()
    };
    let next = tenant_status(
        Some(&previous),
        &Observed {
            generation: Some(5),
            ..observed(None, None)
        },
        &t1(),
    );
    assert_eq!(next.observed_generation, Some(5));
    assert!(
        next.conditions
            .iter()
            .all(|c| c.observed_generation == Some(5))
    );
    // Status unchanged: time kept although the generation moved.
    assert!(
        next.conditions
            .iter()
            .all(|c| c.last_transition_time == t0())
    );
}

#[test]
fn rollout_is_read_from_the_deployment_status() {
    let fixture = common::load("minimal");
    let mut d: Deployment = build_deployment(&fixture.tenant, &fixture.ctx).unwrap();
    d.metadata.generation = Some(6);
    let fresh = Rollout::of(&d);
    assert_eq!(fresh.desired, 2);
    assert!(!fresh.current && fresh.in_progress());

    d.status = Some(
        serde_json::from_value(serde_json::json!({
            "observedGeneration": 6,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": 2,
            "availableReplicas": 2,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
            ]
        }))
        .unwrap(),
    );
    let done = Rollout::of(&d);
    assert_eq!(done, rollout(2, 2, 2));
    assert!(!done.in_progress());

    d.metadata.generation = Some(7);
    d.status.as_mut().unwrap().conditions.as_mut().unwrap()[1] = serde_json::from_value(
        serde_json::json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}),
    )
    .unwrap();
    let stuck = Rollout::of(&d);
    assert!(stuck.stalled);
    assert!(!stuck.current);
}

#[test]
fn long_messages_are_cut_on_a_character_boundary() {
    let message = "é".repeat(MAX_MESSAGE_LEN);
    let f = Failure::new("DatabaseUnavailable", message);
    assert!(f.message.len() <= MAX_MESSAGE_LEN);
    assert!(f.message.len() > MAX_MESSAGE_LEN - 2);
    assert!(f.message.chars().all(|c| c == 'é'));
}
