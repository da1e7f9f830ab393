//! The time axis: a "nice" step for the span, ticks on its multiples, labels in UTC.

use super::model::Ms;
use time::OffsetDateTime;

const SECOND: Ms = 1_000;
const MINUTE: Ms = 60 * SECOND;
const HOUR: Ms = 60 * MINUTE;
const DAY: Ms = 24 * HOUR;

/// The steps a tick may take, smallest first.
const STEPS: [Ms; 23] = [
    SECOND,
    2 * SECOND,
    5 * SECOND,
    10 * SECOND,
    15 * SECOND,
    30 * SECOND,
    MINUTE,
    2 * MINUTE,
    5 * MINUTE,
    10 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    HOUR,
    2 * HOUR,
    3 * HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
    2 * DAY,
    7 * DAY,
    14 * DAY,
    28 * DAY,
    91 * DAY,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Axis {
    /// The plot's span: the first time to a little after the last.
    pub start: Ms,
    pub end: Ms,
    pub step: Ms,
    /// The multiples of `step` within the span.
    pub ticks: Vec<Tick>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tick {
    pub at: Ms,
    /// The date, on the first tick and where the day changes.
    pub date: Option<String>,
    pub label: String,
}

/// The axis over `from..=to` with at most `max_ticks` ticks: the smallest nice step that
/// keeps to it. The span gets a margin on the right so that a bar ending last stays clear of
/// the edge.
pub(super) fn axis(from: Ms, to: Ms, max_ticks: i64) -> Axis {
    let to = to.max(from);
    let span = (to - from).max(SECOND);
    let end = from + span + span / 60;
    let max_ticks = max_ticks.max(2);
    let step = STEPS
        .into_iter()
        .find(|step| span / step <= max_ticks)
        .unwrap_or_else(|| {
            let largest = STEPS[STEPS.len() - 1];
            largest * ceil_div(span, largest * max_ticks)
        });
    let mut ticks = Vec::new();
    let mut previous_day = None;
    let mut at = ceil_div(from, step) * step;
    while at <= end {
        let day = at.div_euclid(DAY);
        let label = if step >= DAY {
            utc_date(at)
        } else {
            utc_time(at, step < MINUTE)
        };
        let date = (step < DAY && previous_day != Some(day)).then(|| utc_date(at));
        previous_day = Some(day);
        ticks.push(Tick { at, date, label });
        at += step;
    }
    Axis {
        start: from,
        end,
        step,
        ticks,
    }
}

/// `a / b` rounded up, for `b > 0`.
fn ceil_div(a: Ms, b: Ms) -> Ms {
    a.div_euclid(b) + Ms::from(a.rem_euclid(b) != 0)
}

fn datetime(ms: Ms) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// `2026-12-01`.
pub(super) fn utc_date(ms: Ms) -> String {
    datetime(ms).map_or_else(
        || "?".into(),
        |t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
    )
}

/// `08:15` or `08:15:05`.
pub(super) fn utc_time(ms: Ms, seconds: bool) -> String {
    datetime(ms).map_or_else(
        || "?".into(),
        |t| match seconds {
            true => format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()),
            false => format!("{:02}:{:02}", t.hour(), t.minute()),
        },
    )
}

/// `2026-12-01 08:15:05 UTC`.
pub(super) fn utc_stamp(ms: Ms) -> String {
    format!("{} {} UTC", utc_date(ms), utc_time(ms, true))
}

/// `45 s`, `3 min 5 s`, `2 h 10 min`, `1 d 4 h`.
pub(super) fn duration(ms: Ms) -> String {
    let ms = ms.max(0);
    if ms < SECOND {
        return format!("{ms} ms");
    }
    let s = ms / SECOND;
    let (d, h, m, s) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    let pair = |a: i64, ua: &str, b: i64, ub: &str| match b {
        0 => format!("{a} {ua}"),
        _ => format!("{a} {ua} {b} {ub}"),
    };
    match () {
        _ if d > 0 => pair(d, "d", h, "h"),
        _ if h > 0 => pair(h, "h", m, "min"),
        _ if m > 0 => pair(m, "min", s, "s"),
        _ => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-01T08:00:00Z.
    const T: Ms = 1_796_112_000_000;

    fn labels(a: &Axis) -> Vec<(Option<&str>, &str)> {
        a.ticks
            .iter()
            .map(|t| (t.date.as_deref(), t.label.as_str()))
            .collect()
    }

    #[test]
    fn six_minutes_are_ticked_every_whole_minute() {
        let a = axis(T + 23 * SECOND, T + 6 * MINUTE + 23 * SECOND, 10);
        assert_eq!(a.step, MINUTE);
        assert_eq!(
            (a.start, a.end),
            (T + 23 * SECOND, T + 6 * MINUTE + 29 * SECOND)
        );
        assert_eq!(labels(&a)[0], (Some("2026-12-01"), "08:01"));
        assert_eq!(labels(&a)[1], (None, "08:02"));
        assert_eq!(a.ticks.len(), 6);
    }

    #[test]
    fn the_step_grows_with_the_span() {
        let step = |span: Ms| axis(T, T + span, 10).step;
        assert_eq!(step(8 * SECOND), SECOND);
        assert_eq!(step(40 * SECOND), 5 * SECOND);
        assert_eq!(step(2 * MINUTE), 15 * SECOND);
        assert_eq!(step(4 * MINUTE), 30 * SECOND);
        assert_eq!(step(12 * MINUTE), 2 * MINUTE);
        assert_eq!(step(40 * MINUTE), 5 * MINUTE);
        assert_eq!(step(2 * HOUR), 15 * MINUTE);
        assert_eq!(step(9 * HOUR), HOUR);
        assert_eq!(step(30 * HOUR), 3 * HOUR);
        assert_eq!(step(9 * DAY), DAY);
        assert!(axis(T, T + 10 * 365 * DAY, 10).ticks.len() <= 12);
    }

    #[test]
    fn seconds_are_shown_below_a_minute_and_the_date_when_the_day_changes() {
        let a = axis(T, T + 20 * SECOND, 10);
        assert_eq!(labels(&a)[1], (None, "08:00:02"));
        let a = axis(T + 12 * HOUR, T + 20 * HOUR, 10);
        let dated: Vec<_> = labels(&a).into_iter().filter(|l| l.0.is_some()).collect();
        assert_eq!(
            dated,
            vec![(Some("2026-12-01"), "20:00"), (Some("2026-12-02"), "00:00")]
        );
    }

    #[test]
    fn durations_read_as_a_person_would_say_them() {
        assert_eq!(duration(450), "450 ms");
        assert_eq!(duration(45 * SECOND), "45 s");
        assert_eq!(duration(3 * MINUTE), "3 min");
        assert_eq!(duration(3 * MINUTE + 5 * SECOND), "3 min 5 s");
        assert_eq!(duration(2 * HOUR + 10 * MINUTE + 7 * SECOND), "2 h 10 min");
        assert_eq!(duration(DAY + 4 * HOUR), "1 d 4 h");
    }
}
