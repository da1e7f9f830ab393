//! `release-machine timeline ID [-o FILE]`, `timeline --plan MANIFEST`: the release as an SVG
//! Gantt chart.

use crate::remote::Remote;
use crate::TimelineArgs;

pub const TIMELINE_ABOUT: &str = "\
Draws a release as an SVG Gantt chart.";

pub fn timeline_local(args: &TimelineArgs) -> u8 {
    let _ = args;
    eprintln!("error: timeline is not built yet");
    crate::commands::INTERNAL
}

pub fn timeline_remote(remote: &Remote, args: &TimelineArgs) -> u8 {
    let _ = (remote, args);
    eprintln!("error: timeline is not built yet");
    crate::commands::INTERNAL
}
