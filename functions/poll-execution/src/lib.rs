//! poll-execution: the AwaitPipeline task and the scheduled sweep. The handler is core's
//! ([`rm_core::handlers::poll_execution`]), the one the local run calls too; this crate's
//! `main` only builds the AWS ports and serves it.

pub use rm_core::handlers::poll_execution::handle;
