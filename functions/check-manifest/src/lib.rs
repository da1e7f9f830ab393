//! check-manifest: the state machine's CheckManifest task. The handler is core's
//! ([`rm_core::handlers::check_manifest`]), the one the local run calls too; this crate's
//! `main` only builds the AWS ports (DynamoDB, CodePipeline, S3) and serves it.

pub use rm_core::handlers::check_manifest::handle;
/// The ports the task needs, built once per Lambda instance.
pub use rm_core::ports::ManifestPorts as Ports;
