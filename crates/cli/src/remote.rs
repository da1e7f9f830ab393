//! A deployed stack: where its API is (`--api URL`, `RELEASE_MACHINE_API`, or `--stack NAME`
//! reading the stack's `ReleaseApiUrl` output), the caller's credentials (the standard AWS
//! chain: environment, profiles, SSO, credential processes, instance and container roles),
//! requests signed with SigV4 by the SDK's signer (service `execute-api`), and the API's
//! answers turned into errors a user can act on, each with its exit code.
//!
//! The API is IAM-authorized
//! (<https://docs.aws.amazon.com/apigateway/latest/developerguide/permissions.html>): API
//! Gateway checks the signature and the caller's `execute-api:Invoke` permission before the
//! release-api function sees the request, and answers 403 itself when either fails
//! (<https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html>:
//! `ACCESS_DENIED`, `INVALID_SIGNATURE`, `EXPIRED_TOKEN`, `MISSING_AUTHENTICATION_TOKEN`,
//! `UNAUTHORIZED`). Those 403s are told apart here by API Gateway's `x-amzn-ErrorType` header
//! and message.

use aws_config::BehaviorVersion;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use rm_core::view::{ReleaseList, ReleaseView};
use serde_json::Value;
use std::fmt;
use std::time::{Duration, SystemTime};

/// Exit code: the stack could not be reached, or the caller is not authorized.
pub const UNREACHABLE: u8 = 6;
/// The environment variable naming the API when `--api` is not given.
pub const API_ENV: &str = "RELEASE_MACHINE_API";
/// The stack output holding the API's stage URL (template.yaml).
pub const API_OUTPUT: &str = "ReleaseApiUrl";
/// API Gateway's service name in SigV4 credential scopes.
const SERVICE: &str = "execute-api";

/// Where the commands go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// The stage URL of the API (`https://{api}.execute-api.{region}.amazonaws.com/Prod`).
    Api(String),
    /// A CloudFormation stack whose `ReleaseApiUrl` output is the API.
    Stack(String),
}

impl TargetSpec {
    /// The target from `--api`, `--stack` and `RELEASE_MACHINE_API`: `--api` and `--stack`
    /// exclude each other; `--stack` wins over the environment variable; `None` is the local
    /// state directory.
    pub fn resolve(
        api: Option<&str>,
        stack: Option<&str>,
        env_api: Option<&str>,
    ) -> Result<Option<TargetSpec>, String> {
        let given = |s: Option<&str>| {
            s.map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        match (given(api), given(stack)) {
            (Some(_), Some(_)) => Err("--api and --stack name the same thing; give one".into()),
            (Some(url), None) => Ok(Some(TargetSpec::Api(url))),
            (None, Some(name)) => Ok(Some(TargetSpec::Stack(name))),
            (None, None) => Ok(given(env_api).map(TargetSpec::Api)),
        }
    }
}

/// What went wrong talking to the stack; each has its exit code.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteError {
    /// No connection, a timeout, TLS: the URL tried (exit 6).
    Unreachable { url: String, detail: String },
    /// The credential chain found nothing usable, or what it found has expired (exit 6).
    Credentials(String),
    /// API Gateway refused the caller (403): its message, plus what to do (exit 6).
    Denied {
        url: String,
        message: String,
        /// The credentials were valid once and have expired: a watch goes on after a refresh.
        expired: bool,
    },
    /// The target could not be found or used: a stack without the output, a bad URL (exit 6).
    Setup(String),
    /// 404: no such release (exit 2, as an unknown id locally).
    NotFound(String),
    /// 400: every problem (exit 2).
    Invalid {
        message: String,
        errors: Vec<(String, String)>,
    },
    /// 409: the release's state forbids it (exit 3).
    Conflict(String),
    /// 429 or 5xx: the stack answered, but could not do it now (exit 4; a watch retries).
    Server {
        url: String,
        status: u16,
        message: String,
    },
    /// An answer this CLI cannot read (exit 4).
    Protocol(String),
}

impl RemoteError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Unreachable { .. } | Self::Credentials(_) | Self::Denied { .. } => UNREACHABLE,
            Self::Setup(_) => UNREACHABLE,
            Self::NotFound(_) | Self::Invalid { .. } => crate::commands::INVALID,
            Self::Conflict(_) => crate::commands::CONFLICT,
            Self::Server { .. } | Self::Protocol(_) => crate::commands::INTERNAL,
        }
    }

    /// Whether asking again later may work (what `watch` rides out): the network, expired or
    /// missing credentials (a refresh, `aws sso login` in another terminal), throttling, a 5xx.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Credentials(_) | Self::Server { .. } => true,
            Self::Denied { expired, .. } => *expired,
            _ => false,
        }
    }

    /// Prints the error on stderr (every problem of a 400 on its own line); its exit code.
    pub fn report(&self) -> u8 {
        eprintln!("error: {self}");
        if let Self::Invalid { errors, .. } = self {
            for (path, message) in errors {
                eprintln!("  {path}: {message}");
            }
        }
        self.exit_code()
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable { url, detail } => write!(
                f,
                "cannot reach the release-machine API at {url}: {detail} (check the URL, the network, a proxy in HTTPS_PROXY)"
            ),
            Self::Credentials(m) => f.write_str(m),
            Self::Denied { url, message, .. } => write!(f, "{message} (API {url})"),
            Self::Setup(m) => f.write_str(m),
            Self::NotFound(m) | Self::Conflict(m) | Self::Protocol(m) => f.write_str(m),
            Self::Invalid { message, .. } => f.write_str(message),
            Self::Server {
                url,
                status,
                message,
            } => write!(f, "the API at {url} answered {status}: {message}"),
        }
    }
}

/// A connection to a deployed stack's API.
pub struct Remote {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    /// The stage URL, without a trailing `/`.
    base: reqwest::Url,
    region: String,
    credentials: Option<SharedCredentialsProvider>,
    /// The AWS configuration loaded at connect (the standard chain), for the SDK clients of
    /// commands that read more than the API ([`Remote::aws_config`]).
    config: aws_config::SdkConfig,
    /// How the hints this CLI prints name the target: `--api URL` or `--stack NAME`.
    pub flag: String,
}

impl Remote {
    /// Loads the AWS configuration (credentials, region) and finds the API.
    pub fn connect(spec: &TargetSpec) -> Result<Remote, RemoteError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Setup(format!("cannot start the async runtime: {e}")))?;
        let config = rt.block_on(aws_config::defaults(BehaviorVersion::latest()).load());
        let (url, flag) = match spec {
            TargetSpec::Api(url) => (url.clone(), format!("--api {url}")),
            TargetSpec::Stack(name) => (
                rt.block_on(stack_api_url(&config, name))?,
                format!("--stack {name}"),
            ),
        };
        let base = parse_api_url(&url)?;
        let region = region_of_host(base.host_str().unwrap_or_default())
            .or_else(|| config.region().map(|r| r.as_ref().to_owned()))
            .ok_or_else(|| {
                RemoteError::Setup(format!(
                    "no AWS region to sign requests to {url} for: set AWS_REGION, or a region in your AWS profile"
                ))
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // API Gateway ends an integration after 29 s.
            .timeout(Duration::from_secs(40))
            .user_agent(concat!("release-machine/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RemoteError::Setup(format!("cannot build the HTTP client: {e}")))?;
        Ok(Remote {
            rt,
            http,
            base,
            region,
            credentials: config.credentials_provider(),
            config,
            flag,
        })
    }

    /// The AWS configuration of the standard chain, its region the stack's (the API host's,
    /// else the configured one): what an SDK client talking to the stack's account needs.
    pub fn aws_config(&self) -> aws_config::SdkConfig {
        self.config
            .to_builder()
            .region(aws_config::Region::new(self.region.clone()))
            .build()
    }

    /// Runs `future` to its end on this connection's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    /// The API's stage URL.
    pub fn url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `GET /releases/{id}`.
    pub fn release(&self, id: &str) -> Result<ReleaseView, RemoteError> {
        let body = self.call("GET", &["releases", id], &[], None)?;
        release_view(body)
    }

    /// `GET /releases?status=&limit=&next=`.
    pub fn list(
        &self,
        status: Option<&str>,
        limit: usize,
        next: Option<&str>,
    ) -> Result<ReleaseList, RemoteError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(s) = status {
            query.push(("status", s.to_owned()));
        }
        if let Some(n) = next {
            query.push(("next", n.to_owned()));
        }
        let body = self.call("GET", &["releases"], &query, None)?;
        serde_json::from_value(body).map_err(|e| {
            RemoteError::Protocol(format!("the API answered a list this CLI cannot read: {e}"))
        })
    }

    /// `GET /releases/{id}/timeline.svg`: the release drawn as an SVG document.
    pub fn timeline_svg(&self, id: &str) -> Result<String, RemoteError> {
        let svg = self.get_text(&["releases", id, "timeline.svg"])?;
        if !svg.trim_start().starts_with('<') {
            return Err(RemoteError::Protocol(format!(
                "the API answered a timeline that is not SVG: {}; is the CLI newer than the stack?",
                svg.chars().take(200).collect::<String>()
            )));
        }
        Ok(svg)
    }

    /// `POST /releases` with the manifest as it is in its file: 202's body.
    pub fn submit(&self, manifest: &[u8]) -> Result<Value, RemoteError> {
        self.call("POST", &["releases"], &[], Some(manifest.to_vec()))
    }

    /// `POST /releases/{id}/{action}` with `body`: the release JSON after the change (a retry
    /// adds `executionArn`).
    pub fn operate(&self, id: &str, action: &str, body: &Value) -> Result<Value, RemoteError> {
        self.call(
            "POST",
            &["releases", id, action],
            &[],
            Some(body.to_string().into_bytes()),
        )
    }

    /// `GET`, `PUT` (`{"reason"}`) or `DELETE /halt`.
    pub fn halt(&self, method: &str, body: Option<&Value>) -> Result<Value, RemoteError> {
        self.call(
            method,
            &["halt"],
            &[],
            body.map(|b| b.to_string().into_bytes()),
        )
    }

    /// One signed request; the JSON body of a 2xx answer, else the error it means.
    fn call(
        &self,
        method: &str,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Value, RemoteError> {
        let url = self.endpoint(segments, query);
        let text = self.block_on(self.send(method, url, body))?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// One signed `GET`; the body of a 2xx answer as text (an SVG, say), else the error it
    /// means, as [`Remote::call`]'s.
    pub fn get_text(&self, segments: &[&str]) -> Result<String, RemoteError> {
        let url = self.endpoint(segments, &[]);
        self.block_on(self.send("GET", url, None))
    }

    /// The URL of a route: the stage URL, the path's segments (each percent-encoded), the
    /// query.
    fn endpoint(&self, segments: &[&str], query: &[(&str, String)]) -> reqwest::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// Signs and sends one request: the body of a 2xx answer, else the error the answer (or
    /// its absence) means.
    async fn send(
        &self,
        method: &str,
        url: reqwest::Url,
        body: Option<Vec<u8>>,
    ) -> Result<String, RemoteError> {
        let shown = url.to_string();
        let Some(provider) = &self.credentials else {
            return Err(RemoteError::Credentials(no_credentials(
                "no credential provider is configured",
            )));
        };
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| RemoteError::Credentials(no_credentials(&error_chain(&e))))?;
        let access_key = credentials.access_key_id().to_owned();
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => String::new(),
        };
        let bytes = body.unwrap_or_default();
        let mut headers = vec![("host", host)];
        if !bytes.is_empty() {
            headers.push(("content-type", "application/json".to_owned()));
        }
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| RemoteError::Credentials(format!("cannot sign the request: {e}")))?
            .into();
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            headers.iter().map(|(k, v)| (*k, v.as_str())),
            SignableBody::Bytes(&bytes),
        )
        .map_err(|e| RemoteError::Setup(format!("cannot sign a request to {shown}: {e}")))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| RemoteError::Setup(format!("cannot sign a request to {shown}: {e}")))?
            .into_parts();
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| RemoteError::Setup(format!("{method}: {e}")))?;
        let mut request = self.http.request(method, url.clone());
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        if !bytes.is_empty() {
            request = request
                .header("content-type", "application/json")
                .body(bytes);
        }
        let response = request.send().await.map_err(|e| RemoteError::Unreachable {
            url: shown.clone(),
            detail: transport_error(&e),
        })?;
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or(v).to_owned())
            .unwrap_or_default();
        let text = response
            .text()
            .await
            .map_err(|e| RemoteError::Unreachable {
                url: shown.clone(),
                detail: format!("the answer was cut off: {}", error_chain(&e)),
            })?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let message = message_of(&json);
        Err(match status {
            400 => RemoteError::Invalid {
                message,
                errors: json["errors"]
                    .as_array()
                    .map(|all| {
                        all.iter()
                            .map(|e| {
                                (
                                    e["path"].as_str().unwrap_or("$").to_owned(),
                                    e["message"].as_str().unwrap_or_default().to_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            401 | 403 => denied(
                &self.api_root(),
                &message,
                &error_type,
                &access_key,
                &self.region,
            ),
            404 => RemoteError::NotFound(message),
            409 => RemoteError::Conflict(message),
            _ => RemoteError::Server {
                url: shown,
                status,
                message,
            },
        })
    }

    /// The API's stage URL, for messages.
    fn api_root(&self) -> String {
        self.url().to_owned()
    }
}

/// A release JSON into the view type.
fn release_view(body: Value) -> Result<ReleaseView, RemoteError> {
    serde_json::from_value(body).map_err(|e| {
        RemoteError::Protocol(format!(
            "the API answered a release this CLI cannot read ({e}); is the CLI older than the stack?"
        ))
    })
}

/// A 403 of API Gateway, in words a user can act on (exit 6). API Gateway names the caller and
/// the resource itself when the policy denies (`User: arn:... is not authorized to perform:
/// execute-api:Invoke on resource: arn:...`); that is passed on as it is.
fn denied(
    url: &str,
    message: &str,
    error_type: &str,
    access_key: &str,
    region: &str,
) -> RemoteError {
    let lower = message.to_ascii_lowercase();
    let expired = error_type == "ExpiredTokenException" || lower.contains("expired");
    let message = if lower.contains("is not authorized to perform") {
        format!(
            "{message}; grant that principal execute-api:Invoke on the API (an IAM policy), or use credentials that have it"
        )
    } else if expired {
        format!(
            "the AWS credentials (access key {access_key}) have expired: {message}; refresh them (aws sso login, a new session) and run the command again"
        )
    } else if error_type == "InvalidSignatureException"
        || lower.contains("signature we calculated does not match")
        || lower.contains("signature expired")
    {
        format!(
            "the API rejected the request's signature (access key {access_key}, region {region}): {}; the secret key does not belong to that access key, or this machine's clock is off",
            first_sentence(message)
        )
    } else if error_type == "UnrecognizedClientException"
        || lower.contains("security token included in the request is invalid")
    {
        format!(
            "the API does not know access key {access_key}: {message}; check AWS_ACCESS_KEY_ID / AWS_PROFILE"
        )
    } else if lower.contains("missing authentication token") {
        format!(
            "the API has no such route, or the request was not signed ({message}); --api should be the stack's {API_OUTPUT} output, the stage URL ending in /Prod"
        )
    } else {
        format!("the API refused the caller (access key {access_key}): {message}")
    };
    RemoteError::Denied {
        url: url.to_owned(),
        message,
        expired,
    }
}

fn first_sentence(message: &str) -> &str {
    let line = message.lines().next().unwrap_or(message);
    line.split(". ")
        .next()
        .unwrap_or(line)
        .trim_end_matches('.')
}

/// `message` (release-api and API Gateway) or `Message` (API Gateway's IAM denials) of an
/// error body; the body itself when it is not JSON.
fn message_of(body: &Value) -> String {
    body.get("message")
        .or_else(|| body.get("Message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| match body {
            Value::String(s) if s.trim().is_empty() => "(no message)".to_owned(),
            Value::String(s) => s.chars().take(500).collect(),
            other => other.to_string(),
        })
}

fn no_credentials(detail: &str) -> String {
    format!(
        "no usable AWS credentials: {detail}. The standard chain is searched: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE (aws configure, aws sso login), a credential process, the instance's or container's role"
    )
}

/// What failed under reqwest's "error sending request for url (...)" (the URL is in the
/// message already): the connection, DNS, TLS, a timeout.
fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer within 40 s (timed out)".to_owned();
    }
    match std::error::Error::source(e) {
        Some(source) => error_chain(source),
        None => e.to_string(),
    }
}

/// An error and its sources, one after the other.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Checks the API URL: http(s), a host, no query.
fn parse_api_url(raw: &str) -> Result<reqwest::Url, RemoteError> {
    let bad = |why: &str| {
        RemoteError::Setup(format!(
            "--api {raw:?} {why}; it is the stack's {API_OUTPUT} output, e.g. https://abcd123456.execute-api.eu-west-1.amazonaws.com/Prod"
        ))
    };
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(bad("is not an https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("has a query or fragment"));
    }
    let mut url = url;
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

/// The region of an API's own endpoint, `{api}.execute-api.{region}.amazonaws.com[.cn]`: the
/// signature must be scoped to it, whatever the profile's region is.
pub fn region_of_host(host: &str) -> Option<String> {
    let mut parts = host.split('.');
    let _api = parts.next()?;
    (parts.next()? == SERVICE).then_some(())?;
    let region = parts.next()?;
    (!region.is_empty() && region.contains('-')).then(|| region.to_owned())
}

/// `--stack NAME`: the stack's `ReleaseApiUrl` output, through CloudFormation DescribeStacks.
async fn stack_api_url(config: &aws_config::SdkConfig, name: &str) -> Result<String, RemoteError> {
    let client = aws_sdk_cloudformation::Client::new(config);
    let out = client
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| {
            use aws_sdk_cloudformation::error::ProvideErrorMetadata;
            let region = config
                .region()
                .map(|r| r.as_ref().to_owned())
                .unwrap_or_else(|| "no region set".into());
            match e.as_service_error() {
                Some(service) => RemoteError::Setup(format!(
                    "cannot read stack {name:?} in {region}: {} ({}); check --stack, AWS_REGION and that the caller may cloudformation:DescribeStacks",
                    service.message().unwrap_or("no message"),
                    service.code().unwrap_or("error"),
                )),
                None if matches!(e, aws_sdk_cloudformation::error::SdkError::DispatchFailure(_) | aws_sdk_cloudformation::error::SdkError::TimeoutError(_)) => {
                    RemoteError::Unreachable {
                        url: format!("CloudFormation in {region}"),
                        detail: error_chain(&e),
                    }
                }
                None => RemoteError::Credentials(format!(
                    "cannot read stack {name:?} in {region}: {}",
                    error_chain(&e)
                )),
            }
        })?;
    let stack = out.stacks().first().ok_or_else(|| {
        RemoteError::Setup(format!(
            "stack {name:?} does not exist (DescribeStacks returned none)"
        ))
    })?;
    let outputs = stack.outputs();
    outputs
        .iter()
        .find(|o| o.output_key() == Some(API_OUTPUT))
        .and_then(|o| o.output_value())
        .map(str::to_owned)
        .ok_or_else(|| {
            let keys: Vec<&str> = outputs.iter().filter_map(|o| o.output_key()).collect();
            RemoteError::Setup(format!(
                "stack {name:?} ({}) has no {API_OUTPUT} output (its outputs: {}); is it a release-machine stack? Otherwise pass the API's stage URL with --api",
                stack.stack_status().map(|s| s.as_str()).unwrap_or("?"),
                if keys.is_empty() { "none".to_owned() } else { keys.join(", ") }
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_api_or_stack_or_the_environment() {
        assert_eq!(TargetSpec::resolve(None, None, None), Ok(None));
        assert_eq!(
            TargetSpec::resolve(None, None, Some("https://x")),
            Ok(Some(TargetSpec::Api("https://x".into())))
        );
        assert_eq!(
            TargetSpec::resolve(None, Some("rm"), Some("https://x")),
            Ok(Some(TargetSpec::Stack("rm".into())))
        );
        assert!(TargetSpec::resolve(Some("https://y"), Some("rm"), None).is_err());
        assert_eq!(TargetSpec::resolve(Some(" "), None, Some("")), Ok(None));
    }

    #[test]
    fn the_region_comes_from_the_api_host() {
        assert_eq!(
            region_of_host("abcd123456.execute-api.eu-west-1.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region_of_host("abcd.execute-api.cn-north-1.amazonaws.com.cn").as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(region_of_host("releases.example.com"), None);
        assert_eq!(region_of_host("127.0.0.1"), None);
    }

    #[test]
    fn api_urls_are_checked() {
        assert_eq!(
            parse_api_url("https://a.execute-api.us-east-1.amazonaws.com/Prod/")
                .unwrap()
                .as_str(),
            "https://a.execute-api.us-east-1.amazonaws.com/Prod"
        );
        assert!(parse_api_url("a.execute-api.us-east-1.amazonaws.com").is_err());
        assert!(parse_api_url("ftp://x/Prod").is_err());
        assert!(parse_api_url("https://x/Prod?x=1").is_err());
    }

    #[test]
    fn a_denial_names_the_principal_and_the_api() {
        let e = denied(
            "https://a.execute-api.us-east-1.amazonaws.com/Prod",
            "User: arn:aws:iam::123456789012:user/intern is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:********9012:a/Prod/GET/releases/r1",
            "AccessDeniedException",
            "AKIA1",
            "us-east-1",
        );
        let text = e.to_string();
        assert!(
            text.contains("arn:aws:iam::123456789012:user/intern"),
            "{text}"
        );
        assert!(text.contains("execute-api:Invoke"), "{text}");
        assert!(
            text.contains("https://a.execute-api.us-east-1.amazonaws.com/Prod"),
            "{text}"
        );
        assert_eq!(e.exit_code(), UNREACHABLE);
        assert!(!e.retryable());
        let expired = denied(
            "u",
            "The security token included in the request is expired",
            "ExpiredTokenException",
            "AKIA1",
            "us-east-1",
        );
        assert!(expired.retryable());
        let signature = denied("u", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.", "InvalidSignatureException", "AKIA1", "us-east-1");
        assert!(
            signature.to_string().contains("access key AKIA1"),
            "{signature}"
        );
        assert!(!signature.retryable());
    }
}
