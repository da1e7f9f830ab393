//! CodePipeline: [`CodePipelineClient`] (the [`Pipelines`] port) and [`CodePipelineJobs`]
//! (the health gate's [`JobResults`]).

use crate::error::{error_message, is_service_error, port_error, truncate};
use async_trait::async_trait;
use aws_sdk_codepipeline::types::{
    ExecutionDetails, FailureDetails, FailureType, PipelineVariable, SourceRevisionOverride,
    SourceRevisionType, TriggerType,
};
use aws_sdk_codepipeline::Client;
use rm_core::error::PortError;
use rm_core::manifest::PipelineSpec;
use rm_core::ports::{ExecutionStatus, JobResults, Pipelines, PortResult, StartError};
use rm_core::release::RunStatus;

/// StopPipelineExecution's `reason` limit.
const MAX_STOP_REASON: usize = 200;
/// PutJobSuccessResult's execution summary limit.
const MAX_SUMMARY: usize = 2048;
/// PutJobFailureResult's message limit.
const MAX_FAILURE_MESSAGE: usize = 5000;

/// Why a pipeline cannot be started now: the caller fails the run with the message.
const NOT_STARTABLE_CODES: &[&str] = &["PipelineVersionNotFoundException", "ValidationException"];

/// StartPipelineExecution's "try again later" answers: the start is retried until the
/// pipeline's timeoutMinutes (issue 9, fault 5), never recorded as a failure at once.
/// ConflictException: "Your request cannot be handled because the pipeline is busy handling
/// ongoing activities. Try again later."
/// (<https://docs.aws.amazon.com/botocore/latest/reference/services/codepipeline/client/exceptions/ConflictException.html>);
/// ConcurrentPipelineExecutionsLimitExceededException: "The pipeline has reached the limit for
/// concurrent pipeline executions" (a QUEUED pipeline's queue is full;
/// <https://docs.aws.amazon.com/botocore/latest/reference/services/codepipeline/client/exceptions/ConcurrentPipelineExecutionsLimitExceededException.html>).
const BUSY_CODES: &[&str] = &[
    "ConflictException",
    "ConcurrentPipelineExecutionsLimitExceededException",
];

const NOT_FOUND: &str = "PipelineNotFoundException";

/// ListPipelineExecutions' page size (its maximum; the default too).
const LIST_PAGE_SIZE: i32 = 100;
/// At most this many ListPipelineExecutions pages per `find_started`: pages are read only until
/// they reach executions older than `since`, so more means a pipeline started over 1000 times
/// since then; the guard keeps a misbehaving pagination from looping.
const MAX_LIST_PAGES: usize = 10;

fn build_error(e: impl std::fmt::Display) -> PortError {
    PortError::Other(format!("cannot build a CodePipeline request: {e}"))
}

/// The [`Pipelines`] port on CodePipeline.
#[derive(Debug, Clone)]
pub struct CodePipelineClient {
    client: Client,
}

impl CodePipelineClient {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Pipelines for CodePipelineClient {
    async fn describe(&self, name: &str) -> PortResult<Option<rm_core::ports::PipelineShape>> {
        Err(rm_core::error::PortError::Other(format!(
            "describe {name}: not built yet"
        )))
    }

    async fn recent_executions(
        &self,
        name: &str,
        _limit: usize,
    ) -> PortResult<Vec<rm_core::ports::PastExecution>> {
        Err(rm_core::error::PortError::Other(format!(
            "recent_executions {name}: not built yet"
        )))
    }

    async fn execution_variables(
        &self,
        name: &str,
        _execution_id: &str,
    ) -> PortResult<std::collections::BTreeMap<String, String>> {
        Err(rm_core::error::PortError::Other(format!(
            "execution_variables {name}: not built yet"
        )))
    }

    async fn find_started(
        &self,
        pipeline: &str,
        since: time::OffsetDateTime,
    ) -> PortResult<Option<String>> {
        let since_nanos = since.unix_timestamp_nanos();
        // The earliest match so far: (start time in nanoseconds, execution id).
        let mut earliest: Option<(i128, String)> = None;
        let mut next_token: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let out = self
                .client
                .list_pipeline_executions()
                .pipeline_name(pipeline)
                .max_results(LIST_PAGE_SIZE)
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| {
                    if is_service_error(&e, |se| se.is_pipeline_not_found_exception(), &[NOT_FOUND])
                    {
                        PortError::NotFound(format!(
                            "CodePipeline pipeline {pipeline}: {}",
                            error_message(&e)
                        ))
                    } else {
                        port_error(
                            &format!("CodePipeline ListPipelineExecutions {pipeline}"),
                            &e,
                        )
                    }
                })?;
            // Newest first: once a page reaches executions older than `since`, later pages hold
            // only older ones.
            let mut reached_older = false;
            for summary in out.pipeline_execution_summaries() {
                let Some(started) = summary.start_time().map(|t| t.as_nanos()) else {
                    continue;
                };
                if started < since_nanos {
                    reached_older = true;
                    continue;
                }
                let by_api = summary
                    .trigger()
                    .and_then(|t| t.trigger_type())
                    .is_some_and(|t| *t == TriggerType::StartPipelineExecution);
                let Some(id) = summary.pipeline_execution_id() else {
                    continue;
                };
                if by_api && earliest.as_ref().is_none_or(|(t, _)| started <= *t) {
                    earliest = Some((started, id.to_owned()));
                }
            }
            match out.next_token {
                Some(token) if !reached_older && !token.is_empty() => next_token = Some(token),
                _ => return Ok(earliest.map(|(_, id)| id)),
            }
        }
        tracing::warn!(
            pipeline,
            pages = MAX_LIST_PAGES,
            "find_started: stopped reading ListPipelineExecutions after {MAX_LIST_PAGES} pages"
        );
        Ok(earliest.map(|(_, id)| id))
    }

    async fn exists(&self, name: &str) -> PortResult<bool> {
        match self.client.get_pipeline().name(name).send().await {
            Ok(_) => Ok(true),
            Err(e)
                if is_service_error(
                    &e,
                    |se| se.is_pipeline_not_found_exception(),
                    &[NOT_FOUND],
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(port_error(&format!("CodePipeline GetPipeline {name}"), &e)),
        }
    }

    async fn start(
        &self,
        spec: &PipelineSpec,
        client_request_token: &str,
    ) -> Result<String, StartError> {
        let variables = spec
            .variables
            .iter()
            .map(|(name, value)| {
                PipelineVariable::builder()
                    .name(name)
                    .value(value)
                    .build()
                    .map_err(build_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let revisions = spec
            .source_revisions
            .iter()
            .map(|r| {
                SourceRevisionOverride::builder()
                    .action_name(&r.action_name)
                    .revision_type(SourceRevisionType::from(r.revision_type.as_str()))
                    .revision_value(&r.revision_value)
                    .build()
                    .map_err(build_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let result = self
            .client
            .start_pipeline_execution()
            .name(&spec.name)
            .client_request_token(client_request_token)
            .set_variables((!variables.is_empty()).then_some(variables))
            .set_source_revisions((!revisions.is_empty()).then_some(revisions))
            .send()
            .await;
        match result {
            Ok(out) => out.pipeline_execution_id.ok_or_else(|| {
                StartError::Port(PortError::Other(format!(
                    "CodePipeline StartPipelineExecution {} returned no execution id",
                    spec.name
                )))
            }),
            Err(e)
                if is_service_error(
                    &e,
                    |se| se.is_pipeline_not_found_exception(),
                    &[NOT_FOUND],
                ) =>
            {
                Err(StartError::NotFound(spec.name.clone()))
            }
            Err(e)
                if is_service_error(
                    &e,
                    |se| {
                        se.is_conflict_exception()
                            || se.is_concurrent_pipeline_executions_limit_exceeded_exception()
                    },
                    BUSY_CODES,
                ) =>
            {
                Err(StartError::Busy(error_message(&e)))
            }
            Err(e)
                if is_service_error(&e, |se| se.is_validation_exception(), NOT_STARTABLE_CODES) =>
            {
                Err(StartError::NotStartable(error_message(&e)))
            }
            Err(e) => Err(StartError::Port(port_error(
                &format!("CodePipeline StartPipelineExecution {}", spec.name),
                &e,
            ))),
        }
    }

    async fn status(&self, pipeline: &str, execution_id: &str) -> PortResult<ExecutionStatus> {
        let out = self
            .client
            .get_pipeline_execution()
            .pipeline_name(pipeline)
            .pipeline_execution_id(execution_id)
            .send()
            .await
            .map_err(|e| {
                let missing = is_service_error(
                    &e,
                    |se| {
                        se.is_pipeline_not_found_exception()
                            || se.is_pipeline_execution_not_found_exception()
                    },
                    &[NOT_FOUND, "PipelineExecutionNotFoundException"],
                );
                if missing {
                    PortError::NotFound(format!(
                        "CodePipeline execution {execution_id} of pipeline {pipeline}: {}",
                        error_message(&e)
                    ))
                } else {
                    port_error(
                        &format!("CodePipeline GetPipelineExecution {pipeline} {execution_id}"),
                        &e,
                    )
                }
            })?;
        let execution = out.pipeline_execution.ok_or_else(|| {
            PortError::Other(format!(
                "CodePipeline GetPipelineExecution {pipeline} {execution_id} returned no execution"
            ))
        })?;
        let raw = execution
            .status
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        let status = RunStatus::parse(&raw).ok_or_else(|| {
            PortError::Other(format!(
                "CodePipeline reported an unknown status {raw:?} for execution {execution_id} of {pipeline}"
            ))
        })?;
        Ok(ExecutionStatus {
            status,
            summary: execution.status_summary,
        })
    }

    async fn stop(
        &self,
        pipeline: &str,
        execution_id: &str,
        reason: &str,
        abandon: bool,
    ) -> PortResult<()> {
        let result = self
            .client
            .stop_pipeline_execution()
            .pipeline_name(pipeline)
            .pipeline_execution_id(execution_id)
            .reason(truncate(reason, MAX_STOP_REASON))
            .abandon(abandon)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if is_service_error(
                    &e,
                    |se| {
                        se.is_duplicated_stop_request_exception()
                            || se.is_pipeline_execution_not_stoppable_exception()
                    },
                    &[
                        "DuplicatedStopRequestException",
                        "PipelineExecutionNotStoppableException",
                    ],
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(port_error(
                &format!("CodePipeline StopPipelineExecution {pipeline} {execution_id}"),
                &e,
            )),
        }
    }
}

/// The health gate's job results on CodePipeline.
#[derive(Debug, Clone)]
pub struct CodePipelineJobs {
    client: Client,
}

impl CodePipelineJobs {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl JobResults for CodePipelineJobs {
    async fn succeed(&self, job_id: &str, message: &str) -> PortResult<()> {
        self.client
            .put_job_success_result()
            .job_id(job_id)
            .execution_details(
                ExecutionDetails::builder()
                    .summary(truncate(message, MAX_SUMMARY))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| port_error(&format!("CodePipeline PutJobSuccessResult {job_id}"), &e))
    }

    async fn fail(&self, job_id: &str, message: &str) -> PortResult<()> {
        let details = FailureDetails::builder()
            .r#type(FailureType::JobFailed)
            .message(truncate(message, MAX_FAILURE_MESSAGE))
            .build()
            .map_err(build_error)?;
        self.client
            .put_job_failure_result()
            .job_id(job_id)
            .failure_details(details)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| port_error(&format!("CodePipeline PutJobFailureResult {job_id}"), &e))
    }

    /// PutJobSuccessResult with a continuation token: CodePipeline keeps the action in
    /// progress and invokes the function again with a new job whose `data.continuationToken`
    /// is this token ("PutJobSuccessResult",
    /// <https://docs.aws.amazon.com/codepipeline/latest/APIReference/API_PutJobSuccessResult.html>).
    async fn hold(&self, job_id: &str, continuation_token: &str, message: &str) -> PortResult<()> {
        self.client
            .put_job_success_result()
            .job_id(job_id)
            .continuation_token(continuation_token)
            .execution_details(
                ExecutionDetails::builder()
                    .summary(truncate(message, MAX_SUMMARY))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                port_error(
                    &format!("CodePipeline PutJobSuccessResult (continuation) {job_id}"),
                    &e,
                )
            })
    }
}
