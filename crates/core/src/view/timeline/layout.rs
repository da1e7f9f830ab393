//! Where things go: the page's columns, the time scale, and the wave bands with their rows,
//! which get thinner as pipelines are added so that 500 stay on one readable page.

use super::model::{At, Ms, Release};
use std::collections::BTreeMap;

pub(super) const WIDTH: f64 = 1200.0;
/// Left edge of the text (title, labels).
pub(super) const LEFT: f64 = 16.0;
/// The label column runs from `LEFT` to here; the plot from here to `PLOT_RIGHT`.
pub(super) const PLOT_LEFT: f64 = 236.0;
pub(super) const PLOT_RIGHT: f64 = WIDTH - 28.0;

/// The tallest row, where pipelines are few.
const ROW_MAX: f64 = 18.0;
/// The thinnest row: 500 pipelines in 10 waves take about 1,200 px.
const ROW_MIN: f64 = 2.0;
/// The rows' share of the page, that they shrink to fit while above `ROW_MIN`.
const ROWS_MAX: f64 = 1300.0;
/// Each wave band starts with a strip for its label, its span and its waits' reasons.
pub(super) const BAND_HEAD: f64 = 20.0;
const BAND_FOOT: f64 = 4.0;
/// A row this tall or taller has its pipeline's name.
pub(super) const LABELLED_ROW: f64 = 11.0;

/// The wave bands below `top`, in wave order, and the row of each pipeline.
pub(super) struct Body<'a> {
    pub bands: Vec<Band<'a>>,
    pub row_height: f64,
    /// The top of each pipeline's row, by its index in `pipelines[]`.
    pub row_top: Vec<f64>,
    pub top: f64,
    pub bottom: f64,
}

pub(super) struct Band<'a> {
    pub wave: u32,
    /// From `waves[]`; none when the wave is only named by its pipelines.
    pub status: Option<&'a str>,
    pub started_at: Option<Ms>,
    pub ended_at: Option<Ms>,
    pub top: f64,
    pub bottom: f64,
    /// Indexes in `pipelines[]`, in JSON order.
    pub pipelines: Vec<usize>,
}

impl Body<'_> {
    pub fn of(release: &Release, top: f64) -> Body<'_> {
        let mut waves: BTreeMap<u32, Band> = BTreeMap::new();
        let blank = |wave| Band {
            wave,
            status: None,
            started_at: None,
            ended_at: None,
            top: 0.0,
            bottom: 0.0,
            pipelines: Vec::new(),
        };
        for w in &release.waves {
            let Some(n) = w.wave else { continue };
            let band = waves.entry(n).or_insert_with(|| blank(n));
            band.status = w.status.as_deref();
            band.started_at = w.started_at.map(|At(t)| t);
            band.ended_at = w.ended_at.map(|At(t)| t);
        }
        for (i, p) in release.pipelines.iter().enumerate() {
            let n = p.wave.unwrap_or(1);
            waves.entry(n).or_insert_with(|| blank(n)).pipelines.push(i);
        }
        let rows = release.pipelines.len() as f64;
        let row_height = if rows == 0.0 {
            ROW_MAX
        } else {
            (ROWS_MAX / rows).floor().clamp(ROW_MIN, ROW_MAX)
        };
        let mut row_top = vec![0.0; release.pipelines.len()];
        let mut y = top;
        let mut bands: Vec<Band> = waves.into_values().collect();
        for band in &mut bands {
            band.top = y;
            y += BAND_HEAD;
            for &i in &band.pipelines {
                row_top[i] = y;
                y += row_height;
            }
            y += BAND_FOOT;
            band.bottom = y;
        }
        Body {
            bands,
            row_height,
            row_top,
            top,
            bottom: y,
        }
    }

    /// The band of `wave`, if the release has it.
    pub fn band(&self, wave: u32) -> Option<&Band<'_>> {
        self.bands.iter().find(|b| b.wave == wave)
    }
}

/// Time to x: the axis's span over the plot's width.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scale {
    pub start: Ms,
    pub end: Ms,
}

impl Scale {
    pub fn x(&self, t: Ms) -> f64 {
        let span = (self.end - self.start).max(1) as f64;
        let f = ((t - self.start) as f64 / span).clamp(0.0, 1.0);
        PLOT_LEFT + f * (PLOT_RIGHT - PLOT_LEFT)
    }
}
