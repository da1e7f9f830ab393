//! The handlers: one per Lambda function, payload `Value` in, answer `Value` or a typed
//! [`TaskError`] out. The Lambda binaries and the local runner call exactly these, so "the
//! local run executes the same code as AWS" is true to the byte; a parity test
//! (`crates/local/tests/parity.rs`) keeps it so.
//!
//! - The four functions of the release state machine are named by [`Function`] and reached
//!   through [`dispatch`]: what the local runner's Task states look up, and what each Lambda
//!   `main` hands its AWS ports to.
//! - The health gate's handler ([`health_gate::handle`]) takes the same shape; the API's
//!   handler lives in `functions/release-api`, because its payload is an HTTP request.

pub mod check_manifest;
pub mod health_gate;
pub mod poll_execution;
pub mod record_state;
pub mod start_pipelines;

use crate::error::TaskError;
use crate::ports::{Clock, ManifestPorts, ManifestSource, Pipelines, ReleaseStore, RunPorts};
use crate::ports::{Executions, TaskTokens};
use serde::Serialize;
use serde_json::Value;

/// A function of the release state machine, named as its binary (and the local
/// DefinitionSubstitutions) name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    CheckManifest,
    StartPipelines,
    PollExecution,
    RecordState,
}

impl Function {
    pub const ALL: [Function; 4] = [
        Function::CheckManifest,
        Function::StartPipelines,
        Function::PollExecution,
        Function::RecordState,
    ];

    /// The function's name: its binary, its Lambda's short name, its local name.
    pub const fn name(self) -> &'static str {
        match self {
            Function::CheckManifest => "check-manifest",
            Function::StartPipelines => "start-pipelines",
            Function::PollExecution => "poll-execution",
            Function::RecordState => "record-state",
        }
    }

    /// The `${...}` DefinitionSubstitution that names this function's ARN.
    pub const fn substitution(self) -> &'static str {
        match self {
            Function::CheckManifest => "CheckManifestFunctionArn",
            Function::StartPipelines => "StartPipelinesFunctionArn",
            Function::PollExecution => "PollExecutionFunctionArn",
            Function::RecordState => "RecordStateFunctionArn",
        }
    }

    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl std::fmt::Display for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Every port a function of the release state machine may need.
#[derive(Clone, Copy)]
pub struct TaskPorts<'a> {
    pub sensors: crate::ports::Sensors<'a>,
    pub store: &'a dyn ReleaseStore,
    pub pipelines: &'a dyn Pipelines,
    pub tokens: &'a dyn TaskTokens,
    pub executions: &'a dyn Executions,
    pub source: &'a dyn ManifestSource,
    pub bus: &'a dyn crate::events::EventBus,
    pub clock: &'a dyn Clock,
}

impl<'a> TaskPorts<'a> {
    pub fn run(&self) -> RunPorts<'a> {
        RunPorts {
            sensors: self.sensors,
            store: self.store,
            pipelines: self.pipelines,
            tokens: self.tokens,
            executions: self.executions,
            bus: self.bus,
            clock: self.clock,
        }
    }

    pub fn manifest(&self) -> ManifestPorts<'a> {
        ManifestPorts {
            store: self.store,
            pipelines: self.pipelines,
            source: self.source,
            bus: self.bus,
            clock: self.clock,
        }
    }
}

/// Runs `function` on `payload`: the one dispatch of the release state machine's functions.
pub async fn dispatch(
    function: Function,
    payload: Value,
    ports: &TaskPorts<'_>,
) -> Result<Value, TaskError> {
    match function {
        Function::CheckManifest => check_manifest::handle(payload, &ports.manifest()).await,
        Function::StartPipelines => start_pipelines::handle(payload, &ports.run()).await,
        Function::PollExecution => poll_execution::handle(payload, &ports.run()).await,
        Function::RecordState => record_state::handle(payload, &ports.run()).await,
    }
}

/// A handler's answer as JSON.
pub(crate) fn encode(value: &impl Serialize) -> Result<Value, TaskError> {
    serde_json::to_value(value)
        .map_err(|e| TaskError::Internal(format!("cannot encode the task result: {e}")))
}
