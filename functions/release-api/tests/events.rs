//! release-api fed the API Gateway events in events/, over the in-memory ports.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use release_api::{handle, Ports};
use rm_core::error::PortError;
use rm_core::memory::{
    FakeExecutions, FakePipelines, ManualClock, MemoryStore, RecordingTokens, NO_BUS,
};
use rm_core::ports::Clock;
use rm_core::ports::ReleaseStore;
use rm_core::usecases;
use rm_core::{ReleaseId, ReleaseStatus};
use rm_testkit::event;
use serde_json::{json, Value};

fn request(event: Value) -> Request {
    lambda_http::request::from_str(&event.to_string()).expect("an API Gateway proxy event")
}

/// The POST event with another request id (a new API call) and, if given, another body.
fn post(request_id: &str, body: Option<&str>) -> Request {
    let mut e = event("apigw-post-release.json");
    e["requestContext"]["requestId"] = json!(request_id);
    if let Some(body) = body {
        e["body"] = json!(body);
    }
    request(e)
}

fn get(id: &str) -> Request {
    let mut e = event("apigw-get-release.json");
    e["path"] = json!(format!("/releases/{id}"));
    e["pathParameters"]["id"] = json!(id);
    request(e)
}

struct World {
    store: MemoryStore,
    pipelines: FakePipelines,
    executions: FakeExecutions,
    tokens: RecordingTokens,
    clock: ManualClock,
    alarms: rm_core::memory::FakeAlarms,
    health: rm_core::memory::FakeHealth,
}

impl World {
    fn new() -> Self {
        World {
            store: MemoryStore::new(),
            pipelines: FakePipelines::with(&[
                "payments-db-migrate",
                "payments-api",
                "checkout-web",
                "ledger-worker",
            ]),
            executions: FakeExecutions::default(),
            tokens: RecordingTokens::default(),
            clock: ManualClock::fixed(),
            alarms: Default::default(),
            health: Default::default(),
        }
    }

    fn ports(&self) -> Ports<'_> {
        Ports {
            sensors: rm_core::ports::Sensors {
                alarms: &self.alarms,
                health: &self.health,
            },
            store: &self.store,
            pipelines: &self.pipelines,
            executions: &self.executions,
            tokens: &self.tokens,
            bus: &NO_BUS,
            clock: &self.clock,
        }
    }

    async fn call(&self, request: Request) -> (StatusCode, Value, Response<Body>) {
        let response = handle(request, &self.ports()).await;
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "every answer is JSON"
        );
        let body: Value = serde_json::from_slice(response.body().as_ref()).expect("JSON body");
        (response.status(), body, response)
    }
}

#[tokio::test]
async fn post_claims_the_release_starts_the_execution_and_answers_202() {
    let world = World::new();
    let (status, body, response) = world.call(request(event("apigw-post-release.json"))).await;

    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["releaseId"], "2026.03.1");
    let status_url =
        "https://abcd123456.execute-api.eu-west-1.amazonaws.com/Prod/releases/2026.03.1";
    assert_eq!(body["statusUrl"], status_url);
    assert_eq!(response.headers()["location"], status_url);

    let started = world.executions.started();
    assert_eq!(started.len(), 1);
    let (name, input) = &started[0];
    assert_eq!(name, "api-c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    assert_eq!(input, &json!({"claimedRelease": "2026.03.1"}));
    assert!(body["executionArn"]
        .as_str()
        .unwrap()
        .ends_with(name.as_str()));

    let stored = world
        .store
        .get(&ReleaseId::parse("2026.03.1").unwrap())
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!(&stored.release.owner, name);
    assert_eq!(
        stored.release.source.location.as_deref(),
        Some("api:arn:aws:iam::111122223333:user/release-manager")
    );
}

/// The sample POST's manifest, with `f` applied to it.
fn manifest_with(f: impl FnOnce(&mut Value)) -> String {
    let e = event("apigw-post-release.json");
    let mut m: Value = serde_json::from_str(e["body"].as_str().unwrap()).unwrap();
    f(&mut m);
    m.to_string()
}

#[tokio::test]
async fn post_of_a_claimed_release_id_with_another_manifest_is_409() {
    let world = World::new();
    world.call(post("first-call", None)).await;
    let other = manifest_with(|m| m["pipelines"][1]["variables"]["DEPLOY_ENV"] = json!("staging"));
    let (status, body, _) = world.call(post("second-call", Some(&other))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("2026.03.1"),
        "{body}"
    );
    assert_eq!(world.executions.started().len(), 1, "no second execution");
}

#[tokio::test]
async fn a_repeat_of_the_same_manifest_is_202_with_the_first_execution() {
    // The first POST outlived API Gateway's timeout (504 to the caller), who sends it again.
    let world = World::new();
    let (status, first, _) = world.call(post("first-call", None)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");

    // The same manifest, written differently: key order, whitespace, a spelled-out default.
    let same = manifest_with(|m| {
        m["pipelines"][3] = json!({"wave": 1, "name": "ledger-worker", "timeoutMinutes": 120});
    });
    for (request_id, body) in [("retry-1", None), ("retry-2", Some(same.as_str()))] {
        let (status, again, response) = world.call(post(request_id, body)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{again}");
        assert_eq!(again["executionArn"], first["executionArn"]);
        assert_eq!(again["statusUrl"], first["statusUrl"]);
        assert_eq!(again["releaseId"], "2026.03.1");
        assert_eq!(
            response.headers()["location"],
            first["statusUrl"].as_str().unwrap()
        );
    }
    // Only the first request's execution (StartExecution with its name and input is idempotent),
    // and the release still belongs to it.
    let started = world.executions.started();
    assert!(
        started.iter().all(|s| s == &started[0]),
        "one execution name and input: {started:?}"
    );
    assert_eq!(started[0].0, "api-first-call");
    let stored = world
        .store
        .get(&ReleaseId::parse("2026.03.1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.release.owner, started[0].0);
}

#[tokio::test]
async fn a_repeat_by_another_caller_or_of_an_ended_release_is_409() {
    let world = World::new();
    world.call(post("first-call", None)).await;

    let mut e = event("apigw-post-release.json");
    e["requestContext"]["requestId"] = json!("someone-else");
    e["requestContext"]["identity"]["userArn"] = json!("arn:aws:iam::111122223333:user/intern");
    let (status, body, _) = world.call(request(e)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let id = ReleaseId::parse("2026.03.1").unwrap();
    let owner = world.store.get(&id).await.unwrap().unwrap().release.owner;
    usecases::finish_release(
        &world.ports().writer(),
        &id,
        &owner,
        ReleaseStatus::Failed,
        Some("x"),
        world.clock.now(),
    )
    .await
    .unwrap();
    let (status, body, _) = world.call(post("late-retry", None)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(world.executions.started().len(), 1, "no second start");
}

#[tokio::test]
async fn the_release_records_who_asked() {
    let world = World::new();
    world.call(post("first-call", None)).await;
    let (_, body, _) = world.call(request(event("apigw-get-release.json"))).await;
    assert_eq!(
        body["requestedBy"],
        "arn:aws:iam::111122223333:user/release-manager"
    );

    // Without a userArn: the caller's id, else its account.
    for (identity, expected) in [
        (
            json!({"userArn": null, "caller": "AROAEXAMPLE:session", "accountId": "111122223333"}),
            "AROAEXAMPLE:session",
        ),
        (
            json!({"userArn": null, "caller": null, "accountId": "111122223333"}),
            "account:111122223333",
        ),
    ] {
        let world = World::new();
        let mut e = event("apigw-post-release.json");
        e["requestContext"]["identity"] = identity;
        let (status, body, _) = world.call(request(e)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let (_, body, _) = world.call(request(event("apigw-get-release.json"))).await;
        assert_eq!(body["requestedBy"], expected);
    }
}

#[tokio::test]
async fn the_status_url_is_where_the_caller_called() {
    // (domainName, stage, requestContext.path) as API Gateway passes them, and the URL.
    for (domain, stage, path, expected) in [
        // Another partition's DNS suffix, another stage.
        (
            "abcd123456.execute-api.cn-north-1.amazonaws.com.cn",
            "Staging",
            Some("/Staging/releases"),
            "https://abcd123456.execute-api.cn-north-1.amazonaws.com.cn/Staging/releases/2026.03.1",
        ),
        // A custom domain with a base path mapping, and without.
        (
            "releases.example.com",
            "Prod",
            Some("/v1/releases"),
            "https://releases.example.com/v1/releases/2026.03.1",
        ),
        (
            "releases.example.com",
            "Prod",
            Some("/releases"),
            "https://releases.example.com/releases/2026.03.1",
        ),
        // No path in the context: the stage on the API's own domain only.
        (
            "abcd123456.execute-api.us-gov-west-1.amazonaws.com",
            "Prod",
            None,
            "https://abcd123456.execute-api.us-gov-west-1.amazonaws.com/Prod/releases/2026.03.1",
        ),
        (
            "releases.example.com",
            "Prod",
            None,
            "https://releases.example.com/releases/2026.03.1",
        ),
    ] {
        let world = World::new();
        let mut e = event("apigw-post-release.json");
        e["requestContext"]["domainName"] = json!(domain);
        e["requestContext"]["stage"] = json!(stage);
        e["requestContext"]["path"] = json!(path);
        let (status, body, response) = world.call(request(e)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["statusUrl"], expected, "{domain} {path:?}");
        assert_eq!(response.headers()["location"], expected);
    }
}

#[tokio::test]
async fn post_of_an_invalid_manifest_is_400_with_every_error() {
    let world = World::new();
    let bad = std::fs::read_to_string(format!(
        "{}/../../events/bad-manifests/invalid-fields.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let (status, body, _) = world.call(post("bad-call", Some(&bad))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert!(errors.len() >= 4, "{body}");
    let paths: Vec<&str> = errors.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"$.releaseId"), "{paths:?}");
    assert!(paths.contains(&"$.pipelines[0].wave"), "{paths:?}");
    assert!(errors.iter().all(|e| e["message"].is_string()));
    assert!(world.executions.started().is_empty());
}

#[tokio::test]
async fn post_of_unknown_pipelines_empty_or_non_json_bodies_is_400() {
    let world = World::new();
    let unknown =
        r#"{"releaseId": "2026.03.2", "pipelines": ["payments-api", "no-such-pipeline"]}"#;
    let (status, body, _) = world.call(post("unknown", Some(unknown))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["path"], "$.pipelines[1].name");

    for text in ["", "releaseId: 1", "[]"] {
        let (status, body, _) = world.call(post("junk", Some(text))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text:?}: {body}");
        assert!(!body["errors"].as_array().unwrap().is_empty());
    }
    // None of it used up a release id.
    let (status, _, _) = world.call(post("fixed", None)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_failed_start_is_500_with_a_message_and_gives_the_id_back() {
    let world = World::new();
    world
        .executions
        .fail_with(PortError::Transient("connection reset".into()));
    let (status, body, _) = world.call(post("first", None)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("connection reset"),
        "{body}"
    );
    assert!(world
        .store
        .get(&ReleaseId::parse("2026.03.1").unwrap())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn get_returns_the_release_json_or_404() {
    let world = World::new();
    world.call(post("first", None)).await;

    let (status, body, _) = world.call(request(event("apigw-get-release.json"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["releaseId"], "2026.03.1");
    assert_eq!(body["status"], "RUNNING");
    assert_eq!(body["onFailure"], "stop");
    assert_eq!(body["maxConcurrency"], 5);
    assert_eq!(body["requestedAt"], "2026-01-01T00:00:00Z");
    let pipelines = body["pipelines"].as_array().unwrap();
    assert_eq!(pipelines.len(), 4);
    assert_eq!(pipelines[0]["status"], "NotStarted");
    assert_eq!(pipelines[0]["startedAt"], Value::Null);
    assert!(pipelines.iter().all(|p| p["history"].is_array()));

    for missing in ["2026.09.9", "not a valid id!"] {
        let (status, body, _) = world.call(get(missing)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}: {body}");
        assert!(body["message"].as_str().unwrap().contains("not found"));
    }
}

#[tokio::test]
async fn other_routes_and_methods_are_404_and_405() {
    let world = World::new();
    let mut e = event("apigw-get-release.json");
    e["httpMethod"] = json!("DELETE");
    let (status, body, response) = world.call(request(e)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(response.headers()["allow"], "GET");

    let mut e = event("apigw-post-release.json");
    e["httpMethod"] = json!("DELETE");
    let (status, _, response) = world.call(request(e)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET, POST");

    let mut e = event("apigw-get-release.json");
    e["path"] = json!("/pipelines");
    e["resource"] = json!("/pipelines");
    let (status, body, _) = world.call(request(e)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["message"].as_str().unwrap().contains("POST /releases"));
}

#[test]
fn execution_names_fit_step_functions_rules() {
    let name = release_api::execution_name("c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    assert_eq!(name, "api-c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    let long = release_api::execution_name(&"x/y".repeat(60));
    assert!(long.len() <= 80);
    assert!(long
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
}
