//! `rm-local`: the embedded adapters of the local run — a SQLite [`store::SqliteStore`],
//! simulated CodePipeline ([`sim::SimPipelines`], scripted by a `--sim` file), a
//! [`clock::VirtualClock`] and task tokens on the engine's ([`tokens::EngineTokens`]) — and the
//! [`runner`] that executes `statemachine/release.asl.json` with them in virtual time.
//!
//! The CodePipeline emulator (`emulator`, over HTTP on loopback, for the end-to-end tests)
//! is behind the `emulator` feature, off by default.

pub mod clock;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod events;
pub mod executions;
pub mod lock;
pub mod plan;
pub mod runner;
pub mod sim;
pub mod store;
pub mod tokens;
pub mod world;

pub use runner::{run_release, Progress, RunError, RunOptions, RunOutcome, RunReport};
pub use sim::{SimFile, SimFileError};
pub use store::SqliteStore;
