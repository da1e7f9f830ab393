//! `GET /releases/{id}/timeline.svg` through the handler, as API Gateway's REST proxy event
//! (events/apigw-get-timeline.json), over the in-memory world: the picture of the release JSON
//! `GET /releases/{id}` answers, served as text SVG; an unknown or invalid id is GET's 404.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use release_api::handle;
use rm_core::ports::Clock;
use rm_core::usecases;
use rm_core::{ReleaseId, ReleaseStatus};
use rm_testkit::event;
use rm_testkit::props::{World, SAMPLE_EXECUTION, SAMPLE_RELEASE};
use serde_json::{json, Value};

fn decode(e: Value) -> Request {
    lambda_http::request::from_str(&e.to_string()).expect("an API Gateway proxy event")
}

/// The sample `GET /releases/{id}/timeline.svg` for release `id`.
fn timeline_event(id: &str) -> Value {
    let mut e = event("apigw-get-timeline.json");
    e["path"] = json!(format!("/releases/{id}/timeline.svg"));
    e["pathParameters"]["id"] = json!(id);
    e["requestContext"]["path"] = json!(format!("/Prod/releases/{id}/timeline.svg"));
    e
}

/// The sample `GET /releases/{id}` for release `id`.
fn get_event(id: &str) -> Value {
    let mut e = event("apigw-get-release.json");
    e["path"] = json!(format!("/releases/{id}"));
    e["pathParameters"]["id"] = json!(id);
    e
}

async fn call(world: &World, request: Request) -> Response<Body> {
    handle(request, &world.api_ports()).await
}

fn header<'a>(response: &'a Response<Body>, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header: {:?}", response.headers()))
}

fn json_body(response: &Response<Body>) -> Value {
    assert_eq!(header(response, "content-type"), "application/json");
    serde_json::from_slice(response.body().as_ref()).expect("a JSON body")
}

/// The SVG of a 200, checked to be text (API Gateway passes it on as it is, `isBase64Encoded:
/// false`) and well-formed XML whose root is `<svg>`.
fn svg_of(response: &Response<Body>) -> String {
    assert_eq!(response.status(), StatusCode::OK, "{:?}", response.body());
    assert_eq!(
        header(response, "content-type"),
        "image/svg+xml; charset=utf-8"
    );
    assert_eq!(header(response, "cache-control"), "no-store");
    let Body::Text(svg) = response.body() else {
        panic!("the SVG is sent as text, not {:?}", response.body());
    };
    let document = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}:\n{svg}"));
    assert_eq!(document.root_element().tag_name().name(), "svg", "{svg}");
    svg.clone()
}

/// The `<title>` of an SVG document.
fn title(svg: &str) -> String {
    let document = roxmltree::Document::parse(svg).expect("XML");
    document
        .descendants()
        .find(|n| n.has_tag_name("title"))
        .and_then(|n| n.text())
        .unwrap_or_else(|| panic!("no <title>:\n{svg}"))
        .to_owned()
}

#[tokio::test]
async fn the_timeline_is_the_release_json_of_get_drawn_as_svg() {
    let world = World::new();
    world.claim_sample().await;

    let response = call(&world, decode(event("apigw-get-timeline.json"))).await;
    let svg = svg_of(&response);
    assert!(title(&svg).contains(SAMPLE_RELEASE), "{svg}");

    // The same picture as drawing what GET /releases/{id} answers.
    let get = call(&world, decode(get_event(SAMPLE_RELEASE))).await;
    let release = json_body(&get);
    let drawn = rm_core::view::timeline::render(&release).expect("the release draws");
    assert_eq!(svg, drawn);
}

#[tokio::test]
async fn an_ended_release_is_drawn_too() {
    let world = World::new();
    world.claim_sample().await;
    let id = ReleaseId::parse(SAMPLE_RELEASE).unwrap();
    usecases::finish_release(
        &world.api_ports().writer(),
        &id,
        SAMPLE_EXECUTION,
        ReleaseStatus::Failed,
        Some("payments-api (Failed)"),
        world.clock.now(),
    )
    .await
    .unwrap();

    let response = call(&world, decode(timeline_event(SAMPLE_RELEASE))).await;
    let svg = svg_of(&response);
    let release = json_body(&call(&world, decode(get_event(SAMPLE_RELEASE))).await);
    assert_eq!(release["status"], "FAILED");
    assert_eq!(svg, rm_core::view::timeline::render(&release).unwrap());
}

#[tokio::test]
async fn an_unknown_or_invalid_release_id_is_404_as_get_answers() {
    let world = World::new();
    world.claim_sample().await;
    for missing in ["2026.09.9", "not a valid id!"] {
        let response = call(&world, decode(timeline_event(missing))).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
        let body = json_body(&response);
        assert!(
            body["message"].as_str().unwrap().contains("not found"),
            "{body}"
        );
        assert_eq!(body["releaseId"], missing, "{body}");
        let get = call(&world, decode(get_event(missing))).await;
        assert_eq!(
            get.status(),
            response.status(),
            "{missing}: the same answer as GET /releases/{{id}}"
        );
    }
}

#[tokio::test]
async fn other_methods_are_405_and_the_route_list_names_it() {
    let world = World::new();
    world.claim_sample().await;
    for method in ["POST", "PUT", "DELETE"] {
        let mut e = event("apigw-get-timeline.json");
        e["httpMethod"] = json!(method);
        e["requestContext"]["httpMethod"] = json!(method);
        let response = call(&world, decode(e)).await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
        assert_eq!(header(&response, "allow"), "GET");
        json_body(&response);
    }

    // Another picture name is no route; the 404 lists this one.
    let mut e = timeline_event(SAMPLE_RELEASE);
    e["path"] = json!(format!("/releases/{SAMPLE_RELEASE}/timeline.png"));
    let response = call(&world, decode(e)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body = json_body(&response);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("GET /releases/{id}/timeline.svg"),
        "{body}"
    );
}
