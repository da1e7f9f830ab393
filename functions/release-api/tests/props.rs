//! Property tests of release-api's handler: whatever API Gateway passes on (any route, method,
//! body, base64 or not), the answer is a JSON response of the documented shape; a client's
//! bad input is a 4xx with a message, never a 500; nothing panics.
//!
//! Requests are decoded from the event JSON by `lambda_http`, as the runtime does. Where
//! `lambda_http` itself panics decoding an event (a `Host` header that does not form a URL, an
//! `isBase64Encoded` body that is not base64: `expect`s in lambda_http and aws_lambda_events)
//! the case is rejected: that happens before the handler, the runtime catches it, and API
//! Gateway never sends such an event.

use lambda_http::http::{header, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use proptest::prelude::*;
use proptest::sample::select;
use release_api::{handle, Action, Ports};
use rm_core::ports::Clock;
use rm_core::tasks::{ApprovalRequest, CheckManifestRequest};
use rm_core::usecases;
use rm_core::view::{ReleaseList, ReleaseView};
use rm_core::{ReleaseId, ReleaseStatus};
use rm_testkit::props::{
    any_bytes, any_json, any_text, block_on, check_keys, config, corrupted, event, event_bytes,
    mutated, text_field, World, SAMPLE_EXECUTION, SAMPLE_RELEASE,
};
use serde_json::{json, Value};

/// Decodes an API Gateway event as the runtime does. `None`: not an API Gateway event (the
/// runtime answers its own error). A panic of lambda_http rejects the case (see above).
fn request(event: &Value) -> Result<Option<Request>, TestCaseError> {
    let text = event.to_string();
    match std::panic::catch_unwind(|| lambda_http::request::from_str(&text)) {
        Ok(Ok(request)) => Ok(Some(request)),
        Ok(Err(_)) => Ok(None),
        Err(_) => Err(TestCaseError::reject(
            "lambda_http panics decoding the event",
        )),
    }
}

/// The in-memory ports; with `claimed`, the sample release is recorded (GET finds it, POST of
/// the sample conflicts).
fn world(claimed: bool) -> World {
    let world = World::new();
    if claimed {
        block_on(world.claim_sample());
    }
    world
}

/// The sample release in a state an operator meets: not recorded, RUNNING, ended FAILED, or
/// (with `"approvals": [2]`) waiting for the approval of wave 2.
fn world_in(state: u8) -> World {
    let world = World::new();
    block_on(async {
        match state % 4 {
            0 => {}
            1 => world.claim_sample().await,
            2 => {
                world.claim_sample().await;
                usecases::finish_release(
                    &world.api_ports().writer(),
                    &ReleaseId::parse(SAMPLE_RELEASE).unwrap(),
                    SAMPLE_EXECUTION,
                    ReleaseStatus::Failed,
                    Some("payments-api (Failed)"),
                    world.clock.now(),
                )
                .await
                .unwrap();
            }
            _ => {
                let mut manifest = event("release-manifest.json");
                manifest["approvals"] = json!([2]);
                let request = CheckManifestRequest {
                    input: manifest,
                    execution_name: SAMPLE_EXECUTION.to_owned(),
                };
                usecases::check_manifest(&request, &world.manifest_ports())
                    .await
                    .unwrap();
                usecases::await_approval(
                    &ApprovalRequest {
                        release_id: SAMPLE_RELEASE.to_owned(),
                        execution_name: SAMPLE_EXECUTION.to_owned(),
                        wave: 2,
                        task_token: "token".to_owned(),
                    },
                    &world.run_ports(),
                )
                .await
                .unwrap();
            }
        }
    });
    world
}

/// `POST /releases/{id}/{action}` with this body (the sample POST's context: a caller, a
/// request id).
fn operate_event(action: &str, id: &str, body: Value) -> Value {
    let mut e = event("apigw-post-release.json");
    e["resource"] = json!(format!("/releases/{{id}}/{action}"));
    e["path"] = json!(format!("/releases/{id}/{action}"));
    e["pathParameters"] = json!({ "id": id });
    e["body"] = body;
    e
}

/// The bodies the four actions take, right and nearly right, as JSON values to mutate.
fn operate_body_sample() -> impl Strategy<Value = Value> {
    select(vec![
        json!({}),
        json!({"reason": "bad canary"}),
        json!({"wave": 2}),
        json!({"wave": 1}),
        json!({"wave": 2, "reason": "error budget"}),
        json!({"wave": 2, "reason": "x", "extra": true}),
    ])
}

/// Which route a request's path names (as the handler routes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `/releases`: POST a manifest, GET the list.
    Releases,
    /// `/releases/{id}`.
    Release,
    /// `/releases/{id}/cancel|retry|approve|reject`.
    Operate(Action),
    Other,
}

fn route(request: &Request) -> Route {
    let path = request.raw_http_path();
    let segments: Vec<&str> = path
        .trim_end_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segments.as_slice() {
        ["releases"] => Route::Releases,
        ["releases", _] => Route::Release,
        ["releases", _, action] => Action::parse(action).map_or(Route::Other, Route::Operate),
        _ => Route::Other,
    }
}

/// Runs the handler and checks the response: JSON, a documented status for the method and
/// route, the body that status documents, a message on every error, never a 500.
fn check(world: &World, request: Request) -> Result<(), TestCaseError> {
    let method = request.method().clone();
    let route = route(&request);
    let started_before = world.executions.started().len();
    let ports: Ports<'_> = world.api_ports();
    let response: Response<Body> = block_on(handle(request, &ports));
    let status = response.status();
    prop_assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let body: Value = serde_json::from_slice(response.body().as_ref())
        .map_err(|e| TestCaseError::fail(format!("{status}: the body is not JSON: {e}")))?;
    prop_assert!(body.is_object(), "{}: {}", status, body);
    prop_assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "a 500 for client input: {}",
        body
    );
    if status.is_client_error() || status.is_server_error() {
        text_field(&body, "message")?;
    }
    let started = world.executions.started().len() - started_before;
    let starts = matches!(route, Route::Releases | Route::Operate(Action::Retry));
    prop_assert_eq!(
        started,
        usize::from(status == StatusCode::ACCEPTED && starts)
    );
    match status {
        StatusCode::OK => {
            prop_assert_eq!(&method, &Method::GET);
            match route {
                Route::Releases => {
                    serde_json::from_value::<ReleaseList>(body.clone()).map_err(|e| {
                        TestCaseError::fail(format!("not a page of releases ({e}): {body}"))
                    })?;
                }
                Route::Release => {
                    serde_json::from_value::<ReleaseView>(body.clone()).map_err(|e| {
                        TestCaseError::fail(format!("not the release JSON ({e}): {body}"))
                    })?;
                }
                other => return Err(TestCaseError::fail(format!("200 for {other:?}"))),
            }
        }
        StatusCode::ACCEPTED => {
            prop_assert_eq!(&method, &Method::POST);
            match route {
                Route::Releases => {
                    check_keys(&body, &["releaseId", "statusUrl", "executionArn"])?;
                    let id = text_field(&body, "releaseId")?;
                    prop_assert!(ReleaseId::parse(id).is_ok(), "{}", body);
                    let url = text_field(&body, "statusUrl")?;
                    prop_assert!(url.ends_with(&format!("/releases/{id}")), "{}", body);
                    text_field(&body, "executionArn")?;
                }
                Route::Operate(action) => {
                    serde_json::from_value::<ReleaseView>(body.clone()).map_err(|e| {
                        TestCaseError::fail(format!("not the release JSON ({e}): {body}"))
                    })?;
                    prop_assert_eq!(
                        body.get("executionArn").is_some(),
                        action == Action::Retry,
                        "{}",
                        body
                    );
                }
                other => return Err(TestCaseError::fail(format!("202 for {other:?}"))),
            }
        }
        StatusCode::BAD_REQUEST => {
            let documented = match route {
                Route::Releases => true,
                Route::Operate(_) => method == Method::POST,
                _ => false,
            };
            prop_assert!(documented, "400 for {} {:?}: {}", method, route, body);
            check_keys(&body, &["message", "errors"])?;
            let errors = body["errors"].as_array();
            prop_assert!(errors.is_some_and(|e| !e.is_empty()), "{}", body);
            for e in errors.into_iter().flatten() {
                check_keys(e, &["path", "message"])?;
                let path = text_field(e, "path")?;
                // A JSONPath into the body, or `?name` of the query.
                prop_assert!(path.starts_with('$') || path.starts_with('?'), "{}", e);
                text_field(e, "message")?;
            }
        }
        StatusCode::CONFLICT => {
            prop_assert_eq!(&method, &Method::POST);
            check_keys(&body, &["message", "releaseId"])?;
        }
        StatusCode::NOT_FOUND => {
            if matches!(route, Route::Operate(_)) {
                check_keys(&body, &["message", "releaseId"])?
            } else {
                check_keys(&body, &["message"])?
            }
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            check_keys(&body, &["message"])?;
            let allow = response.headers().get(header::ALLOW);
            prop_assert!(
                allow.is_some_and(|a| a == "GET" || a == "POST" || a == "GET, POST"),
                "{:?}",
                allow
            );
        }
        other => return Err(TestCaseError::fail(format!("undocumented status {other}"))),
    }
    Ok(())
}

/// Decodes the event and checks the handler's answer. An event the runtime cannot decode
/// never reaches the handler: the case is rejected (proptest draws another), so every case
/// that counts was answered by the handler.
fn check_event(world: &World, event: &Value) -> Result<(), TestCaseError> {
    match request(event)? {
        Some(request) => check(world, request),
        None => Err(TestCaseError::reject(
            "lambda_http cannot decode the event: it never reaches the handler",
        )),
    }
}

/// The sample POST with this body.
fn post(body: Value, base64: bool) -> Value {
    let mut e = event("apigw-post-release.json");
    e["body"] = body;
    e["isBase64Encoded"] = json!(base64);
    e
}

/// Standard base64 with padding, as API Gateway encodes a binary body.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A manifest body: the sample's text, broken or mutated.
fn manifest_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        corrupted(event_bytes("release-manifest.json")),
        mutated(event("release-manifest.json")).prop_map(|m| serde_json::to_vec(&m).unwrap()),
    ]
}

/// An API path: the routes, near misses, and anything.
fn api_path() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "/releases",
            "/releases/",
            "/releases/2026.03.1",
            "/releases/2026.03.1/",
            "/releases/a/b",
            "//releases",
            "/",
            "",
            "/Prod/releases",
            "/releases/%2F",
            "/releases/..",
        ])
        .prop_map(str::to_owned),
        any_text().prop_map(|id| format!("/releases/{id}")),
        any_text(),
    ]
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"
        ])
        .prop_map(str::to_owned),
        rm_testkit::props::re("[A-Z]{1,8}"),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_json_event_is_answered_as_documented(e in any_json(), claimed in any::<bool>()) {
        // Arbitrary JSON is rarely an API Gateway event: the runtime refuses it (an error, not
        // a panic) before the handler; one it decodes is answered as documented.
        if let Some(request) = request(&e)? {
            check(&world(claimed), request)?;
        }
    }

    #[test]
    fn a_mutated_post_is_answered_as_documented(
        e in mutated(event("apigw-post-release.json")),
        claimed in any::<bool>(),
    ) {
        check_event(&world(claimed), &e)?;
    }

    #[test]
    fn a_mutated_get_is_answered_as_documented(
        e in mutated(event("apigw-get-release.json")),
        claimed in any::<bool>(),
    ) {
        check_event(&world(claimed), &e)?;
    }

    #[test]
    fn any_json_body_is_answered_as_documented(body in any_json(), claimed in any::<bool>()) {
        check_event(&world(claimed), &post(json!(body.to_string()), false))?;
    }

    #[test]
    fn any_text_body_is_answered_as_documented(text in any_text(), claimed in any::<bool>()) {
        check_event(&world(claimed), &post(json!(text), false))?;
    }

    #[test]
    fn any_base64_body_is_answered_as_documented(bytes in any_bytes(), claimed in any::<bool>()) {
        check_event(&world(claimed), &post(json!(base64(&bytes)), true))?;
    }

    #[test]
    fn a_broken_manifest_body_is_answered_as_documented(
        bytes in manifest_body(),
        encoded in any::<bool>(),
        claimed in any::<bool>(),
    ) {
        let body = if encoded {
            json!(base64(&bytes))
        } else {
            json!(String::from_utf8_lossy(&bytes))
        };
        check_event(&world(claimed), &post(body, encoded))?;
    }

    #[test]
    fn any_route_and_method_are_answered_as_documented(
        path in api_path(),
        method in method(),
        id in prop_oneof![Just(Value::Null), any_text().prop_map(Value::from)],
        claimed in any::<bool>(),
    ) {
        let mut e = event("apigw-get-release.json");
        e["path"] = json!(path);
        e["httpMethod"] = json!(method);
        e["pathParameters"] = if id.is_null() { id } else { json!({"id": id}) };
        check_event(&world(claimed), &e)?;
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn an_operation_with_any_body_is_answered_as_documented(
        action in select(vec!["cancel", "retry", "approve", "reject"]),
        id in prop_oneof![Just(SAMPLE_RELEASE.to_owned()), any_text()],
        body in prop_oneof![
            Just(Value::Null),
            any_json().prop_map(|v| json!(v.to_string())),
            any_text().prop_map(Value::from),
            operate_body_sample().prop_map(|v| json!(v.to_string())),
        ],
        state in any::<u8>(),
    ) {
        check_event(&world_in(state), &operate_event(action, &id, body))?;
    }

    #[test]
    fn a_mutated_operation_body_is_answered_as_documented(
        action in select(vec!["cancel", "retry", "approve", "reject"]),
        body in operate_body_sample().prop_flat_map(mutated),
        state in any::<u8>(),
    ) {
        let e = operate_event(action, SAMPLE_RELEASE, json!(body.to_string()));
        check_event(&world_in(state), &e)?;
    }

    #[test]
    fn a_list_with_any_query_is_answered_as_documented(
        query in proptest::collection::btree_map(
            prop_oneof![
                select(vec!["status", "limit", "next"]).prop_map(str::to_owned),
                any_text(),
            ],
            proptest::collection::vec(
                prop_oneof![
                    select(vec!["RUNNING", "FAILED", "0", "1", "20", "100", "101", "-1", ""])
                        .prop_map(str::to_owned),
                    any_text(),
                ],
                1..3,
            ),
            0..4,
        ),
        state in any::<u8>(),
    ) {
        let mut e = event("apigw-get-release.json");
        e["httpMethod"] = json!("GET");
        e["path"] = json!("/releases");
        e["resource"] = json!("/releases");
        e["pathParameters"] = Value::Null;
        let multi: serde_json::Map<String, Value> =
            query.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let single: serde_json::Map<String, Value> =
            query.iter().map(|(k, v)| (k.clone(), json!(v.last()))).collect();
        e["queryStringParameters"] = Value::Object(single);
        e["multiValueQueryStringParameters"] = Value::Object(multi);
        check_event(&world_in(state), &e)?;
    }
}

#[test]
fn base64_encodes_as_api_gateway_does() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    // And lambda_http reads it back.
    let request =
        lambda_http::request::from_str(&post(json!(base64(b"\x00{\xff}")), true).to_string())
            .unwrap();
    assert_eq!(request.body().as_ref(), b"\x00{\xff}");
    assert!(request.raw_http_path().starts_with("/releases"));
}
