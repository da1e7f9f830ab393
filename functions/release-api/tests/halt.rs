//! release-api's halt routes through the handler, as API Gateway's REST proxy events, over the
//! in-memory world: `GET /halt`, `PUT /halt` `{"reason"}`, `DELETE /halt`; each answer (200,
//! 400, 405) and what it changes (the store's halt, the `Halt Status Change` events).

use lambda_http::http::StatusCode;
use lambda_http::Request;
use release_api::{halt_body, handle};
use rm_core::ports::ReleaseStore;
use rm_testkit::event;
use rm_testkit::props::World;
use serde_json::{json, Value};

const CALLER: &str = "arn:aws:iam::111122223333:user/release-manager";

/// `method /halt` with this body, as API Gateway's REST proxy sends it.
fn halt_request(method: &str, body: Option<&str>) -> Request {
    let mut e = event("apigw-post-release.json");
    e["httpMethod"] = json!(method);
    e["resource"] = json!("/halt");
    e["path"] = json!("/halt");
    e["pathParameters"] = Value::Null;
    e["body"] = body.map_or(Value::Null, |b| json!(b));
    e["requestContext"]["httpMethod"] = json!(method);
    e["requestContext"]["resourcePath"] = json!("/halt");
    e["requestContext"]["path"] = json!("/Prod/halt");
    lambda_http::request::from_str(&e.to_string()).expect("an API Gateway proxy event")
}

async fn call(world: &World, request: Request) -> (StatusCode, Value) {
    let response = handle(request, &world.api_ports()).await;
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = serde_json::from_slice(response.body().as_ref()).expect("a JSON body");
    (response.status(), body)
}

/// The `on` of every `Halt Status Change` published, in order.
fn halt_events(world: &World) -> Vec<bool> {
    world
        .bus
        .events()
        .iter()
        .filter(|e| e.detail_type == "Halt Status Change")
        .map(|e| e.detail["on"].as_bool().unwrap())
        .collect()
}

#[tokio::test]
async fn get_without_a_halt_is_off() {
    let world = World::new();
    let (status, body) = call(&world, halt_request("GET", None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"on": false}));
}

#[tokio::test]
async fn put_turns_the_halt_on_with_the_caller_as_by_and_get_shows_it() {
    let world = World::new();
    let (status, body) = call(
        &world,
        halt_request("PUT", Some(r#"{"reason": " incident 4711 "}"#)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["on"], true);
    assert_eq!(body["reason"], "incident 4711");
    assert_eq!(body["by"], CALLER);
    assert!(body["since"].is_string(), "{body}");
    let stored = world
        .store
        .halt()
        .await
        .unwrap()
        .expect("the halt is stored");
    assert_eq!(stored.reason, "incident 4711");
    assert_eq!(stored.by, CALLER);
    assert_eq!(halt_events(&world), vec![true]);

    let (status, shown) = call(&world, halt_request("GET", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown, body);
}

#[tokio::test]
async fn a_second_put_replaces_the_reason_and_keeps_since() {
    let world = World::new();
    let (_, first) = call(&world, halt_request("PUT", Some(r#"{"reason": "one"}"#))).await;
    world.clock.advance(time::Duration::minutes(5));
    let (status, second) = call(&world, halt_request("PUT", Some(r#"{"reason": "two"}"#))).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["reason"], "two");
    assert_eq!(second["since"], first["since"]);
}

#[tokio::test]
async fn delete_lifts_the_halt_and_answers_what_it_lifted() {
    let world = World::new();
    let (_, on) = call(&world, halt_request("PUT", Some(r#"{"reason": "freeze"}"#))).await;
    let (status, body) = call(&world, halt_request("DELETE", None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"on": false, "lifted": on}));
    assert_eq!(world.store.halt().await.unwrap(), None);
    assert_eq!(halt_events(&world), vec![true, false]);

    let (status, body) = call(&world, halt_request("DELETE", None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"on": false, "lifted": null}),
        "lifting no halt is no error"
    );
    assert_eq!(
        halt_events(&world),
        vec![true, false],
        "and publishes nothing"
    );
}

#[tokio::test]
async fn a_bad_body_is_400_naming_the_problem_and_changes_nothing() {
    let world = World::new();
    for (body, path, says) in [
        (None, "$", "a body is required"),
        (Some("not json"), "$", "not JSON"),
        (Some("[1]"), "$", "JSON object"),
        (Some("{}"), "$.reason", "required"),
        (Some(r#"{"reason": "  "}"#), "$.reason", "must not be empty"),
        (Some(r#"{"reason": 7}"#), "$.reason", "must be a string"),
        (
            Some(r#"{"reason": "x", "until": "tomorrow"}"#),
            "$.until",
            "unknown field",
        ),
    ] {
        let (status, answer) = call(&world, halt_request("PUT", body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}: {answer}");
        let errors = answer["errors"].as_array().unwrap();
        assert!(
            errors
                .iter()
                .any(|e| e["path"] == path && e["message"].as_str().unwrap().contains(says)),
            "{body:?}: {answer}"
        );
        assert!(answer["message"].is_string());
    }
    let long = format!(r#"{{"reason": "{}"}}"#, "x".repeat(1025));
    let (status, _) = call(&world, halt_request("PUT", Some(&long))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(world.store.halt().await.unwrap(), None);
    assert!(halt_events(&world).is_empty());
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let world = World::new();
    let response = handle(halt_request("POST", Some("{}")), &world.api_ports()).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET, PUT, DELETE");
}

#[test]
fn halt_body_takes_a_trimmed_reason() {
    assert_eq!(halt_body(br#"{"reason": " why "}"#).unwrap(), "why");
    assert!(halt_body(b"").is_err());
}
