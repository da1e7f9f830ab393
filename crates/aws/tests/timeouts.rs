//! Issue 9, fault 6: an SDK call to a server that accepts the connection and never answers
//! fails in bounded time, as a Transient error, with the timeout configuration `load_config`
//! uses (here with short durations, through the same `rm_aws::config::timeouts`).

use rm_aws::config::{timeouts, ATTEMPT_TIMEOUT, CONNECT_TIMEOUT, OPERATION_TIMEOUT};
use rm_aws::CodePipelineClient;
use rm_core::error::PortError;
use rm_core::ports::Pipelines;
use std::time::{Duration, Instant};

/// A server on 127.0.0.1 that accepts every connection and never answers (its connections stay
/// open until the test ends). Returns its URL.
async fn hung_server() -> String {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_hung_server_fails_the_call_in_bounded_time_as_transient() {
    let url = hung_server().await;
    let operation = Duration::from_millis(900);
    let config = aws_sdk_codepipeline::config::Builder::from(&rm_testkit::sdk_config(&url).await)
        .timeout_config(timeouts(
            Duration::from_millis(200),
            Duration::from_millis(300),
            operation,
        ))
        .build();
    let pipelines = CodePipelineClient::new(aws_sdk_codepipeline::Client::from_conf(config));
    let t0 = Instant::now();
    let err = pipelines.exists("app").await.unwrap_err();
    let took = t0.elapsed();
    assert!(matches!(err, PortError::Transient(_)), "{err:?}");
    assert!(err.to_string().contains("timeout"), "{err}");
    assert!(
        took < operation + Duration::from_secs(2),
        "the call ended after {took:?}, its operation timeout is {operation:?}"
    );
}

#[test]
fn the_timeouts_fit_inside_the_shortest_lambda_timeout() {
    let config = rm_aws::config::timeout_config();
    assert_eq!(config.connect_timeout(), Some(CONNECT_TIMEOUT));
    assert_eq!(config.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
    assert_eq!(config.operation_timeout(), Some(OPERATION_TIMEOUT));
    assert!(CONNECT_TIMEOUT < ATTEMPT_TIMEOUT);
    assert!(ATTEMPT_TIMEOUT < OPERATION_TIMEOUT);
    // template.yaml: the API's function has 25 s (inside API Gateway's 29 s), the others 30 to
    // 120 s; a hung call must leave the shortest of them time to answer.
    assert!(OPERATION_TIMEOUT * 2 <= Duration::from_secs(25));
}
