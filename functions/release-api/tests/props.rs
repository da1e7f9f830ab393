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
use release_api::{handle, Ports};
use rm_core::view::ReleaseView;
use rm_core::ReleaseId;
use rm_testkit::props::{
    any_bytes, any_json, any_text, block_on, check_keys, config, corrupted, event, event_bytes,
    mutated, text_field, World,
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

/// Runs the handler and checks the response: JSON, a documented status for the method, the
/// body that status documents, a message on every error, never a 500.
fn check(world: &World, request: Request) -> Result<(), TestCaseError> {
    let method = request.method().clone();
    let started_before = world.executions.started().len();
    let ports = Ports {
        store: &world.store,
        pipelines: &world.pipelines,
        executions: &world.executions,
        clock: &world.clock,
    };
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
    prop_assert_eq!(started, usize::from(status == StatusCode::ACCEPTED));
    match status {
        StatusCode::OK => {
            prop_assert_eq!(&method, &Method::GET);
            serde_json::from_value::<ReleaseView>(body.clone())
                .map_err(|e| TestCaseError::fail(format!("not the release JSON ({e}): {body}")))?;
        }
        StatusCode::ACCEPTED => {
            prop_assert_eq!(&method, &Method::POST);
            check_keys(&body, &["releaseId", "statusUrl", "executionArn"])?;
            let id = text_field(&body, "releaseId")?;
            prop_assert!(ReleaseId::parse(id).is_ok(), "{}", body);
            let url = text_field(&body, "statusUrl")?;
            prop_assert!(url.ends_with(&format!("/releases/{id}")), "{}", body);
            text_field(&body, "executionArn")?;
        }
        StatusCode::BAD_REQUEST => {
            prop_assert_eq!(&method, &Method::POST);
            check_keys(&body, &["message", "errors"])?;
            let errors = body["errors"].as_array();
            prop_assert!(errors.is_some_and(|e| !e.is_empty()), "{}", body);
            for e in errors.into_iter().flatten() {
                check_keys(e, &["path", "message"])?;
                prop_assert!(text_field(e, "path")?.starts_with('$'), "{}", e);
                text_field(e, "message")?;
            }
        }
        StatusCode::CONFLICT => {
            prop_assert_eq!(&method, &Method::POST);
            check_keys(&body, &["message", "releaseId"])?;
        }
        StatusCode::NOT_FOUND => check_keys(&body, &["message"])?,
        StatusCode::METHOD_NOT_ALLOWED => {
            check_keys(&body, &["message"])?;
            let allow = response.headers().get(header::ALLOW);
            prop_assert!(
                allow.is_some_and(|a| a == "GET" || a == "POST"),
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
