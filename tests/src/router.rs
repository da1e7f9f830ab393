//! The in-process Lambda router: moto's Step Functions executor sends every boto call to
//! `localhost:$MOTO_PORT`, which is this router. `/2015-03-31/functions/<name or ARN>/invocations`
//! goes to `cargo lambda watch` with the (percent-encoded) ARN reduced to the function name, and
//! watch's answer is turned into AWS's (a handler error, HTTP 500 from watch, becomes 200 with
//! `X-Amz-Function-Error: Unhandled`); everything else goes to moto. Every invocation is logged.
//!
//! Opt-in rules (`RouterRules`, from `StackOptions`) change moto's answers: a GET whose answer is
//! S3's 404 `NoSuchKey` is answered 403 `AccessDenied`, as S3 answers a caller without
//! `s3:ListBucket` (`s3_denies_missing_keys`); the first SendTask* calls are throttled
//! (`send_task_failures`); some entries of the first PutEvents calls are rejected as
//! EventBridge rejects entries, the others forwarded to moto (`put_events_failures`); the
//! answer of the first PutEvents calls is lost after moto took their events
//! (`put_events_lost_answers`). The
//! functions' S3, Step Functions and EventBridge calls come through the router only when the
//! rule for them is on.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What [`urlencode`] leaves as it is: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `%`-encodes what a URL path segment cannot hold (an ARN's `:` stays legal but moto encodes
/// it; so do we).
pub fn urlencode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Opt-in rules that change what the router answers (all off by default: then every request
/// not an invocation is moto's answer, unchanged).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RouterRules {
    /// A GET answered by moto with 404 `NoSuchKey` is answered 403 `AccessDenied` instead:
    /// what S3 answers for a missing key when the caller lacks `s3:ListBucket`
    /// (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html>, "Permissions").
    pub(crate) s3_denies_missing_keys: bool,
    /// The first N SendTaskSuccess/SendTaskFailure requests are answered 400
    /// `ThrottlingException` (Step Functions' awsJson1.0 error shape, `__type`), as a throttled
    /// Step Functions would (<https://docs.aws.amazon.com/step-functions/latest/apireference/CommonErrors.html>):
    /// the SDK retries it (three attempts in its standard mode), so three failures make one
    /// completion fail (issue 9, fault 1).
    pub(crate) send_task_failures: u32,
    /// In the first N PutEvents calls, the entries at even indexes (0, 2, ...) are rejected,
    /// alternately `InternalFailure` and `ThrottlingException` (EventBridge's retryable entry
    /// errors), and the others forwarded to moto; the answer is EventBridge's: one result per
    /// entry in request order, an `EventId` for each accepted one, `ErrorCode` and
    /// `ErrorMessage` for each rejected one, and `FailedEntryCount`
    /// (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevents.html>, "Handling
    /// failures with PutEvents").
    pub(crate) put_events_failures: u32,
    /// The first N PutEvents calls are forwarded to moto whole (moto delivers their events),
    /// then answered 500 `InternalException`: an answer lost after EventBridge took the events.
    /// The SDK retries the call (a 5xx is retryable), so those events are put twice: the
    /// duplicates a subscriber must recognise by `detail.eventId`. Applied before
    /// `put_events_failures`.
    pub(crate) put_events_lost_answers: u32,
}

/// The router, serving on its own 127.0.0.1 port until dropped.
pub(crate) struct Router {
    pub(crate) url: String,
    pub(crate) port: u16,
    pub(crate) state: Arc<RouterState>,
    task: tokio::task::JoinHandle<()>,
}

impl Router {
    /// Binds a free port and serves: invocations to `watch_url`, the rest to `moto_url`, with
    /// `rules` applied to moto's answers.
    pub(crate) async fn start(moto_url: &str, watch_url: &str, rules: RouterRules) -> Router {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the router");
        let port = listener.local_addr().expect("the router's address").port();
        let state = Arc::new(RouterState {
            moto: moto_url.to_owned(),
            watch: watch_url.to_owned(),
            rules,
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(600))
                .build()
                .expect("HTTP client"),
            log: Mutex::default(),
            send_failures_left: std::sync::atomic::AtomicU32::new(rules.send_task_failures),
            put_events_failures_left: std::sync::atomic::AtomicU32::new(rules.put_events_failures),
            put_events_lost_left: std::sync::atomic::AtomicU32::new(rules.put_events_lost_answers),
        });
        let app = axum::Router::new()
            .fallback(route)
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Router {
            url: format!("http://127.0.0.1:{port}"),
            port,
            state,
            task,
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One invocation through the Lambda Invoke API, as AWS answers it.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub status: u16,
    /// `X-Amz-Function-Error` (`Unhandled`) when the handler failed.
    pub function_error: Option<String>,
    /// The payload the function returned, or `{"errorType", "errorMessage"}`.
    pub payload: Value,
}

impl Invocation {
    /// The payload of a successful invocation.
    ///
    /// # Panics
    /// If the function failed.
    pub fn ok(self) -> Value {
        assert!(
            self.function_error.is_none() && self.status == 200,
            "the function failed: {} {:?}: {}",
            self.status,
            self.function_error,
            self.payload
        );
        self.payload
    }
}

#[derive(Default)]
pub(crate) struct RouterLog {
    pub(crate) lines: Vec<String>,
}

pub(crate) struct RouterState {
    moto: String,
    watch: String,
    rules: RouterRules,
    pub(crate) client: reqwest::Client,
    log: Mutex<RouterLog>,
    /// What is left of `rules.send_task_failures`.
    send_failures_left: std::sync::atomic::AtomicU32,
    /// What is left of `rules.put_events_failures`.
    put_events_failures_left: std::sync::atomic::AtomicU32,
    /// What is left of `rules.put_events_lost_answers`.
    put_events_lost_left: std::sync::atomic::AtomicU32,
}

impl RouterState {
    fn log(&self, line: String) {
        self.router_log().lines.push(line);
    }

    pub(crate) fn router_log(&self) -> std::sync::MutexGuard<'_, RouterLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]` (or a plain name) → `NAME`.
pub fn function_name(raw: &str) -> String {
    let decoded = percent_decode_str(raw).decode_utf8_lossy().into_owned();
    if decoded.starts_with("arn:") {
        decoded
            .split(':')
            .nth(6)
            .map(str::to_owned)
            .unwrap_or(decoded)
    } else {
        decoded
    }
}

const HOP_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
];

async fn route(State(router): State<Arc<RouterState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let path = parts.uri.path();
    let invoke = path
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|rest| rest.strip_suffix("/invocations"));
    if let Some(raw) = invoke {
        let name = function_name(raw);
        return invoke_watch(&router, &name, body).await;
    }
    if is_send_task(&parts.headers) && take(&router.send_failures_left) {
        router.log("sfn SendTask*: answered 400 ThrottlingException (send_task_failures)".into());
        let mut out = Response::new(Body::from(
            r#"{"__type":"com.amazonaws.swf.service.v2.model#ThrottlingException","message":"Rate exceeded"}"#,
        ));
        *out.status_mut() = StatusCode::BAD_REQUEST;
        out.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        return out;
    }
    if is_put_events(&parts.headers) && take(&router.put_events_lost_left) {
        let entries = serde_json::from_slice::<Value>(&body)
            .map(|r| r["Entries"].as_array().map_or(0, Vec::len))
            .unwrap_or_default();
        if let Err(e) = forward(&router, &parts, body).await {
            return (StatusCode::BAD_GATEWAY, e).into_response();
        }
        router.log(format!(
            "events PutEvents: {entries} entries taken by moto, answer lost: 500 InternalException (put_events_lost_answers)"
        ));
        let mut out = Response::new(Body::from(
            json!({"__type": "InternalException", "message": "answer lost by the e2e router"})
                .to_string(),
        ));
        *out.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        out.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        return out;
    }
    if is_put_events(&parts.headers) && take(&router.put_events_failures_left) {
        return partial_put_events(&router, &parts, &body).await;
    }
    match forward(&router, &parts, body).await {
        Ok((status, headers, bytes)) => {
            if router.rules.s3_denies_missing_keys
                && parts.method == axum::http::Method::GET
                && is_no_such_key(status, &bytes)
            {
                router.log(format!(
                    "s3 GET {}: moto answered 404 NoSuchKey, the router 403 AccessDenied",
                    parts.uri.path()
                ));
                return access_denied(&headers);
            }
            let mut out = Response::new(Body::from(bytes));
            *out.status_mut() = status;
            for (k, v) in &headers {
                if !HOP_HEADERS.contains(&k.as_str()) {
                    out.headers_mut().append(k, v.clone());
                }
            }
            out
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e).into_response(),
    }
}

/// Takes one from a counter of an opt-in rule; false when none is left.
fn take(counter: &std::sync::atomic::AtomicU32) -> bool {
    counter
        .fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| n.checked_sub(1),
        )
        .is_ok()
}

/// Sends the request to moto as it came (`body` in place of its own); moto's answer.
async fn forward(
    router: &RouterState,
    parts: &axum::http::request::Parts,
    body: axum::body::Bytes,
) -> Result<(StatusCode, reqwest::header::HeaderMap, axum::body::Bytes), String> {
    let url = format!(
        "{}{}",
        router.moto,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut request = router.client.request(parts.method.clone(), &url);
    for (k, v) in &parts.headers {
        if !HOP_HEADERS.contains(&k.as_str()) {
            request = request.header(k, v);
        }
    }
    match request.body(body).send().await {
        Ok(response) => {
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response.bytes().await.unwrap_or_default();
            Ok((status, headers, bytes))
        }
        Err(e) => {
            router.log(format!("moto {} {url}: {e}", parts.method));
            Err(format!("router → moto: {e}"))
        }
    }
}

/// Whether the request is EventBridge's PutEvents.
fn is_put_events(headers: &axum::http::HeaderMap) -> bool {
    headers.get("x-amz-target").and_then(|v| v.to_str().ok()) == Some("AWSEvents.PutEvents")
}

/// Which entries of a PutEvents call of `n` entries the `put_events_failures` rule rejects,
/// and with what code: the even indexes, alternately InternalFailure and ThrottlingException.
fn rejected_entries(n: usize) -> Vec<(usize, &'static str)> {
    (0..n)
        .step_by(2)
        .enumerate()
        .map(|(k, i)| {
            let code = if k % 2 == 0 {
                "InternalFailure"
            } else {
                "ThrottlingException"
            };
            (i, code)
        })
        .collect()
}

/// The `put_events_failures` rule's answer to one PutEvents call: the rejected entries are
/// answered here, the others forwarded to moto (which delivers them to its rules' targets),
/// merged in request order as EventBridge answers.
async fn partial_put_events(
    router: &RouterState,
    parts: &axum::http::request::Parts,
    body: &axum::body::Bytes,
) -> Response {
    let request: Value = serde_json::from_slice(body).unwrap_or_else(|_| json!({}));
    let entries = request["Entries"].as_array().cloned().unwrap_or_default();
    let rejected = rejected_entries(entries.len());
    let kept: Vec<usize> = (0..entries.len())
        .filter(|i| !rejected.iter().any(|(r, _)| r == i))
        .collect();
    let mut results = vec![Value::Null; entries.len()];
    if !kept.is_empty() {
        let mut forwarded = request.clone();
        forwarded["Entries"] = Value::Array(kept.iter().map(|i| entries[*i].clone()).collect());
        let answer = match forward(router, parts, forwarded.to_string().into()).await {
            Ok((status, _, bytes)) if status.is_success() => {
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null)
            }
            Ok((status, _, bytes)) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                router.log(format!("events PutEvents: moto answered {status}: {text}"));
                return (status, text).into_response();
            }
            Err(e) => return (StatusCode::BAD_GATEWAY, e).into_response(),
        };
        let answered = answer["Entries"].as_array().cloned().unwrap_or_default();
        for (i, result) in kept.iter().zip(answered) {
            results[*i] = result;
        }
    }
    let mut ids = Vec::new();
    for (i, code) in &rejected {
        results[*i] = json!({
            "ErrorCode": code,
            "ErrorMessage": format!("rejected by the e2e router (put_events_failures): {code}"),
        });
        ids.push(
            serde_json::from_str::<Value>(entries[*i]["Detail"].as_str().unwrap_or("{}"))
                .map(|d| d["eventId"].as_str().unwrap_or_default().to_owned())
                .unwrap_or_default(),
        );
    }
    let failed = results
        .iter()
        .filter(|r| r.get("ErrorCode").is_some())
        .count();
    router.log(format!(
        "events PutEvents: rejected {} of {} entries {ids:?} (put_events_failures)",
        rejected.len(),
        entries.len()
    ));
    let mut out = Response::new(Body::from(
        json!({"FailedEntryCount": failed, "Entries": results}).to_string(),
    ));
    out.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    out
}

/// Whether the request is Step Functions' SendTaskSuccess or SendTaskFailure.
fn is_send_task(headers: &axum::http::HeaderMap) -> bool {
    matches!(
        headers.get("x-amz-target").and_then(|v| v.to_str().ok()),
        Some("AWSStepFunctions.SendTaskSuccess" | "AWSStepFunctions.SendTaskFailure")
    )
}

/// Whether moto's answer is S3's 404 `NoSuchKey` error.
fn is_no_such_key(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::NOT_FOUND
        && String::from_utf8_lossy(body).contains("<Code>NoSuchKey</Code>")
}

/// S3's 403 `AccessDenied`, in S3's REST error format: `Content-Type: application/xml` and an
/// `<Error>` with `Code`, `Message`, `RequestId` and `HostId`
/// (<https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html>, "REST error
/// responses"). The request id is moto's, when it gave one.
fn access_denied(moto_headers: &reqwest::header::HeaderMap) -> Response {
    let request_id = moto_headers
        .get("x-amz-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("E2EROUTER0000000")
        .to_owned();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
         <Message>Access Denied</Message><RequestId>{request_id}</RequestId>\
         <HostId>e2e-router</HostId></Error>"
    );
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = StatusCode::FORBIDDEN;
    let headers = out.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/xml"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amz-request-id", v);
    }
    headers.insert("x-amz-id-2", HeaderValue::from_static("e2e-router"));
    out
}

async fn invoke_watch(router: &RouterState, name: &str, body: axum::body::Bytes) -> Response {
    let url = format!("{}/2015-03-31/functions/{name}/invocations", router.watch);
    let t0 = Instant::now();
    let result = router.client.post(&url).body(body).send().await;
    let ms = t0.elapsed().as_millis();
    match result {
        Ok(response) => {
            let status = response.status();
            let bytes = response.bytes().await.unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            let short: String = text.chars().take(300).collect();
            let mut out = Response::new(Body::from(bytes.clone()));
            out.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            out.headers_mut().insert(
                "x-amz-executed-version",
                HeaderValue::from_static("$LATEST"),
            );
            if status.is_success() {
                router.log(format!("invoke {name}: 200 in {ms} ms"));
            } else if status == StatusCode::INTERNAL_SERVER_ERROR
                && serde_json::from_slice::<Value>(&bytes)
                    .map(|v| v.get("errorType").is_some())
                    .unwrap_or(false)
            {
                // AWS: the invocation succeeded, the function did not.
                router.log(format!("invoke {name}: function error in {ms} ms: {short}"));
                out.headers_mut().insert(
                    "x-amz-function-error",
                    HeaderValue::from_static("Unhandled"),
                );
            } else {
                router.log(format!(
                    "invoke {name}: watch answered {status} in {ms} ms: {short}"
                ));
                *out.status_mut() = status;
            }
            out
        }
        Err(e) => {
            router.log(format!(
                "invoke {name}: watch unreachable after {ms} ms: {e}"
            ));
            (
                StatusCode::BAD_GATEWAY,
                [("x-amzn-errortype", "ServiceException")],
                json!({"__type": "ServiceException", "message": format!("router → watch: {e}")})
                    .to_string(),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_from_arns_and_encoded_arns() {
        assert_eq!(function_name("record-state"), "record-state");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:check-manifest"),
            "check-manifest"
        );
        let encoded =
            urlencode("arn:aws:lambda:us-east-1:123456789012:function:poll-execution:$LATEST");
        assert_eq!(
            encoded,
            "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Apoll-execution%3A%24LATEST"
        );
        assert_eq!(function_name(&encoded), "poll-execution");
        // An incomplete escape stays as it is.
        assert_eq!(function_name("a%3Ab%"), "a:b%");
        assert_eq!(urlencode("a-b_c.d~e f/g"), "a-b_c.d~e%20f%2Fg");
    }

    #[test]
    fn the_even_entries_are_rejected_alternating_retryable_codes() {
        assert_eq!(
            rejected_entries(5),
            [
                (0, "InternalFailure"),
                (2, "ThrottlingException"),
                (4, "InternalFailure")
            ]
        );
        assert_eq!(rejected_entries(1), [(0, "InternalFailure")]);
        assert!(rejected_entries(0).is_empty());
    }

    #[tokio::test]
    async fn no_such_key_becomes_access_denied() {
        let moto = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code>\
                     <Message>The specified key does not exist.</Message></Error>";
        assert!(is_no_such_key(StatusCode::NOT_FOUND, moto));
        assert!(!is_no_such_key(StatusCode::OK, moto));
        assert!(!is_no_such_key(
            StatusCode::NOT_FOUND,
            b"<Error><Code>NoSuchBucket</Code></Error>"
        ));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-amz-request-id", HeaderValue::from_static("REQ1"));
        let out = access_denied(&headers);
        assert_eq!(out.status(), StatusCode::FORBIDDEN);
        assert_eq!(out.headers()["content-type"], "application/xml");
        assert_eq!(out.headers()["x-amz-request-id"], "REQ1");
        let body = axum::body::to_bytes(out.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains("<Error><Code>AccessDenied</Code><Message>Access Denied</Message>"),
            "{body}"
        );
        assert!(body.contains("<RequestId>REQ1</RequestId>"), "{body}");
    }
}
