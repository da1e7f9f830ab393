//! The release manifest: parsing, validation and normalization.
//!
//! [`Manifest::parse`] reports every problem at once, each with a JSONPath such as
//! `$.pipelines[2].name`. The seed's format (`{"releaseId": 5.15, "pipelines": ["a"]}`) is
//! valid, and a numeric release id is kept exactly as written (`5.10` stays `"5.10"`).
//!
//! The module is in three parts: `types` (what a manifest is: [`Manifest`], [`PipelineSpec`],
//! [`OnFailure`], ...), `reader` (the manifest's text read into a borrowed tree in an arena) and
//! `validation` (the rules, each problem reported with its `$.path`).

mod reader;
mod types;
mod validation;

pub use types::{
    Manifest, OnFailure, PipelineSpec, SourceRevision, Wave, MAX_RELEASE_MINUTES, STOP_WAIT_MINUTES,
};
pub use validation::check_pipeline_name;
pub(crate) use validation::member as member_path;

use crate::error::{Rejection, ValidationError};
use bumpalo::Bump;
use reader::{read, Json};
use serde_json::Value;

pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;
pub const MAX_PIPELINES: usize = 500;
pub const MAX_VARIABLES: usize = 50;
pub const MAX_SOURCE_REVISIONS: usize = 50;
/// The inline Map state's concurrency limit.
pub const MAX_CONCURRENCY: u32 = 40;
pub const DEFAULT_MAX_CONCURRENCY: u32 = 10;
pub const DEFAULT_TIMEOUT_MINUTES: u32 = 120;
/// Seven days: CodePipeline's longest-lived action (a manual approval) times out then.
pub const MAX_TIMEOUT_MINUTES: u32 = 7 * 24 * 60;
pub const MAX_WAVE: u32 = 500;
/// An approval waits a day unless the manifest says otherwise (`approvalTimeoutMinutes`).
pub const DEFAULT_APPROVAL_TIMEOUT_MINUTES: u32 = 24 * 60;
/// At most a week.
pub const MAX_APPROVAL_TIMEOUT_MINUTES: u32 = 7 * 24 * 60;
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
pub const REVISION_TYPES: [&str; 4] = [
    "COMMIT_ID",
    "IMAGE_DIGEST",
    "S3_OBJECT_VERSION_ID",
    "S3_OBJECT_KEY",
];

impl Manifest {
    /// `sha256:<hex>` of the normalized manifest serialized as JSON (fields in their fixed
    /// order, variables sorted by name, defaults filled in). Two manifests have the same hash
    /// when they ask for the same release: whitespace, key order, `"app"` versus
    /// `{"name": "app", "wave": 1}` and omitted defaults do not count; any value does,
    /// the description included.
    pub fn content_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        use std::fmt::Write;
        // A derived Serialize of strings, numbers, maps and lists cannot fail.
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::digest(&canonical);
        let mut out = String::with_capacity(7 + 64);
        out.push_str("sha256:");
        for b in digest {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    /// Parses and validates a manifest file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, Rejection> {
        let reject = |m: String| Rejection(vec![ValidationError::new("$", m)]);
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(reject(format!(
                "the manifest is {} bytes; at most {} bytes (256 KiB) are allowed",
                bytes.len(),
                MAX_MANIFEST_BYTES
            )));
        }
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(reject(
                "the manifest is empty; expected a JSON object with releaseId and pipelines".into(),
            ));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| reject(format!("the manifest is not UTF-8 text: {e}")))?;
        let arena = Bump::new();
        let read = read(text, &arena)
            .map_err(|e| reject(format!("the manifest is not valid JSON: {e}")))?;
        validation::validate(&read.value, read.raw_release_id, &read.duplicates)
    }

    /// Validates an already-parsed manifest (an inline state machine input, an API body).
    /// `raw_release_id` is the release id's JSON text when known, so a number keeps its
    /// digits exactly as written. A [`Value`] has no repeated keys left to report (its reader
    /// kept the last); [`Manifest::parse`] rejects them.
    pub fn from_value(value: &Value, raw_release_id: Option<&str>) -> Result<Manifest, Rejection> {
        let arena = Bump::new();
        validation::validate(&Json::from_value(value, &arena), raw_release_id, &[])
    }
}
