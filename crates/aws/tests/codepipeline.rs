//! CodePipelineClient and CodePipelineJobs with the real SDK client on aws-smithy-mocks (moto
//! only records CodePipeline executions; it cannot answer with CodePipeline's errors).

use aws_sdk_codepipeline::error::ErrorMetadata;
use aws_sdk_codepipeline::operation::get_pipeline::{GetPipelineError, GetPipelineOutput};
use aws_sdk_codepipeline::operation::get_pipeline_execution::{
    GetPipelineExecutionError, GetPipelineExecutionOutput,
};
use aws_sdk_codepipeline::operation::list_pipeline_executions::{
    ListPipelineExecutionsError, ListPipelineExecutionsOutput,
};
use aws_sdk_codepipeline::operation::put_job_failure_result::PutJobFailureResultOutput;
use aws_sdk_codepipeline::operation::put_job_success_result::PutJobSuccessResultOutput;
use aws_sdk_codepipeline::operation::start_pipeline_execution::{
    StartPipelineExecutionError, StartPipelineExecutionOutput,
};
use aws_sdk_codepipeline::operation::stop_pipeline_execution::{
    StopPipelineExecutionError, StopPipelineExecutionOutput,
};
use aws_sdk_codepipeline::primitives::DateTime;
use aws_sdk_codepipeline::types::error::{
    ConcurrentPipelineExecutionsLimitExceededException, ConflictException,
    DuplicatedStopRequestException, PipelineExecutionNotFoundException,
    PipelineExecutionNotStoppableException, PipelineNotFoundException, ValidationException,
};
use aws_sdk_codepipeline::types::{
    ExecutionTrigger, FailureType, PipelineExecution, PipelineExecutionStatus,
    PipelineExecutionSummary, SourceRevisionType, TriggerType,
};
use aws_sdk_codepipeline::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use rm_aws::{CodePipelineClient, CodePipelineJobs};
use rm_core::error::PortError;
use rm_core::manifest::{PipelineSpec, SourceRevision};
use rm_core::ports::{JobResults, Pipelines, StartError};
use rm_core::release::{ReleaseId, RunStatus};
use rm_core::usecases::client_request_token;
use time::macros::datetime;
use time::OffsetDateTime;

/// A client answering with `rules` in order, without SDK retries (each rule answers once).
fn client(rules: &[&Rule]) -> Client {
    mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, rules, |c| c
        .retry_config(
            aws_sdk_codepipeline::config::retry::RetryConfig::disabled()
        ))
}

fn unmodeled(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

#[tokio::test]
async fn exists_asks_get_pipeline() {
    let found = mock!(Client::get_pipeline)
        .match_requests(|r| r.name() == Some("app"))
        .then_output(|| GetPipelineOutput::builder().build());
    let missing = mock!(Client::get_pipeline).then_error(|| {
        GetPipelineError::PipelineNotFoundException(
            PipelineNotFoundException::builder()
                .message("Account '123456789012' does not have a pipeline with name 'gone'")
                .build(),
        )
    });
    let throttled = mock!(Client::get_pipeline).then_error(|| {
        GetPipelineError::generic(unmodeled("ThrottlingException", "Rate exceeded"))
    });
    let pipelines = CodePipelineClient::new(client(&[&found, &missing, &throttled]));
    assert!(pipelines.exists("app").await.unwrap());
    assert!(!pipelines.exists("gone").await.unwrap());
    let err = pipelines.exists("app").await.unwrap_err();
    assert!(matches!(err, PortError::Throttled(_)), "{err:?}");
    assert!(err.to_string().contains("Rate exceeded"), "{err}");
}

#[tokio::test]
async fn start_passes_token_variables_and_revisions() {
    let release = ReleaseId::parse("5.10").unwrap();
    let token = client_request_token(&release, "app", 1);
    let expected_token = token.clone();
    let started = mock!(Client::start_pipeline_execution)
        .match_requests(move |r| {
            let variables: Vec<(&str, &str)> = r
                .variables()
                .iter()
                .map(|v| (v.name(), v.value()))
                .collect();
            let revisions: Vec<(&str, &SourceRevisionType, &str)> = r
                .source_revisions()
                .iter()
                .map(|s| (s.action_name(), s.revision_type(), s.revision_value()))
                .collect();
            r.name() == Some("app")
                && r.client_request_token() == Some(expected_token.as_str())
                && variables == [("ENV", "prod"), ("VERSION", "1.2.3")]
                && revisions == [("Source", &SourceRevisionType::CommitId, "abc123")]
        })
        .then_output(|| {
            StartPipelineExecutionOutput::builder()
                .pipeline_execution_id("11111111-2222-3333-4444-555555555555")
                .build()
        });
    let pipelines = CodePipelineClient::new(client(&[&started]));
    let mut spec = PipelineSpec::new("app", 1);
    spec.variables.insert("VERSION".into(), "1.2.3".into());
    spec.variables.insert("ENV".into(), "prod".into());
    spec.source_revisions.push(SourceRevision {
        action_name: "Source".into(),
        revision_type: "COMMIT_ID".into(),
        revision_value: "abc123".into(),
    });
    let id = pipelines.start(&spec, &token).await.unwrap();
    assert_eq!(id, "11111111-2222-3333-4444-555555555555");
    assert_eq!(started.num_calls(), 1);
}

#[tokio::test]
async fn start_errors_map_to_not_found_busy_not_startable_and_throttled() {
    let rules = [
        mock!(Client::start_pipeline_execution).then_error(|| {
            StartPipelineExecutionError::PipelineNotFoundException(
                PipelineNotFoundException::builder()
                    .message("no such pipeline")
                    .build(),
            )
        }),
        mock!(Client::start_pipeline_execution).then_error(|| {
            StartPipelineExecutionError::ConflictException(
                ConflictException::builder()
                    .message("the pipeline's source stage transition is disabled")
                    .build(),
            )
        }),
        mock!(Client::start_pipeline_execution).then_error(|| {
            StartPipelineExecutionError::generic(unmodeled(
                "PipelineVersionNotFoundException",
                "pipeline version 7 not found",
            ))
        }),
        mock!(Client::start_pipeline_execution).then_error(|| {
            StartPipelineExecutionError::ValidationException(
                ValidationException::builder()
                    .message("bad variable")
                    .build(),
            )
        }),
        mock!(Client::start_pipeline_execution).then_error(|| {
            StartPipelineExecutionError::ConcurrentPipelineExecutionsLimitExceededException(
                ConcurrentPipelineExecutionsLimitExceededException::builder()
                    .message("too many executions")
                    .build(),
            )
        }),
        mock!(Client::start_pipeline_execution).then_error(|| {
            StartPipelineExecutionError::generic(unmodeled("ThrottlingException", "Rate exceeded"))
        }),
        mock!(Client::start_pipeline_execution).then_error(|| {
            StartPipelineExecutionError::generic(unmodeled(
                "LimitExceededException",
                "too many requests",
            ))
        }),
    ];
    let rule_refs: Vec<&Rule> = rules.iter().collect();
    let pipelines = CodePipelineClient::new(client(&rule_refs));
    let spec = PipelineSpec::new("app", 1);
    assert_eq!(
        pipelines.start(&spec, "t").await.unwrap_err(),
        StartError::NotFound("app".into())
    );
    // Issue 9, fault 5: ConflictException ("the pipeline is busy ... try again later") and a
    // full queue are Busy: retried until the pipeline's timeout, not failed at once.
    let busy = |expected: &str, err: StartError| match err {
        StartError::Busy(message) => {
            assert!(message.contains(expected), "{message:?} names {expected:?}")
        }
        other => panic!("expected Busy({expected}), got {other:?}"),
    };
    busy(
        "the pipeline's source stage transition is disabled",
        pipelines.start(&spec, "t").await.unwrap_err(),
    );
    for expected in ["pipeline version 7 not found", "bad variable"] {
        match pipelines.start(&spec, "t").await.unwrap_err() {
            StartError::NotStartable(message) => {
                assert!(message.contains(expected), "{message:?} names {expected:?}")
            }
            other => panic!("expected NotStartable({expected}), got {other:?}"),
        }
    }
    busy(
        "too many executions",
        pipelines.start(&spec, "t").await.unwrap_err(),
    );
    for _ in 0..2 {
        let err = pipelines.start(&spec, "t").await.unwrap_err();
        assert!(
            matches!(err, StartError::Port(PortError::Throttled(_))),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn transient_failures_are_transient() {
    let unavailable = mock!(Client::get_pipeline_execution)
        .sequence()
        .http_status(503, None)
        .build();
    let pipelines = CodePipelineClient::new(client(&[&unavailable]));
    let err = pipelines.status("app", "e").await.unwrap_err();
    assert!(matches!(err, PortError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn status_reads_the_execution() {
    let rules = [
        mock!(Client::get_pipeline_execution)
            .match_requests(|r| {
                r.pipeline_name() == Some("app") && r.pipeline_execution_id() == Some("e1")
            })
            .then_output(|| {
                GetPipelineExecutionOutput::builder()
                    .pipeline_execution(
                        PipelineExecution::builder()
                            .pipeline_execution_id("e1")
                            .status(PipelineExecutionStatus::Failed)
                            .status_summary("Deploy failed")
                            .build(),
                    )
                    .build()
            }),
        mock!(Client::get_pipeline_execution).then_error(|| {
            GetPipelineExecutionError::PipelineExecutionNotFoundException(
                PipelineExecutionNotFoundException::builder()
                    .message("gone")
                    .build(),
            )
        }),
    ];
    let rule_refs: Vec<&Rule> = rules.iter().collect();
    let pipelines = CodePipelineClient::new(client(&rule_refs));
    let status = pipelines.status("app", "e1").await.unwrap();
    assert_eq!(status.status, RunStatus::Failed);
    assert_eq!(status.summary.as_deref(), Some("Deploy failed"));
    let err = pipelines.status("app", "e2").await.unwrap_err();
    assert!(matches!(err, PortError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn stopping_a_finished_or_stopping_execution_is_fine() {
    let long_reason = "r".repeat(500);
    let rules = [
        mock!(Client::stop_pipeline_execution)
            .match_requests(|r| {
                r.pipeline_name() == Some("app")
                    && r.pipeline_execution_id() == Some("e1")
                    && r.abandon() == Some(true)
                    && r.reason().is_some_and(|reason| reason.len() == 200)
            })
            .then_output(|| StopPipelineExecutionOutput::builder().build()),
        mock!(Client::stop_pipeline_execution).then_error(|| {
            StopPipelineExecutionError::PipelineExecutionNotStoppableException(
                PipelineExecutionNotStoppableException::builder()
                    .message("Unable to stop pipeline execution: execution is already finished")
                    .build(),
            )
        }),
        mock!(Client::stop_pipeline_execution).then_error(|| {
            StopPipelineExecutionError::DuplicatedStopRequestException(
                DuplicatedStopRequestException::builder().build(),
            )
        }),
        mock!(Client::stop_pipeline_execution).then_error(|| {
            StopPipelineExecutionError::PipelineNotFoundException(
                PipelineNotFoundException::builder().build(),
            )
        }),
    ];
    let rule_refs: Vec<&Rule> = rules.iter().collect();
    let pipelines = CodePipelineClient::new(client(&rule_refs));
    pipelines
        .stop("app", "e1", &long_reason, true)
        .await
        .unwrap();
    pipelines.stop("app", "e1", "again", false).await.unwrap();
    pipelines.stop("app", "e1", "again", false).await.unwrap();
    assert!(pipelines.stop("gone", "e1", "x", false).await.is_err());
    assert_eq!(rules[0].num_calls(), 1);
}

#[tokio::test]
async fn job_results_carry_the_reason() {
    let success = mock!(Client::put_job_success_result)
        .match_requests(|r| {
            r.job_id() == Some("job-1")
                && r.execution_details()
                    .and_then(|d| d.summary())
                    .is_some_and(|s| s == "all 3 alarms OK")
        })
        .then_output(|| PutJobSuccessResultOutput::builder().build());
    let failure = mock!(Client::put_job_failure_result)
        .match_requests(|r| {
            r.job_id() == Some("job-2")
                && r.failure_details().is_some_and(|d| {
                    d.r#type() == &FailureType::JobFailed
                        && d.message() == "alarm api-5xx is in ALARM"
                })
        })
        .then_output(|| PutJobFailureResultOutput::builder().build());
    let jobs = CodePipelineJobs::new(client(&[&success, &failure]));
    jobs.succeed("job-1", "all 3 alarms OK").await.unwrap();
    jobs.fail("job-2", "alarm api-5xx is in ALARM")
        .await
        .unwrap();
    assert_eq!(success.num_calls(), 1);
    assert_eq!(failure.num_calls(), 1);
}

#[tokio::test]
async fn hold_puts_a_success_with_the_continuation_token_and_the_reason() {
    let held = mock!(Client::put_job_success_result)
        .match_requests(|r| {
            r.job_id() == Some("job-3")
                && r.continuation_token() == Some("wait:2026-01-01T00:00:00Z")
                && r.execution_details()
                    .and_then(|d| d.summary())
                    .is_some_and(|s| s == "waiting: alarm api-5xx is in ALARM")
        })
        .then_output(|| PutJobSuccessResultOutput::builder().build());
    let jobs = CodePipelineJobs::new(client(&[&held]));
    jobs.hold(
        "job-3",
        "wait:2026-01-01T00:00:00Z",
        "waiting: alarm api-5xx is in ALARM",
    )
    .await
    .unwrap();
    assert_eq!(held.num_calls(), 1);
}

/// A ListPipelineExecutions summary: `id`, started `seconds` after `T0`, by `trigger`.
fn summary(id: &str, seconds: i64, trigger: TriggerType) -> PipelineExecutionSummary {
    PipelineExecutionSummary::builder()
        .pipeline_execution_id(id)
        .status(PipelineExecutionStatus::InProgress)
        .start_time(DateTime::from_secs(T0.unix_timestamp() + seconds))
        .trigger(
            ExecutionTrigger::builder()
                .trigger_type(trigger)
                .trigger_detail("detail")
                .build(),
        )
        .build()
}

const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

#[tokio::test]
async fn find_started_reads_pages_until_older_than_since_and_takes_the_earliest_api_start() {
    // Newest first. Page 1: a webhook's execution and two API starts; page 2 reaches executions
    // older than `since`, so page 3 is never asked for.
    let page1 = mock!(Client::list_pipeline_executions)
        .match_requests(|r| {
            r.pipeline_name() == Some("app")
                && r.next_token().is_none()
                && r.max_results() == Some(100)
        })
        .then_output(|| {
            ListPipelineExecutionsOutput::builder()
                .pipeline_execution_summaries(summary("webhook-40", 40, TriggerType::Webhook))
                .pipeline_execution_summaries(summary(
                    "api-30",
                    30,
                    TriggerType::StartPipelineExecution,
                ))
                .pipeline_execution_summaries(summary(
                    "api-20",
                    20,
                    TriggerType::StartPipelineExecution,
                ))
                .next_token("page-2")
                .build()
        });
    let page2 = mock!(Client::list_pipeline_executions)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .then_output(|| {
            ListPipelineExecutionsOutput::builder()
                .pipeline_execution_summaries(summary(
                    "api-10",
                    10,
                    TriggerType::StartPipelineExecution,
                ))
                .pipeline_execution_summaries(summary(
                    "poll-5",
                    5,
                    TriggerType::PollForSourceChanges,
                ))
                .pipeline_execution_summaries(summary(
                    "api-before",
                    -5,
                    TriggerType::StartPipelineExecution,
                ))
                .next_token("page-3")
                .build()
        });
    let page3 = mock!(Client::list_pipeline_executions)
        .then_output(|| ListPipelineExecutionsOutput::builder().build());
    let pipelines = CodePipelineClient::new(client(&[&page1, &page2, &page3]));
    let found = pipelines.find_started("app", T0).await.unwrap();
    assert_eq!(found.as_deref(), Some("api-10"));
    assert_eq!(page1.num_calls(), 1);
    assert_eq!(page2.num_calls(), 1);
    assert_eq!(page3.num_calls(), 0, "pages older than since are not read");
}

#[tokio::test]
async fn find_started_counts_a_start_at_since_and_ignores_other_triggers() {
    let rules = [
        // One page, no next token: only a webhook's execution after `since`.
        mock!(Client::list_pipeline_executions).then_output(|| {
            ListPipelineExecutionsOutput::builder()
                .pipeline_execution_summaries(summary("webhook", 60, TriggerType::Webhook))
                .pipeline_execution_summaries(summary(
                    "api-old",
                    -60,
                    TriggerType::StartPipelineExecution,
                ))
                .build()
        }),
        // A start exactly at `since` counts.
        mock!(Client::list_pipeline_executions).then_output(|| {
            ListPipelineExecutionsOutput::builder()
                .pipeline_execution_summaries(summary(
                    "api-at-since",
                    0,
                    TriggerType::StartPipelineExecution,
                ))
                .build()
        }),
        // A pipeline without executions.
        mock!(Client::list_pipeline_executions)
            .then_output(|| ListPipelineExecutionsOutput::builder().build()),
    ];
    let rule_refs: Vec<&Rule> = rules.iter().collect();
    let pipelines = CodePipelineClient::new(client(&rule_refs));
    assert_eq!(pipelines.find_started("app", T0).await.unwrap(), None);
    assert_eq!(
        pipelines.find_started("app", T0).await.unwrap().as_deref(),
        Some("api-at-since")
    );
    assert_eq!(pipelines.find_started("app", T0).await.unwrap(), None);
}

#[tokio::test]
async fn find_started_errors_map_to_not_found_throttled_and_transient() {
    let rules = [
        mock!(Client::list_pipeline_executions).then_error(|| {
            ListPipelineExecutionsError::PipelineNotFoundException(
                PipelineNotFoundException::builder()
                    .message("Account '123456789012' does not have a pipeline with name 'gone'")
                    .build(),
            )
        }),
        mock!(Client::list_pipeline_executions).then_error(|| {
            ListPipelineExecutionsError::generic(unmodeled("ThrottlingException", "Rate exceeded"))
        }),
        mock!(Client::list_pipeline_executions)
            .sequence()
            .http_status(503, None)
            .build(),
    ];
    let rule_refs: Vec<&Rule> = rules.iter().collect();
    let pipelines = CodePipelineClient::new(client(&rule_refs));
    let err = pipelines.find_started("gone", T0).await.unwrap_err();
    assert!(matches!(err, PortError::NotFound(_)), "{err:?}");
    assert!(err.to_string().contains("gone"), "{err}");
    let err = pipelines.find_started("app", T0).await.unwrap_err();
    assert!(matches!(err, PortError::Throttled(_)), "{err:?}");
    let err = pipelines.find_started("app", T0).await.unwrap_err();
    assert!(matches!(err, PortError::Transient(_)), "{err:?}");
}
