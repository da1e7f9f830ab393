//! release-api's lifecycle routes through the handler, as API Gateway's REST proxy events, over
//! the in-memory world: `POST /releases/{id}/cancel | retry | approve | reject` and `GET
//! /releases`; each answer (202, 400, 404, 409, 200) and the changes behind it.

use lambda_http::http::StatusCode;
use lambda_http::Request;
use release_api::{error_status, handle, operate_body, Action, OperateBody};
use rm_core::error::{Rejection, TaskError};
use rm_core::lifecycle::ApprovalStatus;
use rm_core::ports::{Clock, ReleaseStore};
use rm_core::tasks::{ApprovalRequest, CheckManifestRequest};
use rm_core::usecases;
use rm_core::{ReleaseId, ReleaseStatus};
use rm_testkit::event;
use rm_testkit::props::{World, SAMPLE_EXECUTION, SAMPLE_RELEASE};
use serde_json::{json, Value};

const CALLER: &str = "arn:aws:iam::111122223333:user/release-manager";
const TOKEN: &str = "approval-token-1";

/// An API Gateway REST proxy event for `method path` (a route under `/releases`), with the
/// path parameter `id` when given, this body and query.
fn api_event(
    method: &str,
    resource: &str,
    path: &str,
    id: Option<&str>,
    body: Option<&str>,
    query: Option<Value>,
) -> Request {
    decode(api_event_json(method, resource, path, id, body, query))
}

fn decode(e: Value) -> Request {
    lambda_http::request::from_str(&e.to_string()).expect("an API Gateway proxy event")
}

fn api_event_json(
    method: &str,
    resource: &str,
    path: &str,
    id: Option<&str>,
    body: Option<&str>,
    query: Option<Value>,
) -> Value {
    let mut e = event("apigw-post-release.json");
    e["httpMethod"] = json!(method);
    e["resource"] = json!(resource);
    e["path"] = json!(path);
    e["pathParameters"] = id.map_or(Value::Null, |id| json!({ "id": id }));
    e["body"] = body.map_or(Value::Null, |b| json!(b));
    e["requestContext"]["httpMethod"] = json!(method);
    e["requestContext"]["resourcePath"] = json!(resource);
    e["requestContext"]["path"] = json!(format!("/Prod{path}"));
    if let Some(q) = query {
        let multi: serde_json::Map<String, Value> = q
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let all = match v {
                    Value::Array(a) => a.clone(),
                    v => vec![v.clone()],
                };
                (k.clone(), Value::Array(all))
            })
            .collect();
        let single: serde_json::Map<String, Value> = multi
            .iter()
            .map(|(k, v)| (k.clone(), v.as_array().unwrap().last().unwrap().clone()))
            .collect();
        e["queryStringParameters"] = Value::Object(single);
        e["multiValueQueryStringParameters"] = Value::Object(multi);
    }
    e
}

/// `POST /releases/{id}/{action}` with this body.
fn op(action: &str, id: &str, body: Option<&str>) -> Request {
    decode(op_json(action, id, body))
}

fn op_json(action: &str, id: &str, body: Option<&str>) -> Value {
    api_event_json(
        "POST",
        &format!("/releases/{{id}}/{action}"),
        &format!("/releases/{id}/{action}"),
        Some(id),
        body,
        None,
    )
}

/// The same, as another API call (its own request id: a retry's execution name).
fn op_as_call(action: &str, id: &str, body: Option<&str>, request_id: &str) -> Request {
    let mut e = op_json(action, id, body);
    e["requestContext"]["requestId"] = json!(request_id);
    decode(e)
}

/// `GET /releases` with this query.
fn list(query: Option<Value>) -> Request {
    api_event("GET", "/releases", "/releases", None, None, query)
}

async fn call(world: &World, request: Request) -> (StatusCode, Value) {
    let response = handle(request, &world.api_ports()).await;
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = serde_json::from_slice(response.body().as_ref()).expect("a JSON body");
    (response.status(), body)
}

fn sample_id() -> ReleaseId {
    ReleaseId::parse(SAMPLE_RELEASE).unwrap()
}

/// The paths of a 400's errors.
fn error_paths(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("a 400 lists its errors: {body}"))
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect()
}

/// A world with the sample release RUNNING.
async fn running() -> World {
    let world = World::new();
    world.claim_sample().await;
    world
}

/// A world with the sample release ended with `status`.
async fn ended(status: ReleaseStatus) -> World {
    let world = running().await;
    usecases::finish_release(
        &world.api_ports().writer(),
        &sample_id(),
        SAMPLE_EXECUTION,
        status,
        Some("payments-api (Failed)"),
        world.clock.now(),
    )
    .await
    .unwrap();
    world
}

/// A world with the sample release (with `"approvals": [2]`) waiting for the approval of wave
/// 2, its token stored.
async fn waiting_for_approval() -> World {
    let world = World::new();
    let mut manifest = event("release-manifest.json");
    manifest["approvals"] = json!([2]);
    let request = CheckManifestRequest {
        input: manifest,
        execution_name: SAMPLE_EXECUTION.to_owned(),
    };
    usecases::check_manifest(&request, &world.manifest_ports())
        .await
        .expect("the manifest with approvals is valid");
    usecases::await_approval(
        &ApprovalRequest {
            release_id: SAMPLE_RELEASE.to_owned(),
            execution_name: SAMPLE_EXECUTION.to_owned(),
            wave: 2,
            task_token: TOKEN.to_owned(),
        },
        &world.run_ports(),
    )
    .await
    .expect("the approval waits");
    world
}

// --- cancel ---------------------------------------------------------------------------------

#[tokio::test]
async fn cancel_of_a_running_release_records_who_and_why_then_stops_its_execution() {
    let world = running().await;
    let (status, body) = call(
        &world,
        op(
            "cancel",
            SAMPLE_RELEASE,
            Some(r#"{"reason": "bad canary"}"#),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["releaseId"], SAMPLE_RELEASE);
    assert_eq!(body["status"], "RUNNING", "the reconciler ends it: {body}");
    let cause = format!("cancelled by {CALLER}: bad canary");
    assert_eq!(
        world.executions.stopped(),
        vec![(SAMPLE_EXECUTION.to_owned(), cause)]
    );
    let record = world
        .store
        .release_record(&sample_id())
        .await
        .unwrap()
        .unwrap();
    assert!(record.stop_requested);
    let cancel = record.lifecycle.cancel.expect("the cancel is recorded");
    assert_eq!(cancel.by, CALLER);
    assert_eq!(cancel.reason, "bad canary");
}

#[tokio::test]
async fn cancel_of_an_ended_release_is_409_and_changes_nothing() {
    for status in [
        ReleaseStatus::Failed,
        ReleaseStatus::Succeeded,
        ReleaseStatus::Cancelled,
    ] {
        let world = ended(status).await;
        let before = world.store.get(&sample_id()).await.unwrap();
        let (code, body) = call(
            &world,
            op("cancel", SAMPLE_RELEASE, Some(r#"{"reason": "too late"}"#)),
        )
        .await;
        assert_eq!(code, StatusCode::CONFLICT, "{status}: {body}");
        assert_eq!(body["releaseId"], SAMPLE_RELEASE);
        assert!(
            body["message"].as_str().unwrap().contains(status.as_str()),
            "the message says the state: {body}"
        );
        assert!(world.executions.stopped().is_empty());
        assert_eq!(world.store.get(&sample_id()).await.unwrap(), before);
    }
}

#[tokio::test]
async fn cancel_needs_a_reason_and_takes_nothing_else() {
    let world = running().await;
    let cases: &[(Option<&str>, &[&str], &str)] = &[
        (None, &["$.reason"], "required"),
        (Some("{}"), &["$.reason"], "required"),
        (Some(r#"{"reason": "  "}"#), &["$.reason"], "empty"),
        (Some(r#"{"reason": 7}"#), &["$.reason"], "string"),
        (
            Some(r#"{"reason": "x", "force": true}"#),
            &["$.force"],
            "unknown field",
        ),
        (Some(r#"{"why": "x"}"#), &["$.why", "$.reason"], "problems"),
        (Some(r#"{"reason": "x""#), &["$"], "not JSON"),
        (Some(r#"["x"]"#), &["$"], "JSON object"),
    ];
    for (body_text, paths, says) in cases {
        let (status, body) = call(&world, op("cancel", SAMPLE_RELEASE, *body_text)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body_text:?}: {body}");
        assert_eq!(error_paths(&body), *paths, "{body_text:?}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{body_text:?}: {body}"
        );
    }
    let long = json!({ "reason": "x".repeat(release_api::MAX_REASON + 1) }).to_string();
    let (status, body) = call(&world, op("cancel", SAMPLE_RELEASE, Some(&long))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_paths(&body), ["$.reason"]);
    assert!(world.executions.stopped().is_empty(), "nothing was stopped");
    let record = world
        .store
        .release_record(&sample_id())
        .await
        .unwrap()
        .unwrap();
    assert!(record.lifecycle.cancel.is_none() && !record.stop_requested);
}

#[tokio::test]
async fn operating_an_unknown_release_is_404() {
    let world = running().await;
    for (action, body) in [
        ("cancel", Some(r#"{"reason": "x"}"#)),
        ("retry", None),
        ("approve", Some(r#"{"wave": 2}"#)),
        ("reject", Some(r#"{"wave": 2, "reason": "x"}"#)),
    ] {
        for id in ["2099.01.1", "not a release id!"] {
            let (status, body) = call(&world, op(action, id, body)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{action} {id}: {body}");
            assert_eq!(body["releaseId"], id);
            assert!(body["message"].as_str().unwrap().contains("not found"));
        }
    }
    assert!(world.executions.stopped().is_empty());
    assert!(world.tokens.sent().is_empty());
}

// --- retry ----------------------------------------------------------------------------------

#[tokio::test]
async fn retry_of_a_failed_release_claims_attempt_2_and_starts_its_execution() {
    let world = ended(ReleaseStatus::Failed).await;
    let (status, body) = call(&world, op_as_call("retry", SAMPLE_RELEASE, None, "req-2")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "RUNNING");
    assert_eq!(body["attempt"], 2);
    let attempts = body["attempts"].as_array().unwrap();
    let last = attempts.last().unwrap();
    assert_eq!(last["attempt"], 2);
    assert_eq!(last["execution"], "api-req-2");
    assert_eq!(last["requestedBy"], CALLER);
    let started = world.executions.started();
    assert_eq!(
        started,
        vec![(
            "api-req-2".to_owned(),
            json!({"claimedRelease": SAMPLE_RELEASE})
        )]
    );
    assert!(
        body["executionArn"]
            .as_str()
            .unwrap()
            .ends_with(":api-req-2"),
        "{body}"
    );
    let record = world
        .store
        .release_record(&sample_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.owner, "api-req-2");
    assert_eq!(record.status, ReleaseStatus::Running);

    // A second retry finds it RUNNING.
    let (status, body) = call(
        &world,
        op_as_call("retry", SAMPLE_RELEASE, Some("{}"), "req-3"),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("RUNNING"),
        "{body}"
    );
    assert_eq!(world.executions.started().len(), 1, "one attempt");
}

#[tokio::test]
async fn retry_of_a_cancelled_release_is_accepted() {
    let world = ended(ReleaseStatus::Cancelled).await;
    let (status, body) = call(&world, op("retry", SAMPLE_RELEASE, Some(" "))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["attempt"], 2);
}

#[tokio::test]
async fn retry_of_a_running_or_succeeded_release_is_409() {
    for world in [running().await, ended(ReleaseStatus::Succeeded).await] {
        let before = world.store.get(&sample_id()).await.unwrap();
        let (status, body) = call(&world, op("retry", SAMPLE_RELEASE, None)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("only a FAILED or CANCELLED release can be retried"),
            "{body}"
        );
        assert!(world.executions.started().is_empty());
        assert_eq!(world.store.get(&sample_id()).await.unwrap(), before);
    }
}

#[tokio::test]
async fn retry_takes_no_fields() {
    let world = ended(ReleaseStatus::Failed).await;
    let (status, body) = call(
        &world,
        op(
            "retry",
            SAMPLE_RELEASE,
            Some(r#"{"pipelines": ["payments-api"]}"#),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_paths(&body), ["$.pipelines"]);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("retry takes no fields"));
    assert!(world.executions.started().is_empty());
}

// --- approve / reject -----------------------------------------------------------------------

#[tokio::test]
async fn approve_of_the_waiting_wave_records_who_and_completes_the_wait() {
    let world = waiting_for_approval().await;
    let (status, body) = call(
        &world,
        op("approve", SAMPLE_RELEASE, Some(r#"{"wave": 2}"#)),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["waitingFor"], Value::Null);
    let approval = &body["approvals"][0];
    assert_eq!(approval["wave"], 2);
    assert_eq!(approval["status"], "Approved");
    assert_eq!(approval["by"], CALLER);
    match world.tokens.sent().as_slice() {
        [(token, Ok(_))] => assert_eq!(token, TOKEN),
        other => panic!("one success for the approval's token: {other:?}"),
    }

    // Deciding again: the wave no longer waits.
    let (status, body) = call(
        &world,
        op("approve", SAMPLE_RELEASE, Some(r#"{"wave": 2}"#)),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("not waiting"),
        "{body}"
    );
    assert_eq!(world.tokens.sent().len(), 1);
}

#[tokio::test]
async fn reject_of_the_waiting_wave_fails_the_wait_with_who_and_why() {
    let world = waiting_for_approval().await;
    let (status, body) = call(
        &world,
        op(
            "reject",
            SAMPLE_RELEASE,
            Some(r#"{"wave": 2, "reason": "error budget spent"}"#),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let approval = &body["approvals"][0];
    assert_eq!(approval["status"], "Rejected");
    assert_eq!(approval["reason"], "error budget spent");
    match world.tokens.sent().as_slice() {
        [(token, Err((error, cause)))] => {
            assert_eq!(token, TOKEN);
            assert_eq!(error, usecases::APPROVAL_REJECTED);
            assert_eq!(
                cause,
                &format!("wave 2 rejected by {CALLER}: error budget spent")
            );
        }
        other => panic!("one failure for the approval's token: {other:?}"),
    }
    let record = world
        .store
        .release_record(&sample_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.lifecycle.approvals[0].status,
        ApprovalStatus::Rejected
    );
}

#[tokio::test]
async fn a_decision_on_a_wave_that_is_not_waiting_is_409() {
    // Wave 1 exists but does not wait; a running release without approvals waits for none.
    let world = waiting_for_approval().await;
    let (status, body) = call(
        &world,
        op("approve", SAMPLE_RELEASE, Some(r#"{"wave": 1}"#)),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("it waits for the approval of wave 2"),
        "{body}"
    );
    let world = running().await;
    let (status, body) = call(
        &world,
        op(
            "reject",
            SAMPLE_RELEASE,
            Some(r#"{"wave": 2, "reason": "no"}"#),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let world = ended(ReleaseStatus::Failed).await;
    let (status, body) = call(
        &world,
        op("approve", SAMPLE_RELEASE, Some(r#"{"wave": 2}"#)),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(world.tokens.sent().is_empty());
}

#[tokio::test]
async fn a_bad_wave_or_a_missing_reason_is_400() {
    let world = waiting_for_approval().await;
    let cases: &[(&str, &str, &[&str])] = &[
        ("approve", "{}", &["$.wave"]),
        ("approve", r#"{"wave": "2"}"#, &["$.wave"]),
        ("approve", r#"{"wave": 0}"#, &["$.wave"]),
        ("approve", r#"{"wave": -1}"#, &["$.wave"]),
        ("approve", r#"{"wave": 2.5}"#, &["$.wave"]),
        ("approve", r#"{"wave": 4294967296}"#, &["$.wave"]),
        ("approve", r#"{"wave": 7}"#, &["$.wave"]),
        ("approve", r#"{"wave": 2, "reason": "x"}"#, &["$.reason"]),
        ("reject", r#"{"wave": 2}"#, &["$.reason"]),
        ("reject", r#"{"reason": "x"}"#, &["$.wave"]),
        (
            "reject",
            r#"{"wave": "two", "reason": ""}"#,
            &["$.reason", "$.wave"],
        ),
        ("reject", "wave=2", &["$"]),
    ];
    for (action, text, paths) in cases {
        let (status, body) = call(&world, op(action, SAMPLE_RELEASE, Some(text))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{action} {text}: {body}");
        assert_eq!(error_paths(&body), *paths, "{action} {text}: {body}");
    }
    let (_, body) = call(
        &world,
        op("approve", SAMPLE_RELEASE, Some(r#"{"wave": 7}"#)),
    )
    .await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("has no wave 7; its waves are 1, 2"),
        "{body}"
    );
    assert!(world.tokens.sent().is_empty(), "nothing decided");
}

// --- GET /releases --------------------------------------------------------------------------

/// Claims releases `2026.05.1` .. `2026.05.n`, a minute apart (the last is the newest); the
/// even ones end FAILED.
async fn many(n: u32) -> World {
    let world = World::new();
    for i in 1..=n {
        let mut manifest = event("release-manifest.json");
        manifest["releaseId"] = json!(format!("2026.05.{i}"));
        let name = format!("exec-{i}");
        let request = CheckManifestRequest {
            input: manifest,
            execution_name: name.clone(),
        };
        usecases::check_manifest(&request, &world.manifest_ports())
            .await
            .unwrap();
        if i % 2 == 0 {
            usecases::finish_release(
                &world.api_ports().writer(),
                &ReleaseId::parse(&format!("2026.05.{i}")).unwrap(),
                &name,
                ReleaseStatus::Failed,
                Some("x"),
                world.clock.now(),
            )
            .await
            .unwrap();
        }
        world.clock.advance(time::Duration::minutes(1));
    }
    world
}

fn ids(body: &Value) -> Vec<String> {
    body["releases"]
        .as_array()
        .unwrap_or_else(|| panic!("a page lists releases: {body}"))
        .iter()
        .map(|r| r["releaseId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn list_is_newest_first_and_pages_with_next() {
    let world = many(5).await;
    let (status, body) = call(&world, list(None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        ids(&body),
        [
            "2026.05.5",
            "2026.05.4",
            "2026.05.3",
            "2026.05.2",
            "2026.05.1"
        ]
    );
    assert_eq!(body["next"], Value::Null);
    let first = &body["releases"][0];
    assert_eq!(first["status"], "RUNNING");
    assert_eq!(first["attempt"], 1);
    assert!(first.get("pipelines").is_none(), "a summary: {first}");

    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..5 {
        let mut q = json!({"limit": "2"});
        if let Some(n) = &next {
            q["next"] = json!(n);
        }
        let (status, body) = call(&world, list(Some(q))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(ids(&body).len() <= 2);
        seen.extend(ids(&body));
        next = body["next"].as_str().map(str::to_owned);
        if next.is_none() {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            "2026.05.5",
            "2026.05.4",
            "2026.05.3",
            "2026.05.2",
            "2026.05.1"
        ]
    );
}

#[tokio::test]
async fn list_filters_by_status() {
    let world = many(5).await;
    let (status, body) = call(&world, list(Some(json!({"status": "FAILED"})))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), ["2026.05.4", "2026.05.2"]);
    let (_, body) = call(&world, list(Some(json!({"status": "CANCELLED"})))).await;
    assert_eq!(ids(&body), Vec::<String>::new());
    assert_eq!(body["next"], Value::Null);
}

#[tokio::test]
async fn a_bad_query_is_400_naming_each_parameter() {
    let world = many(1).await;
    let cases: &[(Value, &[&str], &str)] = &[
        (
            json!({"status": "running"}),
            &["?status"],
            "RUNNING, SUCCEEDED, FAILED or CANCELLED",
        ),
        (
            json!({"status": "DONE"}),
            &["?status"],
            "not a release status",
        ),
        (json!({"limit": "0"}), &["?limit"], "from 1 to 100"),
        (json!({"limit": "101"}), &["?limit"], "from 1 to 100"),
        (json!({"limit": "ten"}), &["?limit"], "from 1 to 100"),
        (json!({"limit": "-1"}), &["?limit"], "from 1 to 100"),
        (json!({"page": "2"}), &["?page"], "unknown query parameter"),
        (
            json!({"status": ["FAILED", "RUNNING"]}),
            &["?status"],
            "given 2 times",
        ),
        (
            json!({"status": "x", "limit": "x"}),
            &["?status", "?limit"],
            "2 problems",
        ),
    ];
    for (query, paths, says) in cases {
        let (status, body) = call(&world, list(Some(query.clone()))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        let mut got = error_paths(&body);
        let mut want: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{query}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{query}: {body}"
        );
    }
    let (status, body) = call(
        &world,
        list(Some(json!({"limit": "100", "status": "RUNNING"}))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// --- routes and the error mapping -------------------------------------------------------------

#[tokio::test]
async fn the_lifecycle_routes_take_only_post() {
    let world = running().await;
    for method in ["GET", "PUT", "DELETE"] {
        let r = api_event(
            method,
            "/releases/{id}/cancel",
            &format!("/releases/{SAMPLE_RELEASE}/cancel"),
            Some(SAMPLE_RELEASE),
            None,
            None,
        );
        let response = handle(r, &world.api_ports()).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["allow"], "POST");
    }
    let (status, _) = call(&world, op("pause", SAMPLE_RELEASE, None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The first routes still answer.
    let r = api_event(
        "GET",
        "/releases/{id}",
        &format!("/releases/{SAMPLE_RELEASE}"),
        Some(SAMPLE_RELEASE),
        None,
        None,
    );
    let (status, body) = call(&world, r).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["releaseId"], SAMPLE_RELEASE);
}

#[test]
fn task_errors_map_to_statuses_in_one_place() {
    let cases = [
        (
            TaskError::ManifestInvalid(Rejection(vec![])),
            StatusCode::BAD_REQUEST,
        ),
        (TaskError::BadInput("x".into()), StatusCode::BAD_REQUEST),
        (TaskError::NotFound("x".into()), StatusCode::NOT_FOUND),
        (TaskError::Conflict("x".into()), StatusCode::CONFLICT),
        (TaskError::Duplicate("x".into()), StatusCode::CONFLICT),
        (TaskError::ReleaseEnded("x".into()), StatusCode::CONFLICT),
        (
            TaskError::Throttled("x".into()),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        (
            TaskError::Transient("x".into()),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        (
            TaskError::Internal("x".into()),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        (
            TaskError::ManifestUnreadable("x".into()),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        (
            TaskError::PipelineNotStartable("x".into()),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
    ];
    for (e, status) in cases {
        assert_eq!(error_status(&e), status, "{e:?}");
    }
}

#[test]
fn bodies_decode_to_their_fields() {
    assert_eq!(
        operate_body(Action::Reject, br#"{"wave": 3, "reason": " no "}"#).unwrap(),
        OperateBody {
            reason: Some("no".into()),
            wave: Some(3)
        }
    );
    assert_eq!(
        operate_body(Action::Retry, b"").unwrap(),
        OperateBody {
            reason: None,
            wave: None
        }
    );
    assert_eq!(
        operate_body(Action::Approve, br#"{"wave": null}"#).unwrap_err()[0].path,
        "$.wave"
    );
}
