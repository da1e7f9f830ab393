//! start-pipelines: the StartPipeline, StopTimedOut and StopRunning tasks. The handler is
//! core's ([`rm_core::handlers::start_pipelines`]), the one the local run calls too; this
//! crate's `main` only builds the AWS ports and serves it.

pub use rm_core::handlers::start_pipelines::handle;
