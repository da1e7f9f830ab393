//! The plot: wave bands and their rows, the grid, the waits, a bar per run, the retries.

use super::axis::{duration, utc_stamp};
use super::layout::{Band, Body, Scale, BAND_HEAD, LABELLED_ROW, LEFT, PLOT_LEFT, PLOT_RIGHT};
use super::model::{At, Ms};
use super::runs::Run;
use super::style::{self, class_token, GRID, INK, MUTED};
use super::svg::{fit, text_width, Px, Svg};
use super::{header, Chart};
use std::fmt::Display;

/// Draws the plot below the header and returns the page's height.
pub(super) fn draw(svg: &mut Svg, chart: &Chart, body: &Body) -> f64 {
    if body.bands.is_empty() {
        svg.text(
            "text",
            &[
                ("class", &"empty"),
                ("x", &Px(PLOT_LEFT)),
                ("y", &Px(body.top + 20.0)),
                ("fill", &MUTED),
            ],
            "no pipelines",
        );
        return body.top + 44.0;
    }
    bands(svg, body);
    if let Some(scale) = chart.scale {
        grid(svg, chart, scale, body);
        waits(svg, chart, scale, body);
        wave_spans(svg, chart, scale, body);
        for run in &chart.runs {
            bar(svg, chart, scale, body, run);
        }
    }
    labels(svg, chart, body);
    let Some(scale) = chart.scale else {
        return body.bottom + 16.0;
    };
    retries(svg, chart, scale, body);
    let mut bottom = body.bottom + 22.0;
    if body.bottom - body.top > 600.0 {
        // A tall chart repeats the times below it.
        header::tick_labels(svg, chart, None, bottom + 12.0);
        bottom += 12.0;
    }
    bottom + 14.0
}

/// The wave bands' backgrounds, alternating.
fn bands(svg: &mut Svg, body: &Body) {
    for (i, band) in body.bands.iter().enumerate() {
        svg.empty(
            "rect",
            &[
                ("class", &"band"),
                ("data-wave", &band.wave),
                ("x", &Px(LEFT - 8.0)),
                ("y", &Px(band.top)),
                ("width", &Px(PLOT_RIGHT + 8.0 - (LEFT - 8.0))),
                ("height", &Px(band.bottom - band.top)),
                ("fill", &style::band_fill(i)),
            ],
        );
    }
}

/// A light vertical line at each tick, through the bands.
fn grid(svg: &mut Svg, chart: &Chart, scale: Scale, body: &Body) {
    let Some(axis) = &chart.axis else { return };
    for tick in &axis.ticks {
        let x = Px(scale.x(tick.at));
        svg.empty(
            "line",
            &[
                ("class", &"grid"),
                ("x1", &x),
                ("x2", &x),
                ("y1", &Px(body.top - 4.0)),
                ("y2", &Px(body.bottom)),
                ("stroke", &GRID),
                ("stroke-width", &1),
            ],
        );
    }
}

/// Each wait a shaded span across its wave's band (a halt, stack-wide, across all of them),
/// with its reason in the band's head strip where it fits.
fn waits(svg: &mut Svg, chart: &Chart, scale: Scale, body: &Body) {
    for wait in &chart.release.waits {
        let Some(At(since)) = wait.since else {
            continue;
        };
        let until = wait.until.map_or(chart.now, |At(t)| t).max(since);
        let kind = wait.kind.as_deref().unwrap_or("wait");
        let band = wait.wave.and_then(|w| body.band(w));
        let (top, bottom) = match band {
            Some(b) if kind != "halt" => (b.top, b.bottom),
            _ => (body.top, body.bottom),
        };
        let (x0, x1) = (scale.x(since), scale.x(until));
        let (fill, opacity) = style::wait_fill(kind);
        let class = format!("wait wait-{}", class_token(kind));
        let wave_attr = wait.wave.map(|w| w.to_string()).unwrap_or_default();
        let mut tooltip = format!(
            "{kind} wait{} — {} to {} ({}{})",
            wait.wave.map(|w| format!(", wave {w}")).unwrap_or_default(),
            utc_stamp(since),
            wait.until.map_or("now".into(), |At(t)| utc_stamp(t)),
            duration(until - since),
            if wait.until.is_none() {
                ", still waiting"
            } else {
                ""
            },
        );
        for reason in &wait.reasons {
            tooltip.push('\n');
            tooltip.push_str(reason);
        }
        if let Some(by) = &wait.by {
            tooltip.push_str(&format!("\nby {by}"));
        }
        let base: [(&str, &dyn Display); 7] = [
            ("class", &class),
            ("x", &Px(x0)),
            ("y", &Px(top)),
            ("width", &Px((x1 - x0).max(1.5))),
            ("height", &Px(bottom - top)),
            ("fill", &fill),
            ("fill-opacity", &Px(opacity)),
        ];
        let mut all: Vec<(&str, &dyn Display)> = base.to_vec();
        if wait.wave.is_some() {
            all.push(("data-wave", &wave_attr));
        }
        svg.titled("rect", &all, &tooltip);
        // The reason, in the head strip of its wave's band (the first band for a halt
        // without a wave).
        let strip = band.or(body.bands.first());
        let reason = wait
            .reasons
            .first()
            .map_or(String::new(), |r| format!(": {r}"));
        let label = fit(&format!("{kind}{reason}"), 10.0, x1 - x0 - 6.0);
        if let (Some(strip), true) = (strip, x1 - x0 >= 34.0) {
            svg.text(
                "text",
                &[
                    ("class", &"wait-label"),
                    ("x", &Px(x0 + 3.0)),
                    ("y", &Px(strip.top + 11.0)),
                    ("font-size", &10),
                    ("fill", &style::wait_ink(kind)),
                ],
                &label,
            );
        }
    }
}

/// Each wave's own span (`startedAt` to `endedAt`), a thin line at the foot of its head strip.
fn wave_spans(svg: &mut Svg, chart: &Chart, scale: Scale, body: &Body) {
    for band in &body.bands {
        let Some(start) = band.started_at else {
            continue;
        };
        let end = band.ended_at.unwrap_or(chart.now).max(start);
        let (x0, x1) = (scale.x(start), scale.x(end));
        let tooltip = format!(
            "{} — {} to {} ({})",
            wave_title(band),
            utc_stamp(start),
            band.ended_at.map_or("now".into(), utc_stamp),
            duration(end - start)
        );
        svg.titled(
            "rect",
            &[
                ("class", &"wave-span"),
                ("data-wave", &band.wave),
                ("x", &Px(x0)),
                ("y", &Px(band.top + BAND_HEAD - 6.0)),
                ("width", &Px((x1 - x0).max(1.5))),
                ("height", &3),
                ("rx", &1.5),
                ("fill", &MUTED),
                ("fill-opacity", &"0.6"),
            ],
            &tooltip,
        );
    }
}

fn wave_title(band: &Band) -> String {
    match band.status {
        Some(status) => format!("Wave {} — {status}", band.wave),
        None => format!("Wave {}", band.wave),
    }
}

/// A bar's height and offset in its row: a gap between rows while they are tall enough.
fn bar_box(row_height: f64) -> (f64, f64) {
    let h = if row_height >= 8.0 {
        row_height - 4.0
    } else if row_height >= 3.0 {
        row_height - 1.0
    } else {
        row_height
    };
    (h, (row_height - h) / 2.0)
}

/// One run: a bar from its start to its end in its status's colour (Skipped a thin mark at
/// its time), with its tooltip.
fn bar(svg: &mut Svg, chart: &Chart, scale: Scale, body: &Body, run: &Run) {
    let (h, offset) = bar_box(body.row_height);
    let y = body.row_top[run.pipeline] + offset;
    let skipped = run.status == "Skipped";
    let (x0, x1) = (scale.x(run.start), scale.x(run.end));
    let (x, w) = match skipped {
        true => (x0 - 1.5, 3.0),
        false => (x0, (x1 - x0).max(2.0)),
    };
    let class = format!("bar status-{}", class_token(run.status));
    let (start, end) = (rfc3339(run.start), rfc3339(run.end));
    let mut all: Vec<(&str, &dyn Display)> = vec![
        ("class", &class),
        ("data-pipeline", &run.name),
        ("data-attempt", &run.attempt),
        ("data-start", &start),
        ("data-end", &end),
    ];
    if let Some(e) = &run.execution_id {
        all.push(("data-execution", e));
    }
    if run.open {
        all.push(("data-open", &"true"));
    }
    let (px, py, pw, ph) = (Px(x), Px(y), Px(w), Px(h));
    let rx = Px((h / 4.0).min(3.0));
    let fill = style::run_fill(run.status);
    all.extend_from_slice(&[
        ("x", &px),
        ("y", &py),
        ("width", &pw),
        ("height", &ph),
        ("rx", &rx),
        ("fill", &fill),
    ]);
    svg.titled("rect", &all, &bar_tooltip(run, chart.now));
    if h < 12.0 {
        return;
    }
    let text_y = Px(y + h / 2.0 + 3.5);
    let retried = chart.runs.iter().any(|r| r.attempt > 1);
    if skipped {
        svg.text(
            "text",
            &[
                ("class", &"bar-label"),
                ("x", &Px(x + w + 4.0)),
                ("y", &text_y),
                ("font-size", &10),
                ("fill", &MUTED),
                ("pointer-events", &"none"),
            ],
            "skipped, unchanged",
        );
    } else if retried && w >= 24.0 {
        let label = if w >= 70.0 {
            format!("attempt {}", run.attempt)
        } else {
            format!("#{}", run.attempt)
        };
        svg.text(
            "text",
            &[
                ("class", &"bar-label"),
                ("x", &Px(x + 5.0)),
                ("y", &text_y),
                ("font-size", &10),
                ("fill", &"#ffffff"),
                ("pointer-events", &"none"),
            ],
            &label,
        );
    }
}

fn bar_tooltip(run: &Run, now: Ms) -> String {
    let mut t = format!("{} — attempt {} — {}", run.name, run.attempt, run.status);
    if run.status == "Skipped" {
        t.push_str(&format!(
            " (unchanged since its last success)\nat {}",
            utc_stamp(run.start)
        ));
    } else {
        t.push_str(&format!("\nstarted {}", utc_stamp(run.start)));
        if run.open {
            t.push_str(&format!(
                "\nstill {} at {}",
                run.status,
                utc_stamp(now.max(run.start))
            ));
        } else {
            t.push_str(&format!("\nended {}", utc_stamp(run.end)));
        }
        t.push_str(&format!("\ntook {}", duration(run.end - run.start)));
    }
    if let Some(e) = run.execution_id {
        let what = if run.status == "Skipped" {
            "matched execution"
        } else {
            "execution"
        };
        t.push_str(&format!("\n{what} {e}"));
    }
    t
}

fn rfc3339(ms: Ms) -> String {
    let stamp = utc_stamp(ms);
    // `2026-12-01 08:00:00 UTC` -> `2026-12-01T08:00:00Z`
    stamp.replacen(' ', "T", 1).replace(" UTC", "Z")
}

/// The label column: each wave's name and status, each pipeline's name where rows are tall
/// enough (a band of thin rows says how many it holds instead); "not started" in the row of a
/// pipeline without a run.
fn labels(svg: &mut Svg, chart: &Chart, body: &Body) {
    let labelled = body.row_height >= LABELLED_ROW;
    let column = PLOT_LEFT - LEFT - 10.0;
    for band in &body.bands {
        let mut room = column;
        if !labelled && !band.pipelines.is_empty() {
            let n = band.pipelines.len();
            let count = format!("{n} pipeline{}", if n == 1 { "" } else { "s" });
            room -= text_width(&count, 10.0) + 8.0;
            svg.text(
                "text",
                &[
                    ("class", &"wave-count"),
                    ("x", &Px(PLOT_LEFT - 10.0)),
                    ("y", &Px(band.top + 14.0)),
                    ("font-size", &10),
                    ("fill", &MUTED),
                    ("text-anchor", &"end"),
                ],
                &count,
            );
        }
        svg.text(
            "text",
            &[
                ("class", &"wave-label"),
                ("data-wave", &band.wave),
                ("x", &Px(LEFT)),
                ("y", &Px(band.top + 14.0)),
                ("font-size", &12),
                ("font-weight", &"bold"),
                ("fill", &INK),
            ],
            &fit(&wave_title(band), 12.0, room),
        );
        if !labelled {
            continue;
        }
        let size = (body.row_height - 5.0).clamp(8.0, 12.0);
        for &i in &band.pipelines {
            let name = chart.release.pipelines[i].name.as_deref().unwrap_or("?");
            let y = Px(body.row_top[i] + body.row_height / 2.0 + size * 0.36);
            svg.text(
                "text",
                &[
                    ("class", &"pipeline-label"),
                    ("x", &Px(LEFT + 10.0)),
                    ("y", &y),
                    ("font-size", &Px(size)),
                    ("fill", &INK),
                ],
                &fit(name, size, column - 10.0),
            );
            if chart.runs.iter().all(|r| r.pipeline != i) {
                svg.text(
                    "text",
                    &[
                        ("class", &"not-started"),
                        ("x", &Px(PLOT_LEFT + 6.0)),
                        ("y", &y),
                        ("font-size", &Px(size.min(10.0))),
                        ("font-style", &"italic"),
                        ("fill", &MUTED),
                    ],
                    "not started",
                );
            }
        }
    }
}

/// Each retry's request: a dashed line through the plot, labelled below it.
fn retries(svg: &mut Svg, chart: &Chart, scale: Scale, body: &Body) {
    for (attempt, at, by) in chart.retries() {
        let x = scale.x(at);
        let by = by.map(|b| format!(" by {b}")).unwrap_or_default();
        svg.titled(
            "line",
            &[
                ("class", &"attempt-boundary"),
                ("data-attempt", &attempt),
                ("x1", &Px(x)),
                ("x2", &Px(x)),
                ("y1", &Px(body.top - 4.0)),
                ("y2", &Px(body.bottom + 6.0)),
                ("stroke", &INK),
                ("stroke-width", &1.5),
                ("stroke-dasharray", &"5 3"),
            ],
            &format!("attempt {attempt} requested {}{by}", utc_stamp(at)),
        );
        svg.text(
            "text",
            &[
                ("class", &"attempt-label"),
                ("x", &Px(x + 4.0)),
                ("y", &Px(body.bottom + 16.0)),
                ("font-size", &11),
                ("fill", &INK),
            ],
            &format!("attempt {attempt}"),
        );
    }
}
