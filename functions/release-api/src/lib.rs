//! release-api: the API Gateway (REST, IAM-authorized) handler.
//!
//! - `POST /releases` with a manifest: validates it, checks its pipelines, claims the release
//!   id for a fresh execution name and starts the state machine under that name. 202
//!   `{"releaseId", "statusUrl", "executionArn"}`; 400 `{"message", "errors": [{"path",
//!   "message"}]}`; 409 `{"message"}` when the id is already claimed. A repeat of the same
//!   manifest by the same caller while the release runs (a retry after API Gateway's 29 s
//!   integration timeout) is 202 with the first request's execution
//!   ([`rm_core::usecases::submit_release`]). The caller's IAM ARN is the release's
//!   `requestedBy`.
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
    let caller = context.as_ref().and_then(requester);
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
            repeat,
        } => {
            let status_url = status_url(request, release_id.as_str());
            tracing::info!(release = %release_id, execution = %execution_arn, repeat,
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

/// Who asked, for `requestedBy`: the caller's IAM ARN (`identity.userArn`, set by IAM
/// authorization); else the caller's id (`identity.caller`), else `account:<accountId>`.
fn requester(
    context: &lambda_http::aws_lambda_events::apigw::ApiGatewayProxyRequestContext,
) -> Option<String> {
    let identity = &context.identity;
    let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    given(&identity.user_arn)
        .or_else(|| given(&identity.caller))
        .or_else(|| given(&identity.account_id).map(|id| format!("account:{id}")))
}

/// Where GET shows the release, built from what API Gateway says the caller called
/// (`requestContext.domainName`, `path`, `stage`): nothing about the domain is assumed, so it
/// holds in every partition (`amazonaws.com.cn`, ...) and behind a custom domain. Without a
/// request context, the path alone.
fn status_url(request: &Request, release_id: &str) -> String {
    let path = format!("/releases/{release_id}");
    let Some(context) = api_context(request) else {
        return path;
    };
    let Some(domain) = context.domain_name.as_deref().filter(|d| !d.is_empty()) else {
        return path;
    };
    format!("https://{domain}{}{path}", base_path(&context, domain))
}

/// What the caller's path has before the API's routes: `/Prod` on the API's own endpoint
/// (`{apiId}.execute-api.{region}.{dnsSuffix}/{stage}/...`), a custom domain's base path
/// mapping (`/v1`), or nothing. Read off `requestContext.path` (the path as called) minus
/// `resourcePath` (the route); else the stage when the domain is the API's own.
fn base_path(
    context: &lambda_http::aws_lambda_events::apigw::ApiGatewayProxyRequestContext,
    domain: &str,
) -> String {
    if let (Some(called), Some(route)) = (context.path.as_deref(), context.resource_path.as_deref())
    {
        if let Some(base) = called.strip_suffix(route) {
            return base.trim_end_matches('/').to_owned();
        }
    }
    let own_domain = context
        .apiid
        .as_deref()
        .is_some_and(|id| domain.starts_with(&format!("{id}.execute-api.")));
    match context.stage.as_deref() {
        Some(stage) if own_domain && !stage.is_empty() => format!("/{stage}"),
        _ => String::new(),
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
