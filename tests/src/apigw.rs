//! An API-Gateway-shaped HTTP front on loopback for the release API (REST API, `AWS_IAM`
//! authorization, Lambda proxy integration), so the `release-machine` binary can be driven as
//! against a deployed stack.
//!
//! For each request, as API Gateway does
//! (<https://docs.aws.amazon.com/apigateway/latest/developerguide/permissions.html>,
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html>):
//!
//! 1. The stage (`/Prod`, template.yaml's `StageName`) and a route of template.yaml's
//!    release-api `Events` (`Path`, `Method`) must match; otherwise 403
//!    `MissingAuthenticationTokenException` `{"message": "Missing Authentication Token"}`, API
//!    Gateway's answer for a resource or method it does not have.
//! 2. The SigV4 signature (`Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
//!    Signature=...`) is computed again with the SDK's signer from the request as it arrived
//!    (method, URL, the signed headers, the body, `X-Amz-Date`) and the secret key of the
//!    access key, and compared: no signature is 403 `Missing Authentication Token`; an unknown
//!    access key 403 `UnrecognizedClientException` ("The security token included in the
//!    request is invalid."); a scope of another region or service, a date more than 5 minutes
//!    off, or another signature 403 `InvalidSignatureException` (AWS's SigV4 messages,
//!    <https://docs.aws.amazon.com/IAM/latest/UserGuide/signature-v4-troubleshooting.html>).
//! 3. The caller (the access key's principal) needs `execute-api:Invoke` on
//!    `arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/{METHOD}/{path}`; a principal
//!    without it gets 403 `AccessDeniedException` `{"Message": "User: <arn> is not authorized
//!    to perform: execute-api:Invoke on resource: <arn>"}`
//!    (<https://repost.aws/knowledge-center/api-gateway-403-error-lambda-authorizer>).
//! 4. The request becomes the REST API proxy event (events/apigw-*.json's shape) with
//!    `requestContext.identity.userArn` the caller's ARN, release-api is invoked through the
//!    router (the Lambda Invoke API), and its proxy answer (`statusCode`, `headers`, `body`)
//!    is the HTTP answer; a function error is 502 `{"message": "Internal server error"}`.
//!
//! Every answer carries `x-amzn-RequestId`; API Gateway's own errors carry `x-amzn-ErrorType`.

use crate::{repo_root, ACCOUNT, REGION};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A caller the front knows: its access key pair, its IAM ARN, and whether an IAM policy
/// allows it `execute-api:Invoke` on the API.
#[derive(Debug, Clone)]
pub struct Principal {
    pub access_key: String,
    pub secret_key: String,
    pub arn: String,
    pub may_invoke: bool,
}

impl Principal {
    pub fn new(access_key: &str, secret_key: &str, arn: &str, may_invoke: bool) -> Self {
        Principal {
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            arn: arn.to_owned(),
            may_invoke,
        }
    }
}

/// One route of the API (template.yaml's `Path` and `Method`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub path: String,
    pub method: String,
}

/// The release API's stage name and routes, read from template.yaml.
pub fn template_routes() -> (String, Vec<Route>) {
    let path = repo_root().join("template.yaml");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let template: serde_norway::Value =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    let resources = &template["Resources"];
    let stage = resources["ReleaseApi"]["Properties"]["StageName"]
        .as_str()
        .unwrap_or_else(|| panic!("template.yaml: Resources.ReleaseApi.Properties.StageName"))
        .to_owned();
    let events = resources["ReleaseApiFunction"]["Properties"]["Events"]
        .as_mapping()
        .unwrap_or_else(|| panic!("template.yaml: Resources.ReleaseApiFunction.Properties.Events"));
    let routes: Vec<Route> = events
        .values()
        .filter(|e| e["Type"].as_str() == Some("Api"))
        .map(|e| Route {
            path: e["Properties"]["Path"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            method: e["Properties"]["Method"]
                .as_str()
                .unwrap_or_default()
                .to_uppercase(),
        })
        .collect();
    assert!(
        !routes.is_empty(),
        "template.yaml: release-api has no Api events"
    );
    (stage, routes)
}

/// The front, serving on its own 127.0.0.1 port until dropped.
pub struct ApiGateway {
    /// The stage URL, as the stack's `ReleaseApiUrl` output: `http://127.0.0.1:PORT/Prod`.
    pub url: String,
    pub api_id: String,
    state: Arc<GatewayState>,
    task: tokio::task::JoinHandle<()>,
}

struct GatewayState {
    invoke_url: String,
    api_id: String,
    stage: String,
    routes: Vec<Route>,
    principals: Vec<Principal>,
    client: reqwest::Client,
    requests: AtomicU64,
    log: Mutex<Vec<String>>,
}

impl ApiGateway {
    /// Serves the API: release-api invoked through the router at `router_url`.
    pub async fn start(router_url: &str, principals: Vec<Principal>) -> ApiGateway {
        let (stage, routes) = template_routes();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the API front");
        let port = listener.local_addr().expect("its address").port();
        let api_id = "e2eapi0001".to_owned();
        let state = Arc::new(GatewayState {
            invoke_url: format!("{router_url}/2015-03-31/functions/release-api/invocations"),
            api_id: api_id.clone(),
            stage: stage.clone(),
            routes,
            principals,
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("HTTP client"),
            requests: AtomicU64::new(0),
            log: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ApiGateway {
            url: format!("http://127.0.0.1:{port}/{stage}"),
            api_id,
            state,
            task,
        }
    }

    /// One line per request: method, path, caller, status.
    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for ApiGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// API Gateway's own error answer: `x-amzn-ErrorType` and a JSON body.
fn gateway_error(status: StatusCode, error_type: &str, body: Value) -> Response {
    let mut out = Response::new(Body::from(body.to_string()));
    *out.status_mut() = status;
    let headers = out.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(error_type) {
        headers.insert("x-amzn-errortype", v);
    }
    out
}

fn missing_token() -> Response {
    gateway_error(
        StatusCode::FORBIDDEN,
        "MissingAuthenticationTokenException",
        json!({"message": "Missing Authentication Token"}),
    )
}

fn invalid_signature(message: &str) -> Response {
    gateway_error(
        StatusCode::FORBIDDEN,
        "InvalidSignatureException",
        json!({ "message": message }),
    )
}

/// The route of `path` (below the stage) and `method`, and its path parameters.
fn match_route<'a>(
    routes: &'a [Route],
    path: &str,
    method: &str,
) -> Option<(&'a Route, Map<String, Value>)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    routes.iter().filter(|r| r.method == method).find_map(|r| {
        let template: Vec<&str> = r.path.split('/').filter(|s| !s.is_empty()).collect();
        if template.len() != segments.len() {
            return None;
        }
        let mut params = Map::new();
        for (t, s) in template.iter().zip(&segments) {
            if let Some(name) = t.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
                let value = percent_encoding::percent_decode_str(s).decode_utf8_lossy();
                params.insert(name.to_owned(), json!(value));
            } else if t != s {
                return None;
            }
        }
        Some((r, params))
    })
}

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
/// SignedHeaders=a;b, Signature=hex`.
struct Authorization {
    access_key: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
}

fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let scope: Vec<&str> = credential?.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return None;
    }
    Some(Authorization {
        access_key: scope[0].to_owned(),
        date: scope[1].to_owned(),
        region: scope[2].to_owned(),
        service: scope[3].to_owned(),
        signed_headers: signed?.split(';').map(str::to_owned).collect(),
        signature: signature?.to_owned(),
    })
}

/// `X-Amz-Date` (`20261130T221500Z`) as a time.
fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(value, format)
        .ok()?
        .assume_utc();
    Some(SystemTime::from(t))
}

/// Checks the request's signature (step 2); the caller, or API Gateway's 403.
fn authenticate<'a>(
    state: &'a GatewayState,
    method: &str,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<&'a Principal, Box<Response>> {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(Box::new(missing_token()));
    };
    let Some(auth) = parse_authorization(value) else {
        return Err(Box::new(gateway_error(
            StatusCode::FORBIDDEN,
            "IncompleteSignatureException",
            json!({"message": format!("Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization={value}")}),
        )));
    };
    let Some(principal) = state
        .principals
        .iter()
        .find(|p| p.access_key == auth.access_key)
    else {
        return Err(Box::new(gateway_error(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            json!({"message": "The security token included in the request is invalid."}),
        )));
    };
    if auth.region != REGION {
        return Err(Box::new(invalid_signature(&format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            auth.region
        ))));
    }
    if auth.service != "execute-api" {
        return Err(Box::new(invalid_signature(&format!(
            "Credential should be scoped to correct service: 'execute-api'. Not '{}'.",
            auth.service
        ))));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(when) = parse_amz_date(amz_date).filter(|_| amz_date.starts_with(&auth.date)) else {
        return Err(Box::new(gateway_error(
            StatusCode::FORBIDDEN,
            "IncompleteSignatureException",
            json!({"message": "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."}),
        )));
    };
    let skew = SystemTime::now()
        .duration_since(when)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap_or_default();
    if skew > Duration::from_secs(300) {
        return Err(Box::new(invalid_signature(&format!(
            "Signature expired: {amz_date} is now earlier or later than 5 minutes from the server's time."
        ))));
    }
    // The signer adds X-Amz-Date (and a session token) itself: the other signed headers are
    // given as they arrived.
    let mut signed: Vec<(String, String)> = Vec::new();
    for name in &auth.signed_headers {
        if name == "x-amz-date" || name == "x-amz-security-token" {
            continue;
        }
        let value = headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        signed.push((name.clone(), value.to_owned()));
    }
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let url = format!(
        "http://{host}{}",
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let session_token = headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let identity = Credentials::new(
        &principal.access_key,
        &principal.secret_key,
        session_token,
        None,
        "e2e-api-gateway",
    )
    .into();
    let expected = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("execute-api")
        .time(when)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| Box::new(invalid_signature(&e.to_string())))
        .and_then(|params| {
            let signable = SignableRequest::new(
                method,
                url.as_str(),
                signed.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                SignableBody::Bytes(body),
            )
            .map_err(|e| Box::new(invalid_signature(&e.to_string())))?;
            sign(signable, &params.into())
                .map(|out| out.into_parts().1)
                .map_err(|e| Box::new(invalid_signature(&e.to_string())))
        })?;
    if expected != auth.signature {
        return Err(Box::new(invalid_signature(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        )));
    }
    Ok(principal)
}

async fn handle(State(state): State<Arc<GatewayState>>, request: Request) -> Response {
    let n = state.requests.fetch_add(1, Ordering::SeqCst);
    let request_id = format!("e2e-apigw-{}-{n:06}", std::process::id());
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_owned();
    let full_path = parts.uri.path().to_owned();
    let mut answer = match axum::body::to_bytes(body, 10 * 1024 * 1024).await {
        Ok(body) => answer(&state, &parts, &body, &request_id).await,
        Err(e) => gateway_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLarge",
            json!({"message": e.to_string()}),
        ),
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        answer.headers_mut().insert("x-amzn-requestid", v);
    }
    if let Ok(mut log) = state.log.lock() {
        log.push(format!(
            "{method} {full_path}: {}",
            answer.status().as_u16()
        ));
    }
    answer
}

async fn answer(
    state: &GatewayState,
    parts: &axum::http::request::Parts,
    body: &[u8],
    request_id: &str,
) -> Response {
    let method = parts.method.as_str();
    let full_path = parts.uri.path();
    let stage_prefix = format!("/{}", state.stage);
    let Some(path) = full_path
        .strip_prefix(&stage_prefix)
        .filter(|p| p.is_empty() || p.starts_with('/'))
    else {
        return missing_token();
    };
    let path = if path.is_empty() { "/" } else { path };
    let Some((route, path_parameters)) = match_route(&state.routes, path, method) else {
        return missing_token();
    };
    let principal = match authenticate(state, method, &parts.uri, &parts.headers, body) {
        Ok(p) => p,
        Err(denied) => return *denied,
    };
    let resource_arn = format!(
        "arn:aws:execute-api:{REGION}:{ACCOUNT}:{}/{}/{method}{path}",
        state.api_id, state.stage
    );
    if !principal.may_invoke {
        return gateway_error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            json!({"Message": format!(
                "User: {} is not authorized to perform: execute-api:Invoke on resource: {resource_arn}",
                principal.arn
            )}),
        );
    }
    let event = proxy_event(
        state,
        parts,
        route,
        path,
        path_parameters,
        body,
        principal,
        request_id,
    );
    let invoked = state
        .client
        .post(&state.invoke_url)
        .json(&event)
        .send()
        .await;
    let internal = || {
        gateway_error(
            StatusCode::BAD_GATEWAY,
            "InternalServerErrorException",
            json!({"message": "Internal server error"}),
        )
    };
    let Ok(response) = invoked else {
        return internal();
    };
    if response.headers().contains_key("x-amz-function-error") || !response.status().is_success() {
        return internal();
    }
    let Ok(proxy) = response.json::<Value>().await else {
        return internal();
    };
    let Some(status) = proxy["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
    else {
        return internal();
    };
    let text = proxy["body"].as_str().unwrap_or_default().to_owned();
    let mut out = Response::new(Body::from(text));
    *out.status_mut() = status;
    if let Some(headers) = proxy["headers"].as_object() {
        for (k, v) in headers {
            if let (Ok(name), Some(Ok(value))) = (
                axum::http::HeaderName::from_bytes(k.as_bytes()),
                v.as_str().map(HeaderValue::from_str),
            ) {
                out.headers_mut().insert(name, value);
            }
        }
    }
    out.into_response()
}

/// The REST API proxy event of a request (events/apigw-get-release.json's shape).
#[allow(clippy::too_many_arguments)]
fn proxy_event(
    state: &GatewayState,
    parts: &axum::http::request::Parts,
    route: &Route,
    path: &str,
    path_parameters: Map<String, Value>,
    body: &[u8],
    principal: &Principal,
    request_id: &str,
) -> Value {
    let mut headers = Map::new();
    let mut multi_headers: Map<String, Value> = Map::new();
    for (name, value) in &parts.headers {
        let value = value.to_str().unwrap_or_default().to_owned();
        headers.insert(name.as_str().to_owned(), json!(value));
        if let Some(all) = multi_headers
            .entry(name.as_str().to_owned())
            .or_insert_with(|| json!([]))
            .as_array_mut()
        {
            all.push(json!(value));
        }
    }
    let mut query = Map::new();
    let mut multi_query: Map<String, Value> = Map::new();
    if let Some(q) = parts.uri.query() {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let (k, v) = (decode(k), decode(v));
            query.insert(k.clone(), json!(v));
            if let Some(all) = multi_query
                .entry(k)
                .or_insert_with(|| json!([]))
                .as_array_mut()
            {
                all.push(json!(v));
            }
        }
    }
    let or_null = |m: Map<String, Value>| {
        if m.is_empty() {
            Value::Null
        } else {
            Value::Object(m)
        }
    };
    let host = parts
        .headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let now = time::OffsetDateTime::now_utc();
    let user = principal
        .arn
        .rsplit('/')
        .next()
        .unwrap_or(&principal.arn)
        .to_owned();
    json!({
        "resource": route.path,
        "path": path,
        "httpMethod": route.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": or_null(query),
        "multiValueQueryStringParameters": or_null(multi_query),
        "pathParameters": or_null(path_parameters),
        "stageVariables": null,
        "requestContext": {
            "accountId": ACCOUNT,
            "resourceId": "e2eres",
            "stage": state.stage,
            "domainName": host,
            "domainPrefix": state.api_id,
            "protocol": "HTTP/1.1",
            "requestTime": now.unix_timestamp().to_string(),
            "requestTimeEpoch": now.unix_timestamp() * 1000,
            "apiId": state.api_id,
            "identity": {
                "cognitoIdentityPoolId": null,
                "accountId": ACCOUNT,
                "cognitoIdentityId": null,
                "caller": format!("AIDA{}", user.to_uppercase()),
                "sourceIp": "127.0.0.1",
                "principalOrgId": null,
                "accessKey": principal.access_key,
                "cognitoAuthenticationType": null,
                "cognitoAuthenticationProvider": null,
                "userArn": principal.arn,
                "userAgent": parts.headers.get("user-agent").and_then(|v| v.to_str().ok()),
                "user": format!("AIDA{}", user.to_uppercase()),
            },
            "resourcePath": route.path,
            "httpMethod": route.method,
            "path": format!("/{}{path}", state.stage),
            "requestId": request_id,
            "extendedRequestId": request_id,
        },
        "body": if body.is_empty() { Value::Null } else { json!(String::from_utf8_lossy(body)) },
        "isBase64Encoded": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_with_path_parameters() {
        let (stage, routes) = template_routes();
        assert_eq!(stage, "Prod");
        let (route, params) = match_route(&routes, "/releases/r-1/cancel", "POST").unwrap();
        assert_eq!(route.path, "/releases/{id}/cancel");
        assert_eq!(params["id"], "r-1");
        assert!(match_route(&routes, "/releases/r-1/cancel", "GET").is_none());
        assert!(match_route(&routes, "/nothing", "GET").is_none());
        assert!(match_route(&routes, "/halt", "DELETE").is_some());
    }

    #[test]
    fn authorization_headers_parse() {
        let a = parse_authorization("AWS4-HMAC-SHA256 Credential=AKID/20261130/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc").unwrap();
        assert_eq!(a.access_key, "AKID");
        assert_eq!(a.signed_headers, ["host", "x-amz-date"]);
        assert_eq!(a.signature, "abc");
        assert!(parse_authorization("Bearer x").is_none());
        assert!(parse_amz_date("20261130T221500Z").is_some());
    }
}
