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
//! - `GET /releases?status=&limit=&next=`: 200 `{"releases": [summaries], "next"}`, newest
//!   first; `status` one of RUNNING, SUCCEEDED, FAILED, CANCELLED; `limit` 1-100 (default 20);
//!   `next` the previous page's token. 400 for anything else in the query.
//! - `GET /releases/{id}`: 200 with the release JSON, 404 when unknown.
//! - `GET /releases/{id}/timeline.svg`: 200 with the release drawn as an SVG Gantt chart
//!   ([`rm_core::view::timeline::render`] of the release JSON GET answers), `Content-Type:
//!   image/svg+xml; charset=utf-8`, `Cache-Control: no-store` (a running release changes); 404
//!   `{"message", "releaseId"}` when unknown (or not a valid release id, as GET).
//! - Operating a release (ARCHITECTURE.md §3a), the caller's IAM ARN recorded as `by`:
//!   `POST /releases/{id}/cancel` `{"reason"}`, `POST /releases/{id}/retry` (no body, or `{}`),
//!   `POST /releases/{id}/approve` `{"wave"}`, `POST /releases/{id}/reject` `{"wave",
//!   "reason"}`. 202 with the release JSON after the change (a retry adds `executionArn`, the
//!   new attempt's execution); 400 `{"message", "errors"}` naming each bad field; 404
//!   `{"message", "releaseId"}` for an unknown release; 409 `{"message", "releaseId"}` when the
//!   release's state does not allow it (cancel of an ended release, retry of a RUNNING or
//!   SUCCEEDED one, a decision on a wave that is not waiting).
//! - The stack-wide halt (ARCHITECTURE.md §5a): `GET /halt` 200 `{"on": false}` or `{"on":
//!   true, "reason", "by", "since"}`; `PUT /halt` `{"reason"}` turns it on (the caller's IAM
//!   ARN as `by`; a repeat replaces it), 200 with the halt; `DELETE /halt` lifts it, 200
//!   `{"on": false, "lifted": <the halt lifted, or null>}`. Waiting releases are re-evaluated
//!   at once ([`rm_core::usecases::set_halt`], [`rm_core::usecases::lift_halt`]). A bad body
//!   is 400 `{"message", "errors"}`.
//! - Anything else: 404 or 405 with a JSON message. A failure is a 500 with a JSON message,
//!   never a panic. Errors of the use cases become statuses in one place ([`error_status`]).

use lambda_http::http::{header, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use rm_core::error::ValidationError;
use rm_core::ports::{ExecutionState, Executions, ListQuery, PortResult};
use rm_core::usecases::{self, Decision, SubmitOutcome};
use rm_core::view::{ReleaseList, ReleaseView};
use rm_core::{ReleaseId, ReleaseStatus, TaskError};
use serde_json::{json, Map, Value};
use std::sync::Mutex;

/// The ports the API needs, built once per Lambda instance.
pub use rm_core::ports::ApiPorts as Ports;

/// Routes the request and answers it; every outcome is an HTTP response with a JSON body.
pub async fn handle(request: Request, ports: &Ports<'_>) -> Response<Body> {
    let path = request.raw_http_path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = request.method().clone();
    let result = match (segments.as_slice(), &method) {
        (["releases"], &Method::POST) => submit(&request, ports).await,
        (["releases"], &Method::GET) => list(&request, ports).await,
        (["releases"], _) => Ok(not_allowed(&method, "GET, POST")),
        (["releases", id], &Method::GET) => {
            let id = path_id(&request, id);
            get(&id, ports).await
        }
        (["releases", _], _) => Ok(not_allowed(&method, "GET")),
        (["releases", id, TIMELINE], &Method::GET) => {
            let id = path_id(&request, id);
            timeline(&id, ports).await
        }
        (["releases", _, TIMELINE], _) => Ok(not_allowed(&method, "GET")),
        (["halt"], &Method::GET) => get_halt(ports).await,
        (["halt"], &Method::PUT) => put_halt(&request, ports).await,
        (["halt"], &Method::DELETE) => delete_halt(&request, ports).await,
        (["halt"], _) => Ok(not_allowed(&method, "GET, PUT, DELETE")),
        (["releases", id, action], _) if Action::parse(action).is_some() => {
            if method != Method::POST {
                Ok(not_allowed(&method, "POST"))
            } else {
                let id = path_id(&request, id);
                let action = Action::parse(action).unwrap_or(Action::Retry);
                operate(&request, &id, action, ports).await
            }
        }
        _ => Ok(respond(
            StatusCode::NOT_FOUND,
            json!({"message": format!("no route for {method} {path}; the API has POST /releases, GET /releases, GET /releases/{{id}}, GET /releases/{{id}}/timeline.svg, POST /releases/{{id}}/cancel|retry|approve|reject and GET|PUT|DELETE /halt")}),
        )),
    };
    result.unwrap_or_else(error_response)
}

/// The release id of a `/releases/{id}...` route: API Gateway's path parameter, else the
/// path's segment.
fn path_id(request: &Request, segment: &str) -> String {
    request
        .path_parameters_ref()
        .and_then(|p| p.first("id"))
        .unwrap_or(segment)
        .to_owned()
}

/// What a use case's error answers: the one place error kinds become statuses. Bad input
/// 400, an unknown release 404, a state that does not allow the request 409 (its message
/// says why), anything else 500 with its `errorType`.
pub fn error_status(e: &TaskError) -> StatusCode {
    match e {
        TaskError::ManifestInvalid(_) | TaskError::BadInput(_) => StatusCode::BAD_REQUEST,
        TaskError::NotFound(_) => StatusCode::NOT_FOUND,
        TaskError::Conflict(_) | TaskError::Duplicate(_) | TaskError::ReleaseEnded(_) => {
            StatusCode::CONFLICT
        }
        TaskError::ManifestUnreadable(_)
        | TaskError::Throttled(_)
        | TaskError::Transient(_)
        | TaskError::PipelineNotStartable(_)
        | TaskError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error_response(e: TaskError) -> Response<Body> {
    let status = error_status(&e);
    match e {
        TaskError::ManifestInvalid(rejection) => bad_request(rejection.0),
        TaskError::BadInput(message) => bad_request(vec![ValidationError::new("$", message)]),
        e if status == StatusCode::INTERNAL_SERVER_ERROR => {
            tracing::error!(error_type = e.error_type(), error = %e, "request failed");
            respond(
                status,
                json!({"message": e.to_string(), "errorType": e.error_type()}),
            )
        }
        e => respond(status, json!({"message": e.to_string()})),
    }
}

/// 400 with every problem at once.
fn bad_request(errors: Vec<ValidationError>) -> Response<Body> {
    let message = match errors.as_slice() {
        [one] => one.to_string(),
        many => format!("the request is invalid ({} problems)", many.len()),
    };
    respond(
        StatusCode::BAD_REQUEST,
        json!({"message": message, "errors": errors}),
    )
}

/// The execution name of a request that starts one (a POST of a manifest, a retry): from API
/// Gateway's request id, unique per call.
fn request_execution_name(request: &Request, ports: &Ports<'_>) -> String {
    let request_id = api_context(request)
        .and_then(|c| c.request_id)
        .or_else(|| request.lambda_context_ref().map(|c| c.request_id.clone()))
        .unwrap_or_else(|| ports.clock.now().unix_timestamp_nanos().to_string());
    execution_name(&request_id)
}

async fn submit(request: &Request, ports: &Ports<'_>) -> Result<Response<Body>, TaskError> {
    let context = api_context(request);
    let execution_name = request_execution_name(request, ports);
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

/// The last segment of `GET /releases/{id}/timeline.svg`.
const TIMELINE: &str = "timeline.svg";

/// GET /releases/{id}/timeline.svg: the release JSON of GET, drawn. An unknown (or invalid)
/// id is 404 as GET's; a release the renderer cannot draw is a 500 naming why.
async fn timeline(id: &str, ports: &Ports<'_>) -> Result<Response<Body>, TaskError> {
    let Some(view) = usecases::get_release(id, ports).await? else {
        return Ok(unknown_release(id));
    };
    let release = serde_json::to_value(&view)
        .map_err(|e| TaskError::Internal(format!("cannot encode the release: {e}")))?;
    let svg = rm_core::view::timeline::render(&release)
        .map_err(|e| TaskError::Internal(format!("release {id}: {e}")))?;
    let mut response = Response::new(Body::Text(svg));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("image/svg+xml; charset=utf-8"),
    );
    // A running release's picture changes with every poll: never served from a cache.
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// The most releases one page lists, and how many without `limit`.
pub const MAX_LIMIT: usize = 100;
pub const DEFAULT_LIMIT: usize = 20;
/// A page token longer than this was not one of ours.
const MAX_PAGE_TOKEN: usize = 2048;

/// GET /releases: newest first, one page.
async fn list(request: &Request, ports: &Ports<'_>) -> Result<Response<Body>, TaskError> {
    let query = match list_query(request) {
        Ok(q) => q,
        Err(errors) => return Ok(bad_request(errors)),
    };
    let page = ports.store.list_releases(&query).await?;
    let body = serde_json::to_value(ReleaseList::from(&page))
        .map_err(|e| TaskError::Internal(format!("cannot encode the releases: {e}")))?;
    Ok(respond(StatusCode::OK, body))
}

/// Reads `?status=&limit=&next=`; every problem at once, each at `?name`.
fn list_query(request: &Request) -> Result<ListQuery, Vec<ValidationError>> {
    let params = request.query_string_parameters();
    let mut errors = Vec::new();
    let mut query = ListQuery {
        status: None,
        limit: DEFAULT_LIMIT,
        next: None,
    };
    for (name, _) in params.iter() {
        if !["status", "limit", "next"].contains(&name) {
            errors.push(ValidationError::new(
                format!("?{name}"),
                "unknown query parameter; GET /releases takes status, limit and next",
            ));
        }
    }
    let one = |name: &str, errors: &mut Vec<ValidationError>| -> Option<String> {
        let all = params.all(name)?;
        if all.len() > 1 {
            errors.push(ValidationError::new(
                format!("?{name}"),
                format!("given {} times; give it once", all.len()),
            ));
            return None;
        }
        all.first().map(|v| (*v).to_owned())
    };
    if let Some(status) = one("status", &mut errors) {
        match ReleaseStatus::parse(&status) {
            Some(s) => query.status = Some(s),
            None => errors.push(ValidationError::new(
                "?status",
                format!("{status:?} is not a release status; use RUNNING, SUCCEEDED, FAILED or CANCELLED"),
            )),
        }
    }
    if let Some(limit) = one("limit", &mut errors) {
        match limit.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => query.limit = n,
            _ => errors.push(ValidationError::new(
                "?limit",
                format!(
                    "{limit:?} is not a number from 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"
                ),
            )),
        }
    }
    if let Some(next) = one("next", &mut errors) {
        if next.is_empty() || next.len() > MAX_PAGE_TOKEN || next.chars().any(char::is_control) {
            errors.push(ValidationError::new(
                "?next",
                "not a page token; pass the next of the previous page as it was",
            ));
        } else {
            query.next = Some(next);
        }
    }
    if errors.is_empty() {
        Ok(query)
    } else {
        Err(errors)
    }
}

/// What an operator asks of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Cancel,
    Retry,
    Approve,
    Reject,
}

/// The longest `reason` taken (it ends up in a release's cause and in Step Functions' stop
/// and failure causes).
pub const MAX_REASON: usize = 1024;

impl Action {
    pub fn parse(segment: &str) -> Option<Self> {
        Some(match segment {
            "cancel" => Self::Cancel,
            "retry" => Self::Retry,
            "approve" => Self::Approve,
            "reject" => Self::Reject,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Retry => "retry",
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }

    /// The body's fields.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Self::Cancel => &["reason"],
            Self::Retry => &[],
            Self::Approve => &["wave"],
            Self::Reject => &["wave", "reason"],
        }
    }

    fn example(self) -> &'static str {
        match self {
            Self::Cancel => r#"{"reason": "why"}"#,
            Self::Retry => "no body, or {}",
            Self::Approve => r#"{"wave": 2}"#,
            Self::Reject => r#"{"wave": 2, "reason": "why"}"#,
        }
    }
}

/// The body of an operator's request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperateBody {
    pub reason: Option<String>,
    pub wave: Option<u32>,
}

/// Reads the body of `action`: a JSON object with exactly its fields (an empty body is `{}`);
/// every problem at once, each at its JSONPath.
pub fn operate_body(action: Action, bytes: &[u8]) -> Result<OperateBody, Vec<ValidationError>> {
    let example = action.example();
    let text = String::from_utf8_lossy(bytes);
    let value: Value = if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_str(&text).map_err(|e| {
            vec![ValidationError::new(
                "$",
                format!(
                    "the body is not JSON ({e}); {} takes {example}",
                    action.as_str()
                ),
            )]
        })?
    };
    let Value::Object(fields) = value else {
        return Err(vec![ValidationError::new(
            "$",
            format!(
                "the body must be a JSON object; {} takes {example}",
                action.as_str()
            ),
        )]);
    };
    let mut errors = Vec::new();
    for name in fields.keys() {
        if !action.fields().contains(&name.as_str()) {
            let takes = match action.fields() {
                [] => "no fields".to_owned(),
                names => names.join(" and "),
            };
            errors.push(ValidationError::new(
                format!("$.{name}"),
                format!("unknown field; {} takes {takes}", action.as_str()),
            ));
        }
    }
    let mut body = OperateBody {
        reason: None,
        wave: None,
    };
    if action.fields().contains(&"reason") {
        match fields.get("reason") {
            None | Some(Value::Null) => errors.push(ValidationError::new(
                "$.reason",
                format!("required: say why ({example})"),
            )),
            Some(Value::String(r)) if r.trim().is_empty() => {
                errors.push(ValidationError::new("$.reason", "must not be empty"))
            }
            Some(Value::String(r)) if r.chars().count() > MAX_REASON => errors.push(
                ValidationError::new("$.reason", format!("at most {MAX_REASON} characters")),
            ),
            Some(Value::String(r)) => body.reason = Some(r.trim().to_owned()),
            Some(other) => errors.push(ValidationError::new(
                "$.reason",
                format!("must be a string, not {other}"),
            )),
        }
    }
    if action.fields().contains(&"wave") {
        match fields.get("wave") {
            None | Some(Value::Null) => errors.push(ValidationError::new(
                "$.wave",
                format!("required: the wave waiting for the approval ({example})"),
            )),
            Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n >= 1 => body.wave = Some(n),
                _ => errors.push(ValidationError::new(
                    "$.wave",
                    format!("must be a wave number (a whole number from 1), not {v}"),
                )),
            },
        }
    }
    if errors.is_empty() {
        Ok(body)
    } else {
        Err(errors)
    }
}

/// POST /releases/{id}/cancel | retry | approve | reject.
async fn operate(
    request: &Request,
    raw_id: &str,
    action: Action,
    ports: &Ports<'_>,
) -> Result<Response<Body>, TaskError> {
    let body = match operate_body(action, request.body().as_ref()) {
        Ok(b) => b,
        Err(errors) => return Ok(bad_request(errors)),
    };
    let Ok(id) = ReleaseId::parse(raw_id) else {
        return Ok(unknown_release(raw_id));
    };
    let by = caller(request);
    if let Some(wave) = body.wave {
        // A wave the release does not have is bad input, not a state that forbids it.
        let Some(record) = ports.store.release_record(&id).await? else {
            return Ok(unknown_release(raw_id));
        };
        let waves: Vec<u32> = record.lifecycle.waves.iter().map(|w| w.wave).collect();
        if !waves.is_empty() && !waves.contains(&wave) {
            let list: Vec<String> = waves.iter().map(u32::to_string).collect();
            return Ok(bad_request(vec![ValidationError::new(
                "$.wave",
                format!(
                    "release {id} has no wave {wave}; its waves are {}",
                    list.join(", ")
                ),
            )]));
        }
    }
    let outcome = match action {
        Action::Cancel => {
            let reason = body.reason.unwrap_or_default();
            usecases::cancel_release(&id, &by, &reason, ports)
                .await
                .map(|_| None)
        }
        Action::Retry => {
            let name = request_execution_name(request, ports);
            let started = StartedArn::new(ports.executions);
            let retry_ports = Ports {
                executions: &started,
                ..*ports
            };
            usecases::retry_release(&id, &by, &name, &retry_ports)
                .await
                .map(|_| Some(started.arn().unwrap_or(name)))
        }
        Action::Approve | Action::Reject => {
            let decision = match action {
                Action::Approve => Decision::Approve,
                _ => Decision::Reject {
                    reason: body.reason.unwrap_or_default(),
                },
            };
            let wave = body.wave.unwrap_or_default();
            usecases::decide_approval(&id, wave, &by, &decision, ports)
                .await
                .map(|_| None)
        }
    };
    let execution_arn = match outcome {
        Ok(arn) => arn,
        Err(e @ TaskError::NotFound(_)) => {
            tracing::info!(release = %id, action = action.as_str(), error = %e, "unknown release");
            return Ok(unknown_release(raw_id));
        }
        Err(e) if error_status(&e) == StatusCode::CONFLICT => {
            tracing::info!(release = %id, action = action.as_str(), error = %e, "refused");
            return Ok(respond(
                StatusCode::CONFLICT,
                json!({"message": e.to_string(), "releaseId": id.as_str()}),
            ));
        }
        Err(e) => return Err(e),
    };
    tracing::info!(release = %id, action = action.as_str(), by = %by, execution = ?execution_arn, "accepted");
    let stored = ports.store.get(&id).await?.ok_or_else(|| {
        TaskError::Internal(format!(
            "release {id} vanished after the {}",
            action.as_str()
        ))
    })?;
    let mut body = serde_json::to_value(ReleaseView::from(&stored))
        .map_err(|e| TaskError::Internal(format!("cannot encode the release: {e}")))?;
    if let (Some(arn), Some(fields)) = (execution_arn, body.as_object_mut()) {
        fields.insert("executionArn".to_owned(), json!(arn));
    }
    let mut response = respond(StatusCode::ACCEPTED, body);
    let status_url = status_url(request, id.as_str());
    if let Ok(location) = header::HeaderValue::from_str(&status_url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The caller's IAM ARN, as the operator routes record it.
fn caller(request: &Request) -> String {
    api_context(request)
        .as_ref()
        .and_then(requester)
        .unwrap_or_else(|| "unknown caller".to_owned())
}

/// GET /halt.
async fn get_halt(ports: &Ports<'_>) -> Result<Response<Body>, TaskError> {
    let halt = ports.store.halt().await?;
    Ok(respond(StatusCode::OK, usecases::halt_view(halt.as_ref())))
}

/// Reads PUT /halt's body: a JSON object with exactly `reason`, a non-empty string of at
/// most [`MAX_REASON`] characters; every problem at once, each at its JSONPath.
pub fn halt_body(bytes: &[u8]) -> Result<String, Vec<ValidationError>> {
    const EXAMPLE: &str = r#"{"reason": "incident 4711"}"#;
    let text = String::from_utf8_lossy(bytes);
    if text.trim().is_empty() {
        return Err(vec![ValidationError::new(
            "$",
            format!("a body is required: PUT /halt takes {EXAMPLE}"),
        )]);
    }
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        vec![ValidationError::new(
            "$",
            format!("the body is not JSON ({e}); PUT /halt takes {EXAMPLE}"),
        )]
    })?;
    let Value::Object(fields) = value else {
        return Err(vec![ValidationError::new(
            "$",
            format!("the body must be a JSON object; PUT /halt takes {EXAMPLE}"),
        )]);
    };
    let mut errors: Vec<ValidationError> = fields
        .keys()
        .filter(|name| name.as_str() != "reason")
        .map(|name| {
            ValidationError::new(format!("$.{name}"), "unknown field; PUT /halt takes reason")
        })
        .collect();
    let reason = match fields.get("reason") {
        None | Some(Value::Null) => {
            errors.push(ValidationError::new(
                "$.reason",
                format!("required: say why the releases halt ({EXAMPLE})"),
            ));
            None
        }
        Some(Value::String(r)) if r.trim().is_empty() => {
            errors.push(ValidationError::new("$.reason", "must not be empty"));
            None
        }
        Some(Value::String(r)) if r.chars().count() > MAX_REASON => {
            errors.push(ValidationError::new(
                "$.reason",
                format!("at most {MAX_REASON} characters"),
            ));
            None
        }
        Some(Value::String(r)) => Some(r.trim().to_owned()),
        Some(other) => {
            errors.push(ValidationError::new(
                "$.reason",
                format!("must be a string, not {other}"),
            ));
            None
        }
    };
    match reason {
        Some(r) if errors.is_empty() => Ok(r),
        _ => Err(errors),
    }
}

/// PUT /halt `{"reason"}`: 200 with the halt.
async fn put_halt(request: &Request, ports: &Ports<'_>) -> Result<Response<Body>, TaskError> {
    let reason = match halt_body(request.body().as_ref()) {
        Ok(r) => r,
        Err(errors) => return Ok(bad_request(errors)),
    };
    let by = caller(request);
    let halt = usecases::set_halt(&reason, &by, ports).await?;
    tracing::info!(by = %by, reason = %halt.reason, "halt on");
    Ok(respond(StatusCode::OK, usecases::halt_view(Some(&halt))))
}

/// DELETE /halt: 200 `{"on": false, "lifted": <the halt lifted, or null>}`.
async fn delete_halt(request: &Request, ports: &Ports<'_>) -> Result<Response<Body>, TaskError> {
    let by = caller(request);
    let lifted = usecases::lift_halt(&by, ports).await?;
    tracing::info!(by = %by, lifted = lifted.is_some(), "halt lifted");
    let lifted = match &lifted {
        Some(h) => usecases::halt_view(Some(h)),
        None => Value::Null,
    };
    Ok(respond(
        StatusCode::OK,
        json!({"on": false, "lifted": lifted}),
    ))
}

fn unknown_release(raw_id: &str) -> Response<Body> {
    respond(
        StatusCode::NOT_FOUND,
        json!({"message": format!("release {raw_id:?} not found"), "releaseId": raw_id}),
    )
}

/// The [`Executions`] of a retry, keeping the ARN its start returns (the use case answers the
/// execution's name; the API answers its ARN).
struct StartedArn<'a> {
    inner: &'a dyn Executions,
    arn: Mutex<Option<String>>,
}

impl<'a> StartedArn<'a> {
    fn new(inner: &'a dyn Executions) -> Self {
        Self {
            inner,
            arn: Mutex::new(None),
        }
    }

    fn arn(&self) -> Option<String> {
        self.arn.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Executions for StartedArn<'_> {
    async fn start(&self, name: &str, input: &Value) -> PortResult<String> {
        let arn = self.inner.start(name, input).await?;
        if let Ok(mut kept) = self.arn.lock() {
            *kept = Some(arn.clone());
        }
        Ok(arn)
    }

    async fn describe(&self, name: &str) -> PortResult<Option<ExecutionState>> {
        self.inner.describe(name).await
    }

    async fn stop(&self, name: &str, error: &str, cause: &str) -> PortResult<()> {
        self.inner.stop(name, error, cause).await
    }
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
