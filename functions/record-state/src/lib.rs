//! record-state: records CodePipeline state changes and the end of a release. The handler is
//! core's ([`rm_core::handlers::record_state`]), the one the local run calls too; this crate's
//! `main` only builds the AWS ports and serves it.

pub use rm_core::handlers::record_state::handle;
