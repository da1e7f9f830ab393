//! Step Functions adapters with the real SDK client: against moto server (scripts/test starts
//! it) where moto implements the call, and against aws-smithy-mocks for the answers moto
//! cannot produce on demand (TaskTimedOut, throttling).

use aws_sdk_sfn::error::ErrorMetadata;
use aws_sdk_sfn::operation::send_task_failure::{SendTaskFailureError, SendTaskFailureOutput};
use aws_sdk_sfn::operation::send_task_success::{SendTaskSuccessError, SendTaskSuccessOutput};
use aws_sdk_sfn::types::error::{InvalidToken, TaskDoesNotExist, TaskTimedOut};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use rm_aws::{SfnExecutions, SfnTaskTokens};
use rm_core::error::PortError;
use rm_core::ports::{Executions, TaskTokens, TokenDelivery};
use rm_testkit::{moto_endpoint, sdk_config, unique_name};
use serde_json::json;

async fn moto_sfn() -> aws_sdk_sfn::Client {
    aws_sdk_sfn::Client::new(&sdk_config(&moto_endpoint()).await)
}

/// A state machine that waits, so executions stay RUNNING.
async fn state_machine(client: &aws_sdk_sfn::Client) -> String {
    let definition = json!({
        "StartAt": "Wait",
        "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": true}}
    });
    client
        .create_state_machine()
        .name(unique_name("release"))
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/release-machine")
        .send()
        .await
        .unwrap()
        .state_machine_arn
}

/// moto 5.2.5 accepts SendTaskSuccess and SendTaskFailure for any token, even one no task
/// issued (AWS answers InvalidToken or TaskDoesNotExist); what this checks against moto is
/// that the requests are well formed and answered. The AlreadyDone mapping of AWS's answers
/// is checked with aws-smithy-mocks below.
#[tokio::test]
async fn task_token_calls_are_accepted_by_moto() {
    let tokens = SfnTaskTokens::new(moto_sfn().await);
    let token = "AAAAKgAAAAIAAAAAAAAAAunknown";
    let out = tokens.succeed(token, &json!({"status": "Succeeded"})).await;
    assert!(
        matches!(
            out,
            Ok(TokenDelivery::Delivered | TokenDelivery::AlreadyDone)
        ),
        "{out:?}"
    );
    let out = tokens.fail(token, "PipelineFailed", "app (Failed)").await;
    assert!(
        matches!(
            out,
            Ok(TokenDelivery::Delivered | TokenDelivery::AlreadyDone)
        ),
        "{out:?}"
    );
}

#[tokio::test]
async fn start_execution_is_idempotent_for_the_same_input_on_moto() {
    let client = moto_sfn().await;
    let arn = state_machine(&client).await;
    let executions = SfnExecutions::new(client.clone(), &arn);
    let name = unique_name("api-r1");
    let input = json!({"claimedRelease": "r1"});
    let first = executions.start(&name, &input).await.unwrap();
    assert_eq!(first, executions.execution_arn(&name));
    let again = executions.start(&name, &input).await;
    println!("moto StartExecution(same name, same input) -> {again:?}");
    assert_eq!(
        again.unwrap(),
        first,
        "a retried API call gets the same execution"
    );
    let other = executions
        .start(&name, &json!({"claimedRelease": "r2"}))
        .await;
    assert!(
        matches!(other, Err(PortError::ConditionFailed(_))),
        "{other:?}"
    );
}

#[tokio::test]
async fn task_token_answers_map_to_delivery() {
    let delivered = mock!(aws_sdk_sfn::Client::send_task_success)
        .match_requests(|r| {
            r.task_token() == Some("tok-1") && r.output() == Some(r#"{"status":"Succeeded"}"#)
        })
        .then_output(|| SendTaskSuccessOutput::builder().build());
    let timed_out = mock!(aws_sdk_sfn::Client::send_task_success).then_error(|| {
        SendTaskSuccessError::TaskTimedOut(TaskTimedOut::builder().message("timed out").build())
    });
    let invalid = mock!(aws_sdk_sfn::Client::send_task_success).then_error(|| {
        SendTaskSuccessError::InvalidToken(InvalidToken::builder().message("bad").build())
    });
    let gone = mock!(aws_sdk_sfn::Client::send_task_failure)
        .then_error(|| SendTaskFailureError::TaskDoesNotExist(TaskDoesNotExist::builder().build()));
    let throttled = mock!(aws_sdk_sfn::Client::send_task_failure).then_error(|| {
        SendTaskFailureError::generic(
            ErrorMetadata::builder()
                .code("ThrottlingException")
                .message("Rate exceeded")
                .build(),
        )
    });
    let failed = mock!(aws_sdk_sfn::Client::send_task_failure)
        .match_requests(|r| {
            r.error() == Some("PipelineFailed") && r.cause().is_some_and(|c| c.len() == 32_768)
        })
        .then_output(|| SendTaskFailureOutput::builder().build());
    let client = mock_client!(
        aws_sdk_sfn,
        RuleMode::Sequential,
        [&delivered, &timed_out, &invalid, &gone, &throttled, &failed],
        |c| c.retry_config(aws_sdk_sfn::config::retry::RetryConfig::disabled())
    );
    let tokens = SfnTaskTokens::new(client);
    let output = json!({"status": "Succeeded"});
    assert_eq!(
        tokens.succeed("tok-1", &output).await.unwrap(),
        TokenDelivery::Delivered
    );
    assert_eq!(
        tokens.succeed("tok-2", &output).await.unwrap(),
        TokenDelivery::AlreadyDone
    );
    assert_eq!(
        tokens.succeed("tok-3", &output).await.unwrap(),
        TokenDelivery::AlreadyDone
    );
    assert_eq!(
        tokens.fail("tok-4", "E", "c").await.unwrap(),
        TokenDelivery::AlreadyDone
    );
    let err = tokens.fail("tok-5", "E", "c").await.unwrap_err();
    assert!(matches!(err, PortError::Throttled(_)), "{err:?}");
    let long_cause = "x".repeat(40_000);
    assert_eq!(
        tokens
            .fail("tok-6", "PipelineFailed", &long_cause)
            .await
            .unwrap(),
        TokenDelivery::Delivered,
        "the cause is cut to SendTaskFailure's limit"
    );
    assert_eq!(failed.num_calls(), 1);
}
