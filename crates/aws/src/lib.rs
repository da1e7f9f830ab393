//! Adapters of core's ports on the AWS SDK. Each is a small struct built once, in a Lambda's
//! main, from an SDK client:
//!
//! | port | adapter |
//! |---|---|
//! | `ReleaseStore` | [`DynamoStore`] (one table: see [`dynamo::schema`] and `TABLE.md`) |
//! | `Pipelines` | [`CodePipelineClient`] |
//! | `JobResults` | [`CodePipelineJobs`] |
//! | `ManifestSource` | [`S3ManifestSource`] |
//! | `TaskTokens` | [`SfnTaskTokens`] |
//! | `Executions` | [`SfnExecutions`] |
//! | `Alarms` | [`CloudWatchAlarms`] |
//! | `HealthEvents` | [`AwsHealth`] |
//! | `EventBus` | [`EventBridgeBus`] (PutEvents on the default bus, or `EVENT_BUS_NAME`) |
//!
//! Built once in a function's main:
//!
//! ```no_run
//! # async fn main_of_a_function() -> Result<(), rm_aws::MissingEnv> {
//! let config = rm_aws::load_config().await;
//! let _store = rm_aws::DynamoStore::new(
//!     aws_sdk_dynamodb::Client::new(&config),
//!     rm_aws::required_env("TABLE_NAME")?,
//! );
//! let _pipelines = rm_aws::CodePipelineClient::new(aws_sdk_codepipeline::Client::new(&config));
//! let _tokens = rm_aws::SfnTaskTokens::new(aws_sdk_sfn::Client::new(&config));
//! let _health = rm_aws::AwsHealth::from_config(&config); // Health's endpoint is us-east-1
//! let _bus = rm_aws::EventBridgeBus::from_env(aws_sdk_eventbridge::Client::new(&config));
//! // handlers return Result<_, rm_aws::LambdaError>: errorType = TaskError::error_type()
//! # Ok(())
//! # }
//! ```
//!
//! SDK errors become core's `PortError`: throttling → `Throttled`; 5xx, timeouts and
//! connection failures → `Transient`; a failed condition → `ConditionFailed`.

#[cfg(feature = "full")]
pub mod cloudwatch;
pub mod codepipeline;
pub mod config;
#[cfg(feature = "full")]
pub mod dynamo;
mod error;
#[cfg(feature = "full")]
pub mod events;
#[cfg(feature = "full")]
pub mod health;
#[cfg(feature = "full")]
pub mod lambda;
#[cfg(feature = "full")]
pub mod s3;
#[cfg(feature = "full")]
pub mod sfn;

#[cfg(feature = "full")]
pub use cloudwatch::CloudWatchAlarms;
pub use codepipeline::{CodePipelineClient, CodePipelineJobs};
pub use config::{load_config, required_env, MissingEnv};
#[cfg(feature = "full")]
pub use dynamo::schema::create_table;
#[cfg(feature = "full")]
pub use dynamo::DynamoStore;
#[cfg(feature = "full")]
pub use events::EventBridgeBus;
#[cfg(feature = "full")]
pub use health::AwsHealth;
#[cfg(feature = "full")]
pub use lambda::{no_manifests, serve_task, LambdaError};
#[cfg(feature = "full")]
pub use s3::S3ManifestSource;
#[cfg(feature = "full")]
pub use sfn::{SfnExecutions, SfnTaskTokens};
