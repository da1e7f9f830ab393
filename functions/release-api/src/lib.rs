//! release-api: the API Gateway (REST, IAM-authorized) handler.
//!
//! - `POST /releases` with a manifest: validates it, checks its pipelines, claims the release
//!   id for a fresh execution name and starts the state machine under that name. 202
//!   `{"releaseId", "statusUrl", "executionArn"}`; 400 `{"message", "errors": [{"path",
//!   "message"}]}`; 409 `{"message"}` when the id is already claimed.
//! - `GET /releases/{id}`: 200 with the release JSON, 404 when unknown.
//! - Anything else: 404 or 405 with a JSON message. A failure is a 500 with a JSON message,
//!   never a panic.

use lambda_http::http::{header, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use rm_core::usecases::{self, SubmitOutcome};
use rm_core::TaskError;
use serde_json::{json, Value};

/// The ports the API needs, built once per Lambda instance.
pub use rm_core::ports::ApiPorts as Ports;

/// Routes the request and answers it; every outcome is an HTTP response with a JSON body.
pub async fn handle(request: Request, ports: &Ports<'_>) -> Response<Body> {
    let path = request.raw_http_path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = request.method().clone();
    let result = match (segments.as_slice(), &method) {
        (["releases"], &Method::POST) => submit(&request, ports).await,
        (["releases"], _) => Ok(not_allowed(&method, "POST")),
        (["releases", id], &Method::GET) => {
            let id = request
                .path_parameters_ref()
                .and_then(|p| p.first("id"))
                .unwrap_or(id)
                .to_owned();
            get(&id, ports).await
        }
        (["releases", _], _) => Ok(not_allowed(&method, "GET")),
        _ => Ok(respond(
            StatusCode::NOT_FOUND,
            json!({"message": format!("no route for {method} {path}; the API has POST /releases and GET /releases/{{id}}")}),
        )),
    };
    result.unwrap_or_else(|e| {
        tracing::error!(error_type = e.error_type(), error = %e, "request failed");
        respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"message": e.to_string(), "errorType": e.error_type()}),
        )
    })
}

async fn submit(request: &Request, ports: &Ports<'_>) -> Result<Response<Body>, TaskError> {
    let context = api_context(request);
    let request_id = context
        .as_ref()
        .and_then(|c| c.request_id.clone())
        .or_else(|| request.lambda_context_ref().map(|c| c.request_id.clone()))
        .unwrap_or_else(|| ports.clock.now().unix_timestamp_nanos().to_string());
    let execution_name = execution_name(&request_id);
    let caller = context.as_ref().and_then(|c| c.identity.user_arn.clone());
    let outcome = usecases::submit_release(
        request.body().as_ref(),
        &execution_name,
        caller.as_deref(),
        ports,
    )
    .await?;
    Ok(match outcome {
        SubmitOutcome::Accepted {
            release_id,
            execution_arn,
        } => {
            let status_url = status_url(request, release_id.as_str());
            tracing::info!(release = %release_id, execution = %execution_name,
                caller = caller.as_deref().unwrap_or(""), "release accepted");
            let mut response = respond(
                StatusCode::ACCEPTED,
                json!({
                    "releaseId": release_id.as_str(),
                    "statusUrl": status_url,
                    "executionArn": execution_arn,
                }),
            );
            if let Ok(location) = header::HeaderValue::from_str(&status_url) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        SubmitOutcome::Invalid(errors) => {
            let n = errors.len();
            respond(
                StatusCode::BAD_REQUEST,
                json!({
                    "message": format!("the manifest is invalid ({n} problem{})", if n == 1 { "" } else { "s" }),
                    "errors": errors,
                }),
            )
        }
        SubmitOutcome::Conflict { release_id } => respond(
            StatusCode::CONFLICT,
            json!({
                "message": format!(
                    "release {release_id} was already requested; GET {} shows it, or send the manifest with a new releaseId",
                    status_url(request, release_id.as_str())
                ),
                "releaseId": release_id.as_str(),
            }),
        ),
    })
}

async fn get(id: &str, ports: &Ports<'_>) -> Result<Response<Body>, TaskError> {
    Ok(match usecases::get_release(id, ports).await? {
        Some(view) => {
            let body = serde_json::to_value(&view)
                .map_err(|e| TaskError::Internal(format!("cannot encode the release: {e}")))?;
            respond(StatusCode::OK, body)
        }
        None => respond(
            StatusCode::NOT_FOUND,
            json!({"message": format!("release {id:?} not found")}),
        ),
    })
}

/// A Step Functions execution name (1-80 letters, digits, `-`, `_`), unique per request.
pub fn execution_name(request_id: &str) -> String {
    let safe: String = request_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(76)
        .collect();
    format!("api-{safe}")
}

fn api_context(
    request: &Request,
) -> Option<lambda_http::aws_lambda_events::apigw::ApiGatewayProxyRequestContext> {
    #[allow(unreachable_patterns)]
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV1(c) => Some(c.clone()),
        _ => None,
    }
}

/// Where GET shows the release: the API's own address when API Gateway gave it.
fn status_url(request: &Request, release_id: &str) -> String {
    let path = format!("/releases/{release_id}");
    let Some(context) = api_context(request) else {
        return path;
    };
    match (context.domain_name.as_deref(), context.stage.as_deref()) {
        (Some(domain), Some(stage)) if domain.ends_with(".amazonaws.com") => {
            format!("https://{domain}/{stage}{path}")
        }
        // A custom domain maps the stage itself.
        (Some(domain), _) => format!("https://{domain}{path}"),
        _ => path,
    }
}

fn not_allowed(method: &Method, allow: &'static str) -> Response<Body> {
    let mut response = respond(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"message": format!("{method} is not allowed here; use {allow}")}),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}

fn respond(status: StatusCode, body: Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
