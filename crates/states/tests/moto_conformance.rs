//! Runs the conformance cases that moto can run in moto server 5.2.5's Step Functions
//! executor and checks that moto agrees (with `moto_expected` where moto is known to differ
//! from AWS). The endpoint comes from `RM_MOTO_ENDPOINT`; without it the test fails.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use futures::stream::{self, StreamExt};
use serde_json::Value;

fn endpoint() -> String {
    std::env::var("RM_MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "RM_MOTO_ENDPOINT is not set: this test needs moto server 5.2.5 \
             (e.g. RM_MOTO_ENDPOINT=http://127.0.0.1:5000); the project's test command starts it"
        )
    })
}

/// POSTs moto's config switch that makes it execute state machines.
fn enable_execution(endpoint: &str) {
    let hostport = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let body = r#"{"stepfunctions": {"execute_state_machine": true}}"#;
    let mut s = std::net::TcpStream::connect(&hostport)
        .unwrap_or_else(|e| panic!("cannot reach moto at {endpoint}: {e}"));
    let req = format!(
        "POST /moto-api/config HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write to moto");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read from moto");
    assert!(
        resp.starts_with("HTTP/1.1 2") || resp.starts_with("HTTP/1.0 2"),
        "moto refused the config: {resp}"
    );
}

async fn client(endpoint: &str) -> aws_sdk_sfn::Client {
    let creds = aws_sdk_sfn::config::Credentials::new("test", "test", None, None, "test");
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .load()
        .await;
    aws_sdk_sfn::Client::new(&conf)
}

async fn run_in_moto(
    client: &aws_sdk_sfn::Client,
    case: &common::Case,
    run_id: &str,
) -> Result<(String, Option<Value>, Option<String>), String> {
    let name: String = format!("{}-{run_id}", case.name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(80)
        .collect();
    let sm = client
        .create_state_machine()
        .name(&name)
        .definition(case.definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/conformance")
        .send()
        .await
        .map_err(|e| format!("CreateStateMachine: {e:?}"))?;
    let exec = client
        .start_execution()
        .state_machine_arn(sm.state_machine_arn())
        .name("run")
        .input(case.input.to_string())
        .send()
        .await
        .map_err(|e| format!("StartExecution: {e:?}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = client
            .describe_execution()
            .execution_arn(exec.execution_arn())
            .send()
            .await
            .map_err(|e| format!("DescribeExecution: {e:?}"))?;
        if *d.status() != ExecutionStatus::Running {
            let output = d
                .output()
                .map(|o| serde_json::from_str(o).unwrap_or(Value::String(o.to_owned())));
            return Ok((
                d.status().as_str().to_owned(),
                output,
                d.error().map(str::to_owned),
            ));
        }
        if Instant::now() > deadline {
            return Err("still RUNNING after 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_corpus_in_moto() {
    let endpoint = endpoint();
    enable_execution(&endpoint);
    let client = client(&endpoint).await;
    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let cases: Vec<common::Case> = common::cases()
        .into_iter()
        .filter(|c| c.moto_skip.is_none())
        .collect();
    assert!(cases.len() >= 60, "only {} cases run in moto", cases.len());
    let results: Vec<(String, Result<(), String>)> = stream::iter(cases.iter())
        .map(|case| {
            let client = &client;
            let run_id = &run_id;
            async move {
                let expected = case.moto_expected.as_ref().unwrap_or(&case.expected);
                let r = match run_in_moto(client, case, run_id).await {
                    Ok((status, output, error)) => {
                        common::check(expected, &status, output.as_ref(), error.as_deref())
                    }
                    Err(e) => Err(e),
                };
                (case.name.clone(), r)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    println!(
        "{} cases ran in moto, {} disagree",
        results.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "moto disagrees on {} of {} cases:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}
