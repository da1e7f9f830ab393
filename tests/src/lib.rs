//! The end-to-end harness: the deployed shape of release-machine on loopback.
//!
//! [`Stack::start`] starts, each on a free 127.0.0.1 port, and stops on drop (even when the test
//! panics):
//!
//! - its own **moto server** (`.venv/bin/moto_server`) with Step Functions execution switched
//!   on, and `MOTO_PORT` set to the router's port: moto's executor sends *all* its boto calls
//!   (the Lambda invocations of Task states included) to `localhost:$MOTO_PORT`;
//! - the **router** (in process): `/2015-03-31/functions/<name or ARN>/invocations` goes to
//!   `cargo lambda watch` with the ARN reduced to the function name, and a handler error (watch
//!   answers HTTP 500) becomes AWS's answer, 200 with `X-Amz-Function-Error: Unhandled`, so the
//!   state machine's Retry and Catch see the `errorType`; everything else goes to moto. With
//!   [`StackOptions::s3_denies_missing_keys`] the functions' S3 calls go through it too, and it
//!   answers a GET that moto answers 404 `NoSuchKey` with S3's 403 `AccessDenied` (a caller
//!   without `s3:ListBucket`);
//! - the **CodePipeline emulator** (in process, [`rm_local::emulator`]), which delivers each
//!   pipeline execution state-change event to record-state through the router, as EventBridge
//!   would;
//! - **`cargo lambda watch`** (`.venv/bin/cargo-lambda`) serving every function of the
//!   workspace, with `AWS_ENDPOINT_URL` = moto, `AWS_ENDPOINT_URL_CODEPIPELINE` = the emulator
//!   and the functions' environment read from template.yaml.
//!
//! It provisions what template.yaml declares: the DynamoDB table (key schema, attributes and
//! indexes read from the template), the S3 bucket, and the state machine from the template's
//! DefinitionUri with its DefinitionSubstitutions resolved to function ARNs
//! `arn:aws:lambda:us-east-1:123456789012:function:<binary>`. What the harness cannot read from
//! the template fails the start, naming what and where: it never substitutes a value of its own.
//!
//! Logs: `target/test-logs/e2e/<stack>/{moto,watch}.log`; the router keeps a log of every
//! invocation. Every wait is bounded and fails with the execution's history tail and the logs.
//!
//! Modules, by concern:
//! - [`apigw`]: an API-Gateway-shaped front (SigV4, IAM, the REST proxy event) for the release
//!   API, so the `release-machine` binary can drive the stack as a deployed one;
//! - [`processes`]: the child processes (moto, `cargo lambda watch`), their logs, the one-time
//!   build of the functions;
//! - [`router`]: the in-process Lambda router;
//! - [`template`]: reading template.yaml into a plan, and provisioning it in moto;
//! - [`stack`]: the [`Stack`] a test starts, and its helpers (invoke, wait, history, logs);
//! - [`records`]: assertions on the stored run records.

pub mod apigw;
pub mod processes;
pub mod records;
pub mod router;
pub mod stack;
pub mod template;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use processes::function_binaries;
pub use records::{assert_runs, attempt_statuses, run_statuses};
pub use router::{function_name, urlencode, Invocation};
pub use stack::{describe_event, DynamoTarget, Resources, Stack, StackOptions};
pub use template::{Template, TemplateError};

/// A file of `events/`, parsed.
pub use rm_testkit::event;

/// Account id moto uses.
pub const ACCOUNT: &str = "123456789012";
/// Region of the stack.
pub const REGION: &str = "us-east-1";
/// How long a test waits for a release by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(180);

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// The ARN moto's Step Functions call for a function: what DefinitionSubstitutions resolve to.
pub fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
}

/// A manifest of `pipelines` (all wave 1) with the release id `id`.
pub fn manifest(id: &str, pipelines: &[&str]) -> Value {
    json!({"releaseId": id, "pipelines": pipelines})
}

/// Prints a JSON line (prefixed `E2E_FIGURES `) for the bench report to pick up.
pub fn report(figures: &Value) {
    println!("E2E_FIGURES {figures}");
    eprintln!("E2E_FIGURES {figures}");
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
