//! The release domain of release-machine: the manifest, releases and pipeline runs, the use
//! cases every Lambda (and the local run) performs, and the ports those use cases need.
//!
//! No AWS SDK and no I/O here: adapters live in `rm-aws` (AWS) and `rm-local` (embedded).

pub mod error;
pub mod handlers;
pub mod manifest;
pub mod memory;
pub mod ports;
pub mod release;
pub mod tasks;
pub mod usecases;
pub mod view;

pub use error::{TaskError, ValidationError};
pub use manifest::{Manifest, OnFailure, PipelineSpec};
pub use release::{ReleaseId, ReleaseStatus, RunStatus};
