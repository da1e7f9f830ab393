//! CodePipeline: [`CodePipelineClient`] (the [`Pipelines`] port) and [`CodePipelineJobs`]
//! (the health gate's [`JobResults`]).

use crate::error::{error_message, is_service_error, port_error, truncate};
use async_trait::async_trait;
use aws_sdk_codepipeline::primitives::DateTime;
use aws_sdk_codepipeline::types::{
    ActionCategory, ExecutionDetails, FailureDetails, FailureType, PipelineDeclaration,
    PipelineExecutionSummary, PipelineVariable, SourceRevisionOverride, SourceRevisionType,
    TriggerType,
};
use aws_sdk_codepipeline::Client;
use rm_core::error::PortError;
use rm_core::manifest::PipelineSpec;
use rm_core::ports::{
    ExecutionStatus, JobResults, PastExecution, PipelineShape, Pipelines, PortResult, SourceAction,
    StartError,
};
use rm_core::release::RunStatus;
use std::collections::BTreeMap;
use time::OffsetDateTime;

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
const EXECUTION_NOT_FOUND: &str = "PipelineExecutionNotFoundException";

/// ListPipelineExecutions' page size (its maximum; the default too).
const LIST_PAGE_SIZE: i32 = 100;
/// At most this many ListPipelineExecutions pages per `find_started`: pages are read only until
/// they reach executions older than `since`, so more means a pipeline started over 1000 times
/// since then; the guard keeps a misbehaving pagination from looping.
const MAX_LIST_PAGES: usize = 10;

fn build_error(e: impl std::fmt::Display) -> PortError {
    PortError::Other(format!("cannot build a CodePipeline request: {e}"))
}

fn date_time(t: &DateTime) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(t.as_nanos()).ok()
}

/// GetPipeline's declaration as the port sees it: `pipelineType` (absent: V1, the type of
/// every pipeline made before V2 existed), the declared variable names (none declared: an
/// empty list, never "not known"), and every action of category Source, in any stage.
fn shape_of(declaration: &PipelineDeclaration) -> PipelineShape {
    PipelineShape {
        name: declaration.name().to_owned(),
        pipeline_type: declaration
            .pipeline_type()
            .map_or("V1", |t| t.as_str())
            .to_owned(),
        variables: Some(
            declaration
                .variables()
                .iter()
                .map(|v| v.name().to_owned())
                .collect(),
        ),
        source_actions: Some(
            declaration
                .stages()
                .iter()
                .flat_map(|stage| stage.actions())
                .filter_map(|action| {
                    let type_id = action.action_type_id()?;
                    (*type_id.category() == ActionCategory::Source).then(|| SourceAction {
                        name: action.name().to_owned(),
                        provider: type_id.provider().to_owned(),
                        configuration: action
                            .configuration()
                            .map(|c| c.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                            .unwrap_or_default(),
                    })
                })
                .collect(),
        ),
    }
}

/// A ListPipelineExecutions summary as the port sees it; `None` without an execution id. A
/// status this version does not know (or none) is read as Failed, on the safe side: it did not
/// succeed, so `plan` and `skipUnchanged` never take it for the run that left a pipeline
/// unchanged, and it never feeds a duration.
fn past_execution(pipeline: &str, summary: &PipelineExecutionSummary) -> Option<PastExecution> {
    let execution_id = summary.pipeline_execution_id()?.to_owned();
    let raw = summary.status().map(|s| s.as_str()).unwrap_or_default();
    let status = RunStatus::parse(raw).unwrap_or_else(|| {
        tracing::warn!(
            pipeline,
            execution_id,
            status = raw,
            "ListPipelineExecutions: an unknown status, read as Failed"
        );
        RunStatus::Failed
    });
    Some(PastExecution {
        execution_id,
        status,
        trigger_type: summary
            .trigger()
            .and_then(|t| t.trigger_type())
            .map(|t| t.as_str().to_owned()),
        started_at: summary.start_time().and_then(date_time),
        last_update: summary.last_update_time().and_then(date_time),
        source_revisions: summary
            .source_revisions()
            .iter()
            .filter_map(|r| Some((r.action_name().to_owned(), r.revision_id()?.to_owned())))
            .collect(),
    })
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

    /// One ListPipelineExecutions page (newest first); a pipeline CodePipeline does not know
    /// is `NotFound`.
    async fn list_page(
        &self,
        pipeline: &str,
        max_results: i32,
        next_token: Option<String>,
    ) -> PortResult<
        aws_sdk_codepipeline::operation::list_pipeline_executions::ListPipelineExecutionsOutput,
    > {
        self.client
            .list_pipeline_executions()
            .pipeline_name(pipeline)
            .max_results(max_results)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| {
                if is_service_error(&e, |se| se.is_pipeline_not_found_exception(), &[NOT_FOUND]) {
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
            })
    }
}

#[async_trait]
impl Pipelines for CodePipelineClient {
    async fn describe(&self, name: &str) -> PortResult<Option<PipelineShape>> {
        match self.client.get_pipeline().name(name).send().await {
            Ok(out) => match out.pipeline() {
                Some(declaration) => Ok(Some(shape_of(declaration))),
                None => Err(PortError::Other(format!(
                    "CodePipeline GetPipeline {name} returned no pipeline"
                ))),
            },
            Err(e)
                if is_service_error(
                    &e,
                    |se| se.is_pipeline_not_found_exception(),
                    &[NOT_FOUND],
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(port_error(&format!("CodePipeline GetPipeline {name}"), &e)),
        }
    }

    /// Pages of at most 100 (ListPipelineExecutions' limit), each asking for what is still
    /// missing, until `limit` executions or the last page; none for a `limit` of 0.
    async fn recent_executions(&self, name: &str, limit: usize) -> PortResult<Vec<PastExecution>> {
        let mut executions = Vec::new();
        let mut next_token: Option<String> = None;
        // Each page but the last brings at least one execution, or the service paginates
        // wrongly: the guard keeps that from looping.
        let max_pages = limit.div_ceil(LIST_PAGE_SIZE as usize) + MAX_LIST_PAGES;
        for _ in 0..max_pages {
            let missing = limit - executions.len();
            if missing == 0 {
                break;
            }
            let page_size =
                i32::try_from(missing).map_or(LIST_PAGE_SIZE, |m| m.min(LIST_PAGE_SIZE));
            let out = self.list_page(name, page_size, next_token.take()).await?;
            executions.extend(
                out.pipeline_execution_summaries()
                    .iter()
                    .filter_map(|summary| past_execution(name, summary))
                    .take(missing),
            );
            match out.next_token {
                Some(token) if !token.is_empty() => next_token = Some(token),
                _ => return Ok(executions),
            }
        }
        Ok(executions)
    }

    async fn execution_variables(
        &self,
        name: &str,
        execution_id: &str,
    ) -> PortResult<BTreeMap<String, String>> {
        let out = self
            .client
            .get_pipeline_execution()
            .pipeline_name(name)
            .pipeline_execution_id(execution_id)
            .send()
            .await
            .map_err(|e| execution_error(name, execution_id, &e))?;
        let execution = out.pipeline_execution.ok_or_else(|| {
            PortError::Other(format!(
                "CodePipeline GetPipelineExecution {name} {execution_id} returned no execution"
            ))
        })?;
        Ok(execution
            .variables()
            .iter()
            .filter_map(|v| {
                Some((
                    v.name()?.to_owned(),
                    v.resolved_value().unwrap_or_default().to_owned(),
                ))
            })
            .collect())
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
                .list_page(pipeline, LIST_PAGE_SIZE, next_token.take())
                .await?;
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
            .map_err(|e| execution_error(pipeline, execution_id, &e))?;
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

/// A GetPipelineExecution error: the pipeline or the execution not found → `NotFound`.
fn execution_error(
    pipeline: &str,
    execution_id: &str,
    e: &aws_sdk_codepipeline::error::SdkError<
        aws_sdk_codepipeline::operation::get_pipeline_execution::GetPipelineExecutionError,
        aws_sdk_codepipeline::config::http::HttpResponse,
    >,
) -> PortError {
    let missing = is_service_error(
        e,
        |se| se.is_pipeline_not_found_exception() || se.is_pipeline_execution_not_found_exception(),
        &[NOT_FOUND, EXECUTION_NOT_FOUND],
    );
    if missing {
        PortError::NotFound(format!(
            "CodePipeline execution {execution_id} of pipeline {pipeline}: {}",
            error_message(e)
        ))
    } else {
        port_error(
            &format!("CodePipeline GetPipelineExecution {pipeline} {execution_id}"),
            e,
        )
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
