//! health-gate: a CodePipeline "invoke Lambda" action that holds a deployment while the gate
//! (ARCHITECTURE.md §5a) is closed: configured CloudWatch alarms fire, AWS Health reports an
//! open issue, the deployment windows are shut, the stack-wide halt is on, or the release that
//! started the execution ended. With `waitMinutes` it holds the job with a continuation token
//! and CodePipeline invokes it again (a new job carrying the token) until the gate opens.
//!
//! The job event (`{"CodePipeline.job": {...}}`) carries artifact credentials: it is never
//! logged, only its job id. Every job that can be identified is answered
//! (PutJobSuccessResult or PutJobFailureResult): an unanswered job holds the pipeline until
//! the action times out.

use crate::ports::GatePorts;
use crate::usecases;
use crate::TaskError;
use aws_lambda_events::event::codepipeline_job::CodePipelineJobEvent;
use serde_json::{json, Value};

/// Decodes the job, runs the gate, answers the job. Returns `{"jobId", "pass", "held",
/// "reason"}`.
pub async fn handle(payload: Value, ports: &GatePorts<'_>) -> Result<Value, TaskError> {
    // The id first, from the raw JSON: a job we can name is a job we can answer, even when
    // the rest of the event does not decode.
    let Some(job_id) = payload
        .pointer("/CodePipeline.job/id")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(TaskError::BadInput(
            "expected a CodePipeline job event {\"CodePipeline.job\": {\"id\": ..., \"data\": ...}}"
                .into(),
        ));
    };
    tracing::info!(job_id = %job_id, "health gate job");
    let event: CodePipelineJobEvent = match serde_json::from_value(payload) {
        Ok(event) => event,
        Err(e) => {
            // serde's message can quote a value of the event, and the event holds
            // credentials: only the kind of error is kept.
            let reason = format!(
                "health gate: the job event could not be read ({:?} error): its data does not \
                 have the shape CodePipeline sends (actionConfiguration.configuration, \
                 inputArtifacts, outputArtifacts, artifactCredentials)",
                e.classify()
            );
            return answer_failure(&job_id, &reason, ports).await;
        }
    };
    let data = event.code_pipeline_job.data;
    let user_parameters = data.action_configuration.configuration.user_parameters;
    // Set when CodePipeline invokes the action again after a hold (a new job).
    let continuation_token = data.continuation_token;
    match usecases::run_health_gate(
        &job_id,
        user_parameters.as_deref(),
        continuation_token.as_deref(),
        ports,
    )
    .await
    {
        Ok(decision) => {
            tracing::info!(job_id = %job_id, pass = decision.pass, held = decision.held, reason = %decision.reason, "health gate answered");
            Ok(
                json!({"jobId": job_id, "pass": decision.pass, "held": decision.held, "reason": decision.reason}),
            )
        }
        Err(e) => {
            // Answering the job failed (or the gate broke): answer it as failed so the
            // pipeline does not hang until the action's timeout.
            tracing::error!(job_id = %job_id, error = %e, "health gate error");
            let reason = format!("health gate error: {e}");
            answer_failure(&job_id, &reason, ports).await
        }
    }
}

async fn answer_failure(
    job_id: &str,
    reason: &str,
    ports: &GatePorts<'_>,
) -> Result<Value, TaskError> {
    let message = usecases::job_message(reason);
    match ports.jobs.fail(job_id, &message).await {
        Ok(()) => {
            tracing::warn!(job_id = %job_id, reason = %message, "job failed");
            Ok(json!({"jobId": job_id, "pass": false, "held": false, "reason": message}))
        }
        Err(e) => {
            tracing::error!(job_id = %job_id, error = %e, "could not answer the job");
            // Failing the invocation lets Lambda retry the asynchronous invoke.
            Err(TaskError::from(e))
        }
    }
}
