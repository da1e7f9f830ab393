//! The release as an SVG Gantt chart (`release-machine timeline`, `GET
//! /releases/{id}/timeline.svg`, `timeline --plan`), drawn from the release JSON alone.
//!
//! A row per pipeline, grouped in wave bands; a bar per run (one pipeline in one attempt) from
//! its first to its last history entry, coloured by its status; waits as shaded spans; the
//! release's status, attempt and cause in the title; a time axis in UTC.
//!
//! The SVG's conventions, for whoever reads it back (tests, a browser's CSS or script):
//! - a run: `<rect class="bar status-<Status>" data-pipeline data-attempt data-start
//!   data-end [data-execution] [data-open="true"]>` with a `<title>` tooltip;
//! - a wait: `<rect class="wait wait-<kind>" [data-wave]>` with a `<title>`;
//! - a wave: `<rect class="band" data-wave>`, its `<text class="wave-label">Wave N — status`,
//!   its `<rect class="wave-span">`;
//! - a retry: `<line class="attempt-boundary" data-attempt>`;
//! - the legend's swatches: `<rect class="swatch" data-status|data-wait>`.

mod axis;
mod header;
mod layout;
mod model;
mod plot;
mod runs;
mod style;
mod svg;

use layout::{Body, Scale, WIDTH};
use model::{At, Ms, Release};
use runs::Run;
use serde_json::Value;

/// Why a release JSON could not be drawn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot draw the timeline: {0}")]
pub struct TimelineError(pub String);

/// Draws the release JSON (`waves[]`, `waits[]`, `attempts[]`, the runs' `history[]`) as an
/// SVG document. A plan's simulated release (top-level `"planned": true`) is drawn the same
/// way, titled as a plan. Fields missing or of another shape are drawn as absent; only a
/// release without `releaseId` is an error. The same JSON gives the same bytes.
pub fn render(release: &Value) -> Result<String, TimelineError> {
    let release = Release::parse(release)?;
    let chart = Chart::of(&release)?;
    let mut svg = svg::Svg::default();
    svg.raw(style::DEFS);
    let title = header::title_text(&chart);
    let top = header::draw(&mut svg, &chart, &title);
    let body = Body::of(&release, top);
    let bottom = plot::draw(&mut svg, &chart, &body);
    Ok(svg.finish(WIDTH, bottom, &title))
}

/// The release and what is worked out from it before drawing.
struct Chart<'a> {
    release: &'a Release,
    id: String,
    runs: Vec<Run<'a>>,
    /// The time axis over every time in the JSON; none when it has no time at all.
    axis: Option<axis::Axis>,
    scale: Option<Scale>,
    /// Where a wait or a run still under way ends: the release's end, or the latest time in
    /// the JSON.
    now: Ms,
}

impl<'a> Chart<'a> {
    fn of(release: &'a Release) -> Result<Self, TimelineError> {
        let times: Vec<Ms> = release.times().collect();
        let span = times
            .iter()
            .min()
            .zip(times.iter().max())
            .map(|(&a, &b)| (a, b));
        let now = release
            .ended_at
            .map(|At(t)| t)
            .or(span.map(|(_, last)| last))
            .unwrap_or(0);
        // A tick label is at most about 60 px wide: one every 90 px or more stays apart.
        let max_ticks = ((layout::PLOT_RIGHT - layout::PLOT_LEFT) / 90.0) as i64;
        let axis = span.map(|(first, last)| axis::axis(first, last, max_ticks));
        let scale = axis.as_ref().map(|a| Scale {
            start: a.start,
            end: a.end,
        });
        Ok(Chart {
            release,
            id: release.id()?,
            runs: runs::runs(release, now),
            axis,
            scale,
            now,
        })
    }

    /// The retries' requests: the attempts from the second on.
    fn retries(&self) -> impl Iterator<Item = (u32, Ms, Option<&str>)> + '_ {
        self.release.attempts.iter().filter_map(|a| {
            let n = a.attempt?;
            let At(at) = a.requested_at?;
            (n >= 2).then_some((n, at, a.requested_by.as_deref()))
        })
    }
}
