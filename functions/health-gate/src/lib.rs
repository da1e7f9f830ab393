//! health-gate: a CodePipeline "invoke Lambda" action that holds a deployment while
//! configured CloudWatch alarms fire or AWS Health reports an open issue. The handler is
//! core's ([`rm_core::handlers::health_gate`]); this crate's `main` only builds the AWS ports.

pub use rm_core::handlers::health_gate::handle;
/// The ports the gate needs, built once per Lambda instance.
pub use rm_core::ports::GatePorts as Ports;
