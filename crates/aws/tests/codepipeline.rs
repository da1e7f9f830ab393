//! CodePipelineClient and CodePipelineJobs with the real SDK client on aws-smithy-mocks (moto
//! only records CodePipeline executions; it cannot answer with CodePipeline's errors), including
//! what `plan` reads (issue 14): describe, recent_executions, execution_variables.

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
    ActionCategory, ActionDeclaration, ActionOwner, ActionTypeId, ExecutionTrigger, FailureType,
    PipelineDeclaration, PipelineExecution, PipelineExecutionStatus, PipelineExecutionSummary,
    PipelineType, PipelineVariableDeclaration, ResolvedPipelineVariable, SourceRevisionType,
    StageDeclaration, TriggerType,
};
use aws_sdk_codepipeline::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use rm_aws::{CodePipelineClient, CodePipelineJobs};
use rm_core::error::PortError;
use rm_core::manifest::{PipelineSpec, SourceRevision};
use rm_core::ports::{JobResults, Pipelines, StartError};
use rm_core::release::{ReleaseId, RunStatus};
use rm_core::usecases::client_request_token;
use std::collections::BTreeMap;
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

/// An action of `category` by `provider`, with `configuration`.
fn action(
    name: &str,
    category: ActionCategory,
    provider: &str,
    configuration: &[(&str, &str)],
) -> ActionDeclaration {
    let mut action = ActionDeclaration::builder().name(name).action_type_id(
        ActionTypeId::builder()
            .category(category)
            .owner(ActionOwner::Aws)
            .provider(provider)
            .version("1")
            .build()
            .unwrap(),
    );
    for (k, v) in configuration {
        action = action.configuration(*k, *v);
    }
    action.build().unwrap()
}

fn stage(name: &str, actions: Vec<ActionDeclaration>) -> StageDeclaration {
    StageDeclaration::builder()
        .name(name)
        .set_actions(Some(actions))
        .build()
        .unwrap()
}

#[tokio::test]
async fn describe_reads_the_type_the_variables_and_every_source_action() {
    let v2 = mock!(Client::get_pipeline)
        .match_requests(|r| r.name() == Some("app"))
        .then_output(|| {
            let s3 = action(
                "Source",
                ActionCategory::Source,
                "S3",
                &[("AllowOverrideForS3ObjectKey", "true")],
            );
            let declaration = PipelineDeclaration::builder()
                .name("app")
                .role_arn("arn:aws:iam::123456789012:role/app")
                .pipeline_type(PipelineType::V2)
                .variables(
                    PipelineVariableDeclaration::builder()
                        .name("ENV")
                        .build()
                        .unwrap(),
                )
                .variables(
                    PipelineVariableDeclaration::builder()
                        .name("VERSION")
                        .default_value("latest")
                        .build()
                        .unwrap(),
                )
                .stages(stage(
                    "Source",
                    vec![s3, action("Image", ActionCategory::Source, "ECR", &[])],
                ))
                .stages(stage(
                    "Build",
                    vec![
                        action("Build", ActionCategory::Build, "CodeBuild", &[]),
                        // A source action outside the first stage is still one.
                        action(
                            "Tools",
                            ActionCategory::Source,
                            "CodeStarSourceConnection",
                            &[],
                        ),
                    ],
                ))
                .build()
                .unwrap();
            GetPipelineOutput::builder().pipeline(declaration).build()
        });
    // An old pipeline: no pipelineType (V1), no variables.
    let v1 = mock!(Client::get_pipeline).then_output(|| {
        let declaration = PipelineDeclaration::builder()
            .name("old")
            .role_arn("arn:aws:iam::123456789012:role/old")
            .stages(stage(
                "Source",
                vec![action("Source", ActionCategory::Source, "CodeCommit", &[])],
            ))
            .build()
            .unwrap();
        GetPipelineOutput::builder().pipeline(declaration).build()
    });
    let missing = mock!(Client::get_pipeline).then_error(|| {
        GetPipelineError::PipelineNotFoundException(
            PipelineNotFoundException::builder().message("gone").build(),
        )
    });
    let throttled = mock!(Client::get_pipeline).then_error(|| {
        GetPipelineError::generic(unmodeled("ThrottlingException", "Rate exceeded"))
    });
    let empty = mock!(Client::get_pipeline).then_output(|| GetPipelineOutput::builder().build());
    let pipelines = CodePipelineClient::new(client(&[&v2, &v1, &missing, &throttled, &empty]));

    let app = pipelines
        .describe("app")
        .await
        .unwrap()
        .expect("app exists");
    assert_eq!(app.name, "app");
    assert_eq!(app.pipeline_type, "V2");
    assert_eq!(
        app.variables,
        Some(vec!["ENV".to_owned(), "VERSION".to_owned()])
    );
    let actions = app.source_actions.expect("source actions");
    let names: Vec<(&str, &str)> = actions
        .iter()
        .map(|a| (a.name.as_str(), a.provider.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("Source", "S3"),
            ("Image", "ECR"),
            ("Tools", "CodeStarSourceConnection")
        ]
    );
    assert_eq!(
        actions[0].configuration,
        BTreeMap::from([("AllowOverrideForS3ObjectKey".to_owned(), "true".to_owned())])
    );

    let old = pipelines.describe("old").await.unwrap().unwrap();
    assert_eq!(old.pipeline_type, "V1", "no pipelineType: V1");
    assert_eq!(
        old.variables,
        Some(vec![]),
        "declares none: not 'not known'"
    );
    assert_eq!(old.source_actions.unwrap()[0].provider, "CodeCommit");

    assert_eq!(pipelines.describe("gone").await.unwrap(), None);
    let err = pipelines.describe("app").await.unwrap_err();
    assert!(matches!(err, PortError::Throttled(_)), "{err:?}");
    let err = pipelines.describe("app").await.unwrap_err();
    assert!(matches!(err, PortError::Other(_)), "{err:?}");
}

/// A finished summary with its source revisions.
fn finished(
    id: &str,
    seconds: i64,
    status: &str,
    revisions: &[(&str, &str)],
) -> PipelineExecutionSummary {
    let mut summary = PipelineExecutionSummary::builder()
        .pipeline_execution_id(id)
        .status(PipelineExecutionStatus::from(status))
        .start_time(DateTime::from_secs(T0.unix_timestamp() + seconds))
        .last_update_time(DateTime::from_secs(T0.unix_timestamp() + seconds + 60))
        .trigger(
            ExecutionTrigger::builder()
                .trigger_type(TriggerType::StartPipelineExecution)
                .build(),
        );
    for (action, revision) in revisions {
        summary = summary.source_revisions(
            aws_sdk_codepipeline::types::SourceRevision::builder()
                .action_name(*action)
                .revision_id(*revision)
                .build()
                .unwrap(),
        );
    }
    summary.build()
}

#[tokio::test]
async fn recent_executions_pages_until_the_limit_and_maps_each_summary() {
    // A limit of 150: a first page of 100 asked for (99 usable), then the 51 still missing.
    let page1 = mock!(Client::list_pipeline_executions)
        .match_requests(|r| {
            r.pipeline_name() == Some("app")
                && r.next_token().is_none()
                && r.max_results() == Some(100)
        })
        .then_output(|| {
            let mut out = ListPipelineExecutionsOutput::builder()
                .pipeline_execution_summaries(finished(
                    "newest",
                    500,
                    "Succeeded",
                    &[("Source", "abc123"), ("Image", "sha256:0f")],
                ))
                .pipeline_execution_summaries(finished("odd", 400, "Paused", &[]))
                // No id: skipped.
                .pipeline_execution_summaries(
                    PipelineExecutionSummary::builder()
                        .status(PipelineExecutionStatus::Failed)
                        .build(),
                );
            for n in 0..97 {
                out = out.pipeline_execution_summaries(finished(
                    &format!("p1-{n}"),
                    300 - n,
                    "Failed",
                    &[],
                ));
            }
            out.next_token("page-2").build()
        });
    let page2 = mock!(Client::list_pipeline_executions)
        .match_requests(|r| r.next_token() == Some("page-2") && r.max_results() == Some(51))
        .then_output(|| {
            let mut out = ListPipelineExecutionsOutput::builder();
            for n in 0..60 {
                out = out.pipeline_execution_summaries(finished(
                    &format!("p2-{n}"),
                    100 - n,
                    "Succeeded",
                    &[],
                ));
            }
            out.next_token("page-3").build()
        });
    let page3 = mock!(Client::list_pipeline_executions)
        .then_output(|| ListPipelineExecutionsOutput::builder().build());
    let pipelines = CodePipelineClient::new(client(&[&page1, &page2, &page3]));
    let got = pipelines.recent_executions("app", 150).await.unwrap();
    assert_eq!(got.len(), 150);
    assert_eq!(page3.num_calls(), 0, "the limit is reached");
    let newest = &got[0];
    assert_eq!(newest.execution_id, "newest");
    assert_eq!(newest.status, RunStatus::Succeeded);
    assert_eq!(
        newest.trigger_type.as_deref(),
        Some("StartPipelineExecution")
    );
    assert_eq!(newest.started_at, Some(T0 + time::Duration::seconds(500)));
    assert_eq!(newest.last_update, Some(T0 + time::Duration::seconds(560)));
    assert_eq!(
        newest.source_revisions,
        BTreeMap::from([
            ("Image".to_owned(), "sha256:0f".to_owned()),
            ("Source".to_owned(), "abc123".to_owned())
        ])
    );
    assert_eq!(got[1].execution_id, "odd");
    assert_eq!(
        got[1].status,
        RunStatus::Failed,
        "an unknown status is read as not succeeded"
    );
    assert_eq!(got[2].execution_id, "p1-0");
    assert_eq!(got[149].execution_id, "p2-50");
}

#[tokio::test]
async fn recent_executions_stops_at_the_last_page_and_maps_errors() {
    let rules = [
        mock!(Client::list_pipeline_executions)
            .match_requests(|r| r.max_results() == Some(10))
            .then_output(|| {
                ListPipelineExecutionsOutput::builder()
                    .pipeline_execution_summaries(finished("only", 0, "Succeeded", &[]))
                    .build()
            }),
        mock!(Client::list_pipeline_executions).then_error(|| {
            ListPipelineExecutionsError::PipelineNotFoundException(
                PipelineNotFoundException::builder().message("gone").build(),
            )
        }),
        mock!(Client::list_pipeline_executions).then_error(|| {
            ListPipelineExecutionsError::generic(unmodeled("ThrottlingException", "Rate exceeded"))
        }),
    ];
    let rule_refs: Vec<&Rule> = rules.iter().collect();
    let pipelines = CodePipelineClient::new(client(&rule_refs));
    let got = pipelines.recent_executions("app", 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(rules[0].num_calls(), 1);
    assert!(pipelines
        .recent_executions("app", 0)
        .await
        .unwrap()
        .is_empty());
    let err = pipelines.recent_executions("gone", 10).await.unwrap_err();
    assert!(matches!(err, PortError::NotFound(_)), "{err:?}");
    let err = pipelines.recent_executions("app", 10).await.unwrap_err();
    assert!(matches!(err, PortError::Throttled(_)), "{err:?}");
}

#[tokio::test]
async fn execution_variables_reads_the_resolved_values() {
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
                            .status(PipelineExecutionStatus::Succeeded)
                            .variables(
                                ResolvedPipelineVariable::builder()
                                    .name("ENV")
                                    .resolved_value("prod")
                                    .build(),
                            )
                            .variables(
                                ResolvedPipelineVariable::builder()
                                    .name("VERSION")
                                    .resolved_value("1.2.3")
                                    .build(),
                            )
                            .build(),
                    )
                    .build()
            }),
        mock!(Client::get_pipeline_execution).then_output(|| {
            GetPipelineExecutionOutput::builder()
                .pipeline_execution(PipelineExecution::builder().build())
                .build()
        }),
        mock!(Client::get_pipeline_execution).then_error(|| {
            GetPipelineExecutionError::PipelineExecutionNotFoundException(
                PipelineExecutionNotFoundException::builder()
                    .message("gone")
                    .build(),
            )
        }),
        mock!(Client::get_pipeline_execution).then_error(|| {
            GetPipelineExecutionError::PipelineNotFoundException(
                PipelineNotFoundException::builder().message("gone").build(),
            )
        }),
        mock!(Client::get_pipeline_execution).then_error(|| {
            GetPipelineExecutionError::generic(unmodeled("ThrottlingException", "Rate exceeded"))
        }),
    ];
    let rule_refs: Vec<&Rule> = rules.iter().collect();
    let pipelines = CodePipelineClient::new(client(&rule_refs));
    assert_eq!(
        pipelines.execution_variables("app", "e1").await.unwrap(),
        BTreeMap::from([
            ("ENV".to_owned(), "prod".to_owned()),
            ("VERSION".to_owned(), "1.2.3".to_owned())
        ])
    );
    assert!(pipelines
        .execution_variables("app", "e2")
        .await
        .unwrap()
        .is_empty());
    for _ in 0..2 {
        let err = pipelines
            .execution_variables("app", "e3")
            .await
            .unwrap_err();
        assert!(matches!(err, PortError::NotFound(_)), "{err:?}");
    }
    let err = pipelines
        .execution_variables("app", "e4")
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Throttled(_)), "{err:?}");
}
