//! Property tests of check-manifest's handler: on any payload, and on any manifest bytes in
//! the bucket, it answers a well-formed response or a typed error, and never panics.

use check_manifest::{handle, Ports};
use proptest::prelude::*;
use proptest::sample::select;
use rm_core::manifest::Manifest;
use rm_core::tasks::{CheckManifestResponse, Outcome};
use rm_core::{ReleaseId, TaskError};
use rm_testkit::props::{
    any_bytes, any_json, any_text, block_on, check_result, config, corrupted, event, event_bytes,
    mutated, World, SAMPLE_BUCKET, SAMPLE_EXECUTION, SAMPLE_KEY, SAMPLE_PIPELINES, SAMPLE_RELEASE,
};
use serde_json::{json, Value};

/// What CheckManifest fails with on input it cannot use (its module documentation, and
/// `rm_core::usecases::check_manifest`): a payload or execution input of the wrong shape, a
/// manifest that does not validate, one that cannot be read, a claimed release that is not
/// recorded. The in-memory ports do not fail, so nothing retryable.
const ERRORS: &[&str] = &[
    "BadInput",
    "ManifestInvalid",
    "ManifestUnreadable",
    "NotFound",
];

/// The in-memory ports, with `manifest` as the object the sample S3 event names.
fn world(manifest: &[u8]) -> World {
    let world = World::new();
    world
        .source
        .put(SAMPLE_BUCKET, SAMPLE_KEY, manifest.to_vec());
    world
}

fn ports(world: &World) -> Ports<'_> {
    Ports {
        store: &world.store,
        pipelines: &world.pipelines,
        source: &world.source,
        bus: &rm_core::memory::NO_BUS,
        clock: &world.clock,
    }
}

fn run(world: &World, payload: Value) -> Result<CheckManifestResponse, TaskError> {
    // The answer must read back as the response the state machine receives.
    block_on(handle(payload, &ports(world))).map(|answer| {
        serde_json::from_value(answer).expect("the answer is a CheckManifestResponse")
    })
}

/// The answer the state machine's Choice and Map read: `Started` with the waves (ascending,
/// each pipeline once, each existing, each with a timeout), or `Duplicate` with nothing.
fn check_answer(out: CheckManifestResponse) -> Result<(), TestCaseError> {
    prop_assert!(
        ReleaseId::parse(&out.release_id).is_ok(),
        "releaseId {:?}",
        out.release_id
    );
    let encoded = serde_json::to_value(&out).expect("the answer encodes");
    prop_assert_eq!(&encoded["releaseId"], &json!(out.release_id));
    match out.outcome {
        Outcome::Started => {
            prop_assert_eq!(&encoded["outcome"], "Started");
            prop_assert!(!out.waves.is_empty(), "started without waves: {:?}", out);
            prop_assert!(out.waves.windows(2).all(|w| w[0].wave < w[1].wave));
            prop_assert!(out.on_failure.is_some());
            prop_assert!(out.max_concurrency.is_some_and(|n| n >= 1));
            let mut names = Vec::new();
            for w in &out.waves {
                prop_assert!(w.wave >= 1 && !w.pipelines.is_empty(), "{:?}", w);
                for p in &w.pipelines {
                    prop_assert!(SAMPLE_PIPELINES.contains(&p.name.as_str()), "{:?}", p);
                    prop_assert!(p.timeout_seconds > 0, "{:?}", p);
                    names.push(p.name.as_str());
                }
            }
            let n = names.len();
            names.sort_unstable();
            names.dedup();
            prop_assert_eq!(names.len(), n, "a pipeline twice: {:?}", out);
        }
        Outcome::Duplicate => {
            prop_assert_eq!(&encoded["outcome"], "Duplicate");
            prop_assert!(out.waves.is_empty() && out.on_failure.is_none());
            prop_assert!(out.max_concurrency.is_none());
        }
    }
    Ok(())
}

/// The sample task (an S3 event for the sample object) against `manifest` in the bucket: the
/// only way to fail is the manifest's, with exactly the parser's errors.
fn check_manifest_bytes(manifest: &[u8]) -> Result<(), TestCaseError> {
    let world = world(manifest);
    let result = run(&world, event("task-check-manifest.json"));
    match (&result, Manifest::parse(manifest)) {
        (Err(TaskError::ManifestInvalid(got)), Err(want)) => {
            prop_assert_eq!(got, &want, "the handler reports what the parser found");
        }
        (Err(TaskError::ManifestInvalid(_)), Ok(_)) => {
            // A valid manifest naming pipelines that do not exist.
        }
        (Err(e), _) => {
            return Err(TestCaseError::fail(format!(
                "a manifest's bytes can only make it invalid, got {}: {e}",
                e.error_type()
            )))
        }
        (Ok(_), parsed) => prop_assert!(parsed.is_ok(), "accepted what the parser rejects"),
    }
    check_result(result, &["ManifestInvalid"], check_answer)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_json_payload_is_answered_or_a_typed_error(payload in any_json()) {
        let world = world(&event_bytes("release-manifest.json"));
        check_result(run(&world, payload), ERRORS, check_answer)?;
    }

    #[test]
    fn a_mutated_s3_task_is_answered_or_a_typed_error(
        payload in mutated(event("task-check-manifest.json")),
    ) {
        let world = world(&event_bytes("release-manifest.json"));
        check_result(run(&world, payload), ERRORS, check_answer)?;
    }

    #[test]
    fn a_mutated_inline_manifest_is_accepted_or_rejected_as_the_parser_says(
        manifest in mutated(event("release-manifest.json")),
        execution in any_text(),
    ) {
        let world = World::new();
        let payload = json!({"input": manifest.clone(), "executionName": execution});
        let result = run(&world, payload);
        // An input with these keys is read as an S3 event or an API claim instead.
        let inline = manifest.get("detail-type").is_none()
            && manifest.get("claimedRelease").is_none();
        if inline {
            match (&result, Manifest::from_value(&manifest, None)) {
                (Err(TaskError::ManifestInvalid(got)), Err(want)) => prop_assert_eq!(got, &want),
                (Err(TaskError::ManifestInvalid(_)), Ok(_)) | (Ok(_), Ok(_)) => {}
                (other, parsed) => {
                    return Err(TestCaseError::fail(format!(
                        "handler {other:?}, parser {parsed:?}"
                    )))
                }
            }
        }
        check_result(result, ERRORS, check_answer)?;
    }

    #[test]
    fn a_claimed_release_input_is_answered_or_a_typed_error(
        id in prop_oneof![
            2 => select(vec![SAMPLE_RELEASE, "2026.09.9", "", "not valid!"]).prop_map(|s| json!(s)),
            1 => any_json(),
        ],
        execution in prop_oneof![Just(SAMPLE_EXECUTION.to_owned()), any_text()],
        claimed in any::<bool>(),
    ) {
        let world = World::new();
        if claimed {
            block_on(world.claim_sample());
        }
        let payload = json!({"input": {"claimedRelease": id}, "executionName": execution});
        check_result(run(&world, payload), ERRORS, check_answer)?;
    }

    #[test]
    fn any_bytes_as_the_manifest_object_are_valid_or_invalid(bytes in any_bytes()) {
        check_manifest_bytes(&bytes)?;
    }

    #[test]
    fn any_text_as_the_manifest_object_is_valid_or_invalid(text in any_text()) {
        check_manifest_bytes(text.as_bytes())?;
    }

    #[test]
    fn a_corrupted_sample_manifest_is_valid_or_invalid(
        bytes in corrupted(event_bytes("release-manifest.json")),
    ) {
        check_manifest_bytes(&bytes)?;
    }

    #[test]
    fn a_mutated_sample_manifest_object_is_valid_or_invalid(
        manifest in mutated(event("release-manifest.json")),
    ) {
        check_manifest_bytes(&serde_json::to_vec(&manifest).unwrap())?;
    }
}
