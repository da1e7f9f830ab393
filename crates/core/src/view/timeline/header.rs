//! Above the plot: the title (status, attempt, cause), a line of facts, the legend, and the
//! time axis's labels.

use super::axis::{duration, utc_date, utc_stamp, utc_time};
use super::layout::{LEFT, PLOT_LEFT, WIDTH};
use super::model::At;
use super::style::{self, CAUSE, INK, MUTED, RUN_STATUSES, WAIT_KINDS};
use super::svg::{escape, fit, text_width, Px, Svg};
use super::Chart;
use std::collections::BTreeSet;

/// The title: `Release <id> — <STATUS> — attempt N`, or for a plan `Plan of release <id> —
/// predicted <STATUS> in <duration>`.
pub(super) fn title_text(chart: &Chart) -> String {
    let r = chart.release;
    let status = r.status.as_deref().unwrap_or("UNKNOWN");
    if r.is_plan() {
        let took = match (r.requested_at, r.ended_at) {
            (Some(At(a)), Some(At(b))) => format!(" in {}", duration(b - a)),
            _ => String::new(),
        };
        return format!("Plan of release {} — predicted {status}{took}", chart.id);
    }
    let attempt = r
        .attempt
        .or_else(|| r.attempts.iter().filter_map(|a| a.attempt).max())
        .map(|n| format!(" — attempt {n}"))
        .unwrap_or_default();
    format!("Release {} — {status}{attempt}", chart.id)
}

/// Draws the header and returns where the plot starts.
pub(super) fn draw(svg: &mut Svg, chart: &Chart, title: &str) -> f64 {
    let width = WIDTH - 2.0 * LEFT;
    svg.empty(
        "rect",
        &[
            ("width", &"100%"),
            ("height", &"100%"),
            ("fill", &"#ffffff"),
        ],
    );
    let mut y = 30.0;
    line(svg, "title", y, 18.0, INK, title, width, true);
    if let Some(cause) = chart.release.cause.as_deref().filter(|c| !c.is_empty()) {
        y += 22.0;
        line(svg, "cause", y, 13.0, CAUSE, cause, width, false);
    }
    y += 21.0;
    line(svg, "facts", y, 12.0, MUTED, &facts(chart), width, false);
    y = legend(svg, chart, y + 26.0);
    let labels_top = y + 10.0;
    tick_labels(svg, chart, Some(labels_top + 12.0), labels_top + 26.0);
    labels_top + 34.0
}

/// One line of text, cut to `width` (its whole text then in a tooltip).
#[allow(clippy::too_many_arguments)]
fn line(
    svg: &mut Svg,
    class: &str,
    y: f64,
    size: f64,
    fill: &str,
    text: &str,
    width: f64,
    bold: bool,
) {
    let cut = fit(text, size, width);
    let weight = if bold { "bold" } else { "normal" };
    let attrs: [(&str, &dyn std::fmt::Display); 7] = [
        ("class", &class),
        ("x", &Px(LEFT)),
        ("y", &Px(y)),
        ("font-size", &Px(size)),
        ("font-weight", &weight),
        ("fill", &fill),
        ("xml:space", &"preserve"),
    ];
    if cut == text {
        svg.text("text", &attrs, text);
    } else {
        svg.open("text", &attrs);
        svg.text("title", &[], text);
        svg.raw(&escape(&cut));
        svg.close("text");
    }
}

/// `requested … by … · ended … · took … · N pipelines in M waves`.
fn facts(chart: &Chart) -> String {
    let r = chart.release;
    let mut parts = Vec::new();
    let started = r.requested_at.map(|At(t)| t);
    let plan = r.is_plan();
    if let Some(t) = started {
        let by = match (&r.requested_by, plan) {
            (Some(by), false) => format!(" by {by}"),
            _ => String::new(),
        };
        let verb = if plan { "starts" } else { "requested" };
        parts.push(format!("{verb} {}{by}", utc_stamp(t)));
    }
    match r.ended_at {
        Some(At(end)) => {
            let same_day = started.is_some_and(|s| utc_date(s) == utc_date(end));
            let when = match same_day {
                true => format!("{} UTC", utc_time(end, true)),
                false => utc_stamp(end),
            };
            parts.push(format!("{} {when}", if plan { "ends" } else { "ended" }));
            if let Some(s) = started {
                parts.push(format!("took {}", duration(end - s)));
            }
        }
        None if chart.axis.is_some() => {
            parts.push(format!("as of {}", utc_stamp(chart.now)));
        }
        None => {}
    }
    let waves: BTreeSet<u32> = r
        .waves
        .iter()
        .filter_map(|w| w.wave)
        .chain(r.pipelines.iter().map(|p| p.wave.unwrap_or(1)))
        .collect();
    let n = r.pipelines.len();
    parts.push(format!(
        "{n} pipeline{} in {} wave{}",
        if n == 1 { "" } else { "s" },
        waves.len(),
        if waves.len() == 1 { "" } else { "s" }
    ));
    parts.join("  ·  ")
}

enum Swatch<'a> {
    Status(&'a str),
    Wait(&'a str),
    Retry,
}

/// The status colours that appear, the waits that appear, the retries' line; wrapped to the
/// page. Returns the baseline of its last row.
fn legend(svg: &mut Svg, chart: &Chart, y: f64) -> f64 {
    let seen: BTreeSet<&str> = chart.runs.iter().map(|r| r.status).collect();
    let known = RUN_STATUSES.iter().copied().filter(|s| seen.contains(s));
    let other = seen.iter().copied().filter(|s| !RUN_STATUSES.contains(s));
    let kinds: BTreeSet<&str> = chart
        .release
        .waits
        .iter()
        .filter(|w| w.since.is_some())
        .filter_map(|w| w.kind.as_deref())
        .collect();
    let waits = WAIT_KINDS
        .iter()
        .copied()
        .filter(|k| kinds.contains(k))
        .chain(kinds.iter().copied().filter(|k| !WAIT_KINDS.contains(k)));
    let mut items: Vec<(Swatch, String)> = known
        .chain(other)
        .map(|s| (Swatch::Status(s), s.to_owned()))
        .collect();
    items.extend(waits.map(|k| (Swatch::Wait(k), format!("{k} wait"))));
    if chart.retries().next().is_some() {
        items.push((Swatch::Retry, "retry requested".into()));
    }
    let (mut x, mut y) = (LEFT, y);
    for (swatch, label) in &items {
        let w = 18.0 + text_width(label, 12.0) + 22.0;
        if x > LEFT && x + w > WIDTH - LEFT {
            x = LEFT;
            y += 20.0;
        }
        let top = Px(y - 10.0);
        match swatch {
            Swatch::Status(s) => svg.empty(
                "rect",
                &[
                    ("class", &"swatch"),
                    ("data-status", s),
                    ("x", &Px(x)),
                    ("y", &top),
                    ("width", &12),
                    ("height", &12),
                    ("rx", &2),
                    ("fill", &style::run_fill(s)),
                ],
            ),
            Swatch::Wait(k) => {
                let (fill, opacity) = style::wait_fill(k);
                svg.empty(
                    "rect",
                    &[
                        ("class", &"swatch"),
                        ("data-wait", k),
                        ("x", &Px(x)),
                        ("y", &top),
                        ("width", &12),
                        ("height", &12),
                        ("fill", &fill),
                        ("fill-opacity", &Px(opacity)),
                        ("stroke", &style::wait_ink(k)),
                        ("stroke-opacity", &"0.5"),
                    ],
                );
            }
            Swatch::Retry => svg.empty(
                "line",
                &[
                    ("class", &"swatch"),
                    ("x1", &Px(x + 6.0)),
                    ("x2", &Px(x + 6.0)),
                    ("y1", &top),
                    ("y2", &Px(y + 2.0)),
                    ("stroke", &INK),
                    ("stroke-width", &"1.5"),
                    ("stroke-dasharray", &"3 2"),
                ],
            ),
        }
        svg.text(
            "text",
            &[
                ("x", &Px(x + 18.0)),
                ("y", &Px(y)),
                ("font-size", &12),
                ("fill", &INK),
            ],
            label,
        );
        x += w;
    }
    y
}

/// The ticks' labels, centred on them: the date line (where the day changes) at `date_y`,
/// the time at `time_y`.
pub(super) fn tick_labels(svg: &mut Svg, chart: &Chart, date_y: Option<f64>, time_y: f64) {
    let (Some(axis), Some(scale)) = (&chart.axis, chart.scale) else {
        return;
    };
    svg.text(
        "text",
        &[
            ("class", &"tick-zone"),
            // Clear of a first tick's label, centred on the plot's left edge.
            ("x", &Px(PLOT_LEFT - 36.0)),
            ("y", &Px(time_y)),
            ("font-size", &10),
            ("fill", &MUTED),
            ("text-anchor", &"end"),
        ],
        "UTC",
    );
    for tick in &axis.ticks {
        let x = Px(scale.x(tick.at));
        if let (Some(date), Some(y)) = (&tick.date, date_y) {
            svg.text(
                "text",
                &[
                    ("class", &"tick-date"),
                    ("x", &x),
                    ("y", &Px(y)),
                    ("font-size", &10),
                    ("fill", &MUTED),
                    ("text-anchor", &"middle"),
                ],
                date,
            );
        }
        svg.text(
            "text",
            &[
                ("class", &"tick-label"),
                ("x", &x),
                ("y", &Px(time_y)),
                ("font-size", &11),
                ("fill", &INK),
                ("text-anchor", &"middle"),
            ],
            &tick.label,
        );
    }
}
