//! Step Functions adapters with the real SDK client: against moto server (scripts/test starts
//! it) where moto implements the call, and against aws-smithy-mocks for the answers moto
//! cannot produce on demand (TaskTimedOut, throttling).

use aws_sdk_sfn::error::ErrorMetadata;
use aws_sdk_sfn::operation::describe_execution::{DescribeExecutionError, DescribeExecutionOutput};
use aws_sdk_sfn::operation::send_task_failure::{SendTaskFailureError, SendTaskFailureOutput};
use aws_sdk_sfn::operation::send_task_success::{SendTaskSuccessError, SendTaskSuccessOutput};
use aws_sdk_sfn::operation::stop_execution::{StopExecutionError, StopExecutionOutput};
use aws_sdk_sfn::primitives::DateTime;
use aws_sdk_sfn::types::error::{
    ExecutionDoesNotExist, InvalidToken, TaskDoesNotExist, TaskTimedOut, ValidationException,
};
use aws_sdk_sfn::types::ExecutionStatus;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use rm_aws::{SfnExecutions, SfnTaskTokens};
use rm_core::error::PortError;
use rm_core::ports::{ExecutionRunState, ExecutionState, Executions, TaskTokens, TokenDelivery};
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

#[tokio::test]
async fn describe_reads_running_aborted_and_missing_executions_on_moto() {
    let client = moto_sfn().await;
    let arn = state_machine(&client).await;
    let executions = SfnExecutions::new(client.clone(), &arn);
    let name = unique_name("sweep-r1");
    assert_eq!(
        executions.describe(&name).await.unwrap(),
        None,
        "ExecutionDoesNotExist is None"
    );
    executions
        .start(&name, &json!({"claimedRelease": "r1"}))
        .await
        .unwrap();
    let running = ExecutionState {
        status: ExecutionRunState::Running,
        error: None,
        cause: None,
    };
    assert_eq!(executions.describe(&name).await.unwrap(), Some(running));
    client
        .stop_execution()
        .execution_arn(executions.execution_arn(&name))
        .send()
        .await
        .unwrap();
    let stopped = executions.describe(&name).await.unwrap().unwrap();
    assert_eq!(stopped.status, ExecutionRunState::Aborted);
    // An execution of a state machine that does not exist is missing too.
    let elsewhere = SfnExecutions::new(
        client,
        "arn:aws:states:us-east-1:123456789012:stateMachine:no-such-machine",
    );
    assert_eq!(elsewhere.describe(&name).await.unwrap(), None);
}

#[tokio::test]
async fn describe_maps_statuses_error_and_cause() {
    const MACHINE: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:release-machine";
    const EXECUTION: &str = "arn:aws:states:us-east-1:123456789012:execution:release-machine:s3-r1";
    fn described(
        status: ExecutionStatus,
        error: Option<&'static str>,
        cause: Option<&'static str>,
    ) -> impl Fn() -> DescribeExecutionOutput + Send + Sync + 'static {
        move || {
            DescribeExecutionOutput::builder()
                .execution_arn(EXECUTION)
                .state_machine_arn(MACHINE)
                .status(status.clone())
                .start_date(DateTime::from_secs(1_767_225_600))
                .set_error(error.map(str::to_owned))
                .set_cause(cause.map(str::to_owned))
                .build()
                .unwrap()
        }
    }
    let statuses = [
        (ExecutionStatus::Running, ExecutionRunState::Running),
        (ExecutionStatus::Succeeded, ExecutionRunState::Succeeded),
        (ExecutionStatus::TimedOut, ExecutionRunState::TimedOut),
        (ExecutionStatus::Aborted, ExecutionRunState::Aborted),
        (
            ExecutionStatus::PendingRedrive,
            ExecutionRunState::PendingRedrive,
        ),
    ];
    let mut rules: Vec<_> = statuses
        .iter()
        .map(|(status, _)| {
            mock!(aws_sdk_sfn::Client::describe_execution)
                .match_requests(|r| r.execution_arn() == Some(EXECUTION))
                .then_output(described(status.clone(), None, None))
        })
        .collect();
    rules.push(
        mock!(aws_sdk_sfn::Client::describe_execution).then_output(described(
            ExecutionStatus::Failed,
            Some("States.TaskFailed"),
            Some("record-state failed"),
        )),
    );
    rules.push(
        mock!(aws_sdk_sfn::Client::describe_execution).then_error(|| {
            DescribeExecutionError::ExecutionDoesNotExist(
                ExecutionDoesNotExist::builder()
                    .message("Execution Does Not Exist")
                    .build(),
            )
        }),
    );
    rules.push(
        mock!(aws_sdk_sfn::Client::describe_execution).then_error(|| {
            DescribeExecutionError::generic(
                ErrorMetadata::builder()
                    .code("ThrottlingException")
                    .message("Rate exceeded")
                    .build(),
            )
        }),
    );
    let rule_refs: Vec<_> = rules.iter().collect();
    let client = mock_client!(aws_sdk_sfn, RuleMode::Sequential, &rule_refs, |c| c
        .retry_config(aws_sdk_sfn::config::retry::RetryConfig::disabled()));
    let executions = SfnExecutions::new(client, MACHINE);
    for (_, expected) in statuses {
        let state = executions.describe("s3-r1").await.unwrap().unwrap();
        assert_eq!(state.status, expected);
        assert_eq!((state.error, state.cause), (None, None));
    }
    assert_eq!(
        executions.describe("s3-r1").await.unwrap(),
        Some(ExecutionState {
            status: ExecutionRunState::Failed,
            error: Some("States.TaskFailed".into()),
            cause: Some("record-state failed".into()),
        })
    );
    assert_eq!(executions.describe("s3-r1").await.unwrap(), None);
    let err = executions.describe("s3-r1").await.unwrap_err();
    assert!(matches!(err, PortError::Throttled(_)), "{err:?}");
    assert!(err.to_string().contains("DescribeExecution"), "{err}");
}

#[tokio::test]
async fn stop_stops_a_running_execution_and_is_quiet_about_missing_and_ended_ones_on_moto() {
    let client = moto_sfn().await;
    let arn = state_machine(&client).await;
    let executions = SfnExecutions::new(client.clone(), &arn);
    let name = unique_name("api-cancel");
    // Nothing to stop yet: ExecutionDoesNotExist is not an error.
    executions
        .stop(&name, "ReleaseCancelled", "cancelled by alice: bad canary")
        .await
        .unwrap();
    executions
        .start(&name, &json!({"claimedRelease": "r1"}))
        .await
        .unwrap();
    executions
        .stop(&name, "ReleaseCancelled", "cancelled by alice: bad canary")
        .await
        .unwrap();
    let stopped = executions.describe(&name).await.unwrap().unwrap();
    assert_eq!(stopped.status, ExecutionRunState::Aborted);
    // Stopping it again (a second cancel) is not an error either.
    executions
        .stop(&name, "ReleaseCancelled", "cancelled by bob: again")
        .await
        .unwrap();
}

#[tokio::test]
async fn stop_maps_step_functions_answers() {
    const MACHINE: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:release-machine";
    const EXECUTION: &str =
        "arn:aws:states:us-east-1:123456789012:execution:release-machine:api-r1";
    let stopped = mock!(aws_sdk_sfn::Client::stop_execution)
        .match_requests(|r| {
            r.execution_arn() == Some(EXECUTION)
                && r.error() == Some("ReleaseCancelled")
                && r.cause().is_some_and(|c| c.len() == 32_768)
        })
        .then_output(|| {
            StopExecutionOutput::builder()
                .stop_date(DateTime::from_secs(1_767_225_600))
                .build()
                .unwrap()
        });
    let missing = mock!(aws_sdk_sfn::Client::stop_execution).then_error(|| {
        StopExecutionError::ExecutionDoesNotExist(ExecutionDoesNotExist::builder().build())
    });
    // A refusal for an execution that has ended: DescribeExecution says so, nothing to do.
    let refused = || {
        mock!(aws_sdk_sfn::Client::stop_execution).then_error(|| {
            StopExecutionError::ValidationException(
                ValidationException::builder()
                    .message("execution is not running")
                    .build(),
            )
        })
    };
    let refused_ended = refused();
    let ended = mock!(aws_sdk_sfn::Client::describe_execution).then_output(|| {
        DescribeExecutionOutput::builder()
            .execution_arn(EXECUTION)
            .state_machine_arn(MACHINE)
            .status(ExecutionStatus::Succeeded)
            .start_date(DateTime::from_secs(1_767_225_600))
            .build()
            .unwrap()
    });
    // The same refusal for an execution still running is the error.
    let refused_running = refused();
    let running = mock!(aws_sdk_sfn::Client::describe_execution).then_output(|| {
        DescribeExecutionOutput::builder()
            .execution_arn(EXECUTION)
            .state_machine_arn(MACHINE)
            .status(ExecutionStatus::Running)
            .start_date(DateTime::from_secs(1_767_225_600))
            .build()
            .unwrap()
    });
    let throttled = mock!(aws_sdk_sfn::Client::stop_execution).then_error(|| {
        StopExecutionError::generic(
            ErrorMetadata::builder()
                .code("ThrottlingException")
                .message("Rate exceeded")
                .build(),
        )
    });
    let client = mock_client!(
        aws_sdk_sfn,
        RuleMode::Sequential,
        [
            &stopped,
            &missing,
            &refused_ended,
            &ended,
            &refused_running,
            &running,
            &throttled
        ],
        |c| c.retry_config(aws_sdk_sfn::config::retry::RetryConfig::disabled())
    );
    let executions = SfnExecutions::new(client, MACHINE);
    let long_cause = "x".repeat(40_000);
    executions
        .stop("api-r1", "ReleaseCancelled", &long_cause)
        .await
        .unwrap();
    assert_eq!(
        stopped.num_calls(),
        1,
        "the cause is cut to StopExecution's limit"
    );
    executions
        .stop("api-r1", "ReleaseCancelled", "c")
        .await
        .unwrap();
    executions
        .stop("api-r1", "ReleaseCancelled", "c")
        .await
        .unwrap();
    let err = executions
        .stop("api-r1", "ReleaseCancelled", "c")
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Other(_)), "{err:?}");
    assert!(err.to_string().contains("StopExecution"), "{err}");
    let err = executions
        .stop("api-r1", "ReleaseCancelled", "c")
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Throttled(_)), "{err:?}");
}
