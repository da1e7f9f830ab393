//! The release domain of release-machine: the manifest, releases and pipeline runs, the use
//! cases every Lambda (and the local run) performs, and the ports those use cases need.
//!
//! No AWS SDK and no I/O here: adapters live in `rm-aws` (AWS) and `rm-local` (embedded).
//!
//! The seam between cloud and laptop is [`handlers`]: one handler per function (payload in,
//! answer or typed [`TaskError`] out) behind one [`handlers::dispatch`], which each Lambda's
//! `main` (`rm_aws::serve_task`) and the local runner (`rm_local::runner::LocalFunctions`)
//! both call. Use cases take their ports by family ([`ports::RunPorts`],
//! [`ports::ManifestPorts`], [`ports::ApiPorts`], [`ports::GatePorts`]).
//!
//! Side effects at a release's end (notifications, metrics, anything another system hears
//! about) belong in the use case that records the end, written with the change in the store
//! (an outbox item in the same conditional write) and delivered from there — never in a
//! handler or an adapter, so the Lambda path and the local run publish the same things, and a
//! retried task or a redriven execution cannot publish an end that was not recorded.

pub mod error;
pub mod events;
pub mod gate;
pub mod handlers;
pub mod lifecycle;
pub mod manifest;
#[cfg(feature = "test-support")]
pub mod memory;
pub mod plan;
pub mod ports;
pub mod release;
pub mod tasks;
pub mod usecases;
pub mod view;

pub use error::{TaskError, ValidationError};
pub use manifest::{Manifest, OnFailure, PipelineSpec};
pub use release::{ReleaseId, ReleaseStatus, RunStatus};
