//! Deployment windows (ARCHITECTURE.md §5a): when, in a time zone's local time, the gate may
//! open. Pure functions over [`jiff`] (the IANA database is bundled into the binary, so a
//! Lambda without tzdata and a laptop resolve the same rules).
//!
//! The rules: `allow` windows are weekly local times, `to` exclusive; a `to` before `from`
//! spans midnight and belongs to the day it starts (`Mon 22:00–06:00` covers Tuesday 03:00);
//! `to` may be `24:00`. `deny` windows are local date-times. A local time that does not exist
//! (spring forward) moves to the first valid instant after it; an ambiguous one (fall back)
//! takes its first occurrence.

use super::{AllowWindow, DenyWindow, Windows};
use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};
use time::OffsetDateTime;

/// Day names as written in `days`, Monday first.
pub const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// How far ahead [`Schedule::opens_at`] looks for an opening.
pub const SEARCH_DAYS: i32 = 400;

/// `Mon` … `Sun`.
pub fn parse_day(s: &str) -> Result<Weekday, String> {
    DAYS.iter()
        .position(|d| *d == s)
        .map(|i| Weekday::from_monday_one_offset(i as i8 + 1).unwrap_or(Weekday::Monday))
        .ok_or_else(|| format!("{s:?} is not a day; write Mon, Tue, Wed, Thu, Fri, Sat or Sun"))
}

/// `HH:MM` as minutes after midnight: `00:00` to `23:59`, and `24:00` (1440) where `end` (the
/// exclusive end of a day's window).
pub fn parse_clock(s: &str, end: bool) -> Result<u16, String> {
    let bad = || {
        if end {
            format!("{s:?} is not a time; expected HH:MM from 00:00 to 24:00, such as \"16:00\"")
        } else {
            format!("{s:?} is not a time; expected HH:MM from 00:00 to 23:59, such as \"09:00\"")
        }
    };
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' || ![0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit()) {
        return Err(bad());
    }
    let h = u16::from(b[0] - b'0') * 10 + u16::from(b[1] - b'0');
    let m = u16::from(b[3] - b'0') * 10 + u16::from(b[4] - b'0');
    match (h, m) {
        (0..=23, 0..=59) => Ok(h * 60 + m),
        (24, 0) if end => Ok(24 * 60),
        _ => Err(bad()),
    }
}

/// A deny window's bound: a local date-time written `YYYY-MM-DDTHH:MM`.
pub fn parse_local(s: &str) -> Result<DateTime, String> {
    let bad = |why: &str| {
        format!(
            "{s:?} is not a local date-time{why}; expected YYYY-MM-DDTHH:MM such as \
             \"2026-12-20T00:00\" (local to the windows' timezone)"
        )
    };
    let b = s.as_bytes();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15];
    if b.len() != 16
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || !digits.iter().all(|&i| b[i].is_ascii_digit())
    {
        return Err(bad(""));
    }
    let n = |from: usize, to: usize| -> i32 { s[from..to].parse().unwrap_or(-1) };
    let (year, month, day) = (n(0, 4), n(5, 7), n(8, 10));
    let (hour, minute) = (n(11, 13), n(14, 16));
    let date = Date::new(year as i16, month as i8, day as i8)
        .map_err(|_| bad(&format!(" ({year:04}-{month:02}-{day:02} is not a date)")))?;
    if !(0..=23).contains(&hour) || !(0..=59).contains(&minute) {
        return Err(bad(" (the time is not from 00:00 to 23:59)"));
    }
    Ok(date.at(hour as i8, minute as i8, 0, 0))
}

/// An IANA time zone by name, from the bundled database.
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    if name.is_empty() {
        return Err("must name an IANA time zone, such as \"Europe/Berlin\"".into());
    }
    TimeZone::get(name).map_err(|_| {
        format!(
            "unknown time zone {name:?}; use an IANA time zone name such as \"Europe/Berlin\", \
             \"America/New_York\" or \"UTC\""
        )
    })
}

/// The instant of a local date-time: a time in a gap (spring forward) moves to the first
/// valid instant after it (the transition); a time in a fold (fall back) takes its first
/// occurrence.
pub fn resolve(tz: &TimeZone, local: DateTime) -> Timestamp {
    let ambiguous = tz.to_ambiguous_timestamp(local);
    let instant = match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(local),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(local),
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the later offset, the local time falls before the transition: the
            // next transition is the first instant whose local time exists after it.
            return after
                .to_timestamp(local)
                .ok()
                .and_then(|t| tz.following(t).next())
                .map(|transition| transition.timestamp())
                .unwrap_or(Timestamp::MAX);
        }
    };
    instant.unwrap_or(Timestamp::MAX)
}

pub fn to_timestamp(t: OffsetDateTime) -> Timestamp {
    Timestamp::from_nanosecond(t.unix_timestamp_nanos()).unwrap_or(Timestamp::MAX)
}

pub fn to_offset_date_time(t: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(t.as_nanosecond())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A weekly allow window, read.
#[derive(Debug, Clone)]
struct Allow {
    /// Indexed Monday first; all true when `days` is empty.
    days: [bool; 7],
    from: u16,
    to: u16,
}

/// A deny window, read.
#[derive(Debug, Clone)]
struct Deny {
    from: Timestamp,
    to: Timestamp,
    text: String,
}

/// The windows, read and ready to ask: is an instant allowed, and when do they next open?
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: TimeZone,
    allow: Vec<Allow>,
    deny: Vec<Deny>,
    allow_text: String,
}

/// What the windows say at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowState {
    /// Why they are closed; empty: open.
    pub reasons: Vec<String>,
    /// When closed: the earliest instant at which they permit, within [`SEARCH_DAYS`].
    pub opens_at: Option<OffsetDateTime>,
}

impl WindowState {
    pub fn is_open(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// Reads and checks the windows at `now`: `Err` when they cannot be read (an unknown time
/// zone, a malformed time: what validation reports with its path).
pub fn check(windows: &Windows, now: OffsetDateTime) -> Result<WindowState, String> {
    Ok(Schedule::new(windows)?.state(now))
}

impl Schedule {
    /// Reads the windows; the first problem found is the error (validation reports them all).
    pub fn new(windows: &Windows) -> Result<Schedule, String> {
        let tz = time_zone(&windows.timezone)?;
        let allow = windows
            .allow
            .iter()
            .map(read_allow)
            .collect::<Result<Vec<_>, _>>()?;
        let deny = windows
            .deny
            .iter()
            .map(|d| read_deny(d, &tz, &windows.timezone))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Schedule {
            allow_text: describe_allow(&windows.allow, &windows.timezone),
            tz,
            allow,
            deny,
        })
    }

    /// The instants `[start, end)` of the allow windows that start on local `date`.
    fn intervals_on(&self, date: Date) -> impl Iterator<Item = (Timestamp, Timestamp)> + '_ {
        let weekday = date.weekday().to_monday_zero_offset() as usize;
        self.allow
            .iter()
            .filter(move |a| a.days[weekday])
            .map(move |a| {
                let start = resolve(&self.tz, at_minutes(date, a.from));
                let end = if a.to > a.from {
                    at_minutes(date, a.to)
                } else {
                    // Spans midnight: it ends on the next day.
                    at_minutes(date.tomorrow().unwrap_or(date), a.to)
                };
                (start, resolve(&self.tz, end))
            })
    }

    /// Whether an allow window covers `t` (always, without allow windows).
    pub fn allowed(&self, t: Timestamp) -> bool {
        if self.allow.is_empty() {
            return true;
        }
        let date = self.tz.to_datetime(t).date();
        // A window starting up to two days before (midnight spans, `24:00`, and zones whose
        // transitions move midnight) or a day after (a fold back across midnight) may cover it.
        (-2..=1).any(|d| {
            date.checked_add(d.days())
                .is_ok_and(|day| self.intervals_on(day).any(|(s, e)| s <= t && t < e))
        })
    }

    fn denied(&self, t: Timestamp) -> impl Iterator<Item = &Deny> {
        self.deny.iter().filter(move |d| d.from <= t && t < d.to)
    }

    /// Allowed and not denied.
    pub fn permits(&self, t: Timestamp) -> bool {
        self.allowed(t) && self.denied(t).next().is_none()
    }

    /// The earliest instant at or after `now` the windows permit, looking [`SEARCH_DAYS`]
    /// ahead. The permitted set is a union of half-open intervals, so its first instant is
    /// `now`, the start of an allow window, or the end of a deny window: those are tried in
    /// order. (An allow window's start is allowed by itself unless the window is empty that
    /// day, so only the deny windows are asked about it: a year of fifty windows stays cheap.)
    pub fn opens_at(&self, now: Timestamp) -> Option<Timestamp> {
        let mut candidates: Vec<(Timestamp, bool)> = vec![(now, false)];
        let today = self.tz.to_datetime(now).date();
        for d in -2..=SEARCH_DAYS {
            let Ok(day) = today.checked_add(d.days()) else {
                break;
            };
            candidates.extend(
                self.intervals_on(day)
                    .filter(|(s, e)| *s >= now && s < e)
                    .map(|(s, _)| (s, true)),
            );
        }
        candidates.extend(
            self.deny
                .iter()
                .map(|d| (d.to, false))
                .filter(|(t, _)| *t >= now),
        );
        candidates.sort_unstable();
        candidates.dedup_by_key(|(t, _)| *t);
        let horizon = now
            .checked_add((i64::from(SEARCH_DAYS) * 24).hours())
            .ok()?;
        candidates
            .into_iter()
            .take_while(|(t, _)| *t <= horizon)
            .find(|(t, starts_allow)| {
                self.denied(*t).next().is_none() && (*starts_allow || self.allowed(*t))
            })
            .map(|(t, _)| t)
    }

    /// Open, or closed with every reason and the next opening.
    pub fn state(&self, now: OffsetDateTime) -> WindowState {
        let t = to_timestamp(now);
        let mut reasons = Vec::new();
        if !self.allowed(t) {
            reasons.push(format!(
                "outside the deployment window{} ({})",
                if self.allow.len() > 1 { "s" } else { "" },
                self.allow_text
            ));
        }
        reasons.extend(self.denied(t).map(|d| d.text.clone()));
        if reasons.is_empty() {
            return WindowState {
                reasons,
                opens_at: None,
            };
        }
        let opens_at = self.opens_at(t).map(to_offset_date_time);
        if opens_at.is_none() {
            if let Some(last) = reasons.last_mut() {
                last.push_str(&format!(
                    "; the windows do not open in the next {SEARCH_DAYS} days"
                ));
            }
        }
        WindowState { reasons, opens_at }
    }
}

fn at_minutes(date: Date, minutes: u16) -> DateTime {
    if minutes >= 24 * 60 {
        return date.tomorrow().unwrap_or(date).at(0, 0, 0, 0);
    }
    date.at((minutes / 60) as i8, (minutes % 60) as i8, 0, 0)
}

fn read_allow(a: &AllowWindow) -> Result<Allow, String> {
    let mut days = [a.days.is_empty(); 7];
    for d in &a.days {
        days[parse_day(d)?.to_monday_zero_offset() as usize] = true;
    }
    let from = parse_clock(&a.from, false)?;
    let to = parse_clock(&a.to, true)?;
    if from == to {
        return Err(format!(
            "the window {}–{} is empty: from and to are the same time",
            a.from, a.to
        ));
    }
    Ok(Allow { days, from, to })
}

fn read_deny(d: &DenyWindow, tz: &TimeZone, tz_name: &str) -> Result<Deny, String> {
    let from = parse_local(&d.from)?;
    let to = parse_local(&d.to)?;
    if to <= from {
        return Err(format!(
            "the deny window {}–{} ends before it starts",
            d.from, d.to
        ));
    }
    let mut text = format!("inside the deny window {}–{} {tz_name}", d.from, d.to);
    if let Some(reason) = d.reason.as_deref().filter(|r| !r.is_empty()) {
        text.push_str(": ");
        text.push_str(reason);
    }
    Ok(Deny {
        from: resolve(tz, from),
        to: resolve(tz, to),
        text,
    })
}

/// `Mon–Thu 09:00–16:00, Fri 09:00–12:00 Europe/Berlin`.
pub fn describe_allow(allow: &[AllowWindow], tz_name: &str) -> String {
    let windows: Vec<String> = allow
        .iter()
        .map(|a| format!("{} {}–{}", describe_days(&a.days), a.from, a.to))
        .collect();
    format!("{} {tz_name}", windows.join(", "))
}

/// `Mon–Thu`, `Mon, Wed, Fri`, `Mon–Wed, Sat–Sun`, `daily`: consecutive days (Monday first)
/// collapse into ranges.
pub fn describe_days(days: &[String]) -> String {
    let mut set = [false; 7];
    for d in days {
        if let Some(i) = DAYS.iter().position(|n| n == d) {
            set[i] = true;
        }
    }
    if days.is_empty() || set.iter().all(|d| *d) {
        return "daily".into();
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < 7 {
        if !set[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i + 1 < 7 && set[i + 1] {
            i += 1;
        }
        parts.push(if start == i {
            DAYS[i].to_owned()
        } else {
            format!("{}–{}", DAYS[start], DAYS[i])
        });
        i += 1;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn allow(days: &[&str], from: &str, to: &str) -> AllowWindow {
        AllowWindow {
            days: days.iter().map(|d| (*d).to_owned()).collect(),
            from: from.into(),
            to: to.into(),
        }
    }

    fn berlin(allow: Vec<AllowWindow>, deny: Vec<DenyWindow>) -> Schedule {
        Schedule::new(&Windows {
            timezone: "Europe/Berlin".into(),
            allow,
            deny,
        })
        .unwrap()
    }

    fn at(t: OffsetDateTime) -> Timestamp {
        to_timestamp(t)
    }

    #[test]
    fn clocks_days_and_local_times_parse_strictly() {
        assert_eq!(parse_clock("09:30", false), Ok(570));
        assert_eq!(parse_clock("24:00", true), Ok(1440));
        assert!(parse_clock("24:00", false).is_err());
        for bad in ["9:00", "24:01", "12:60", "ab:cd", "12:00:00", ""] {
            assert!(parse_clock(bad, true).is_err(), "{bad}");
        }
        assert_eq!(parse_day("Sun"), Ok(Weekday::Sunday));
        assert!(parse_day("mon").unwrap_err().contains("Mon, Tue"));
        assert!(parse_local("2026-12-20T00:00").is_ok());
        assert!(parse_local("2026-02-30T00:00")
            .unwrap_err()
            .contains("2026-02-30 is not a date"));
        assert!(parse_local("2026-12-20 00:00").is_err());
        assert!(parse_local("2026-12-20T24:00").is_err());
        assert!(time_zone("Europe/Berln")
            .unwrap_err()
            .contains("Europe/Berln"));
    }

    #[test]
    fn days_collapse_into_ranges() {
        let d = |v: &[&str]| describe_days(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(d(&["Mon", "Tue", "Wed", "Thu"]), "Mon–Thu");
        assert_eq!(d(&["Mon", "Wed", "Fri"]), "Mon, Wed, Fri");
        assert_eq!(
            d(&["Thu", "Mon", "Tue", "Sat", "Sun"]),
            "Mon–Tue, Thu, Sat–Sun"
        );
        assert_eq!(d(&[]), "daily");
        assert_eq!(d(&DAYS), "daily");
    }

    #[test]
    fn nonexistent_local_times_move_to_the_transition_and_ambiguous_take_the_first() {
        let tz = time_zone("Europe/Berlin").unwrap();
        let spring = jiff::civil::date(2026, 3, 29).at(2, 30, 0, 0);
        assert_eq!(
            to_offset_date_time(resolve(&tz, spring)),
            datetime!(2026-03-29 03:00 +02:00)
        );
        let fall = jiff::civil::date(2026, 10, 25).at(2, 30, 0, 0);
        assert_eq!(
            to_offset_date_time(resolve(&tz, fall)),
            datetime!(2026-10-25 02:30 +02:00)
        );
        let ny = time_zone("America/New_York").unwrap();
        let spring = jiff::civil::date(2026, 3, 8).at(2, 15, 0, 0);
        assert_eq!(
            to_offset_date_time(resolve(&ny, spring)),
            datetime!(2026-03-08 03:00 -04:00)
        );
    }

    #[test]
    fn to_is_exclusive_and_a_midnight_span_belongs_to_its_start_day() {
        let s = berlin(
            vec![
                allow(&["Mon", "Tue", "Wed", "Thu"], "09:00", "16:00"),
                allow(&["Mon"], "22:00", "06:00"),
            ],
            vec![],
        );
        // 2026-12-07 is a Monday.
        assert!(s.allowed(at(datetime!(2026-12-07 09:00 +01:00))));
        assert!(s.allowed(at(datetime!(2026-12-07 15:59 +01:00))));
        assert!(!s.allowed(at(datetime!(2026-12-07 16:00 +01:00))));
        assert!(
            s.allowed(at(datetime!(2026-12-08 03:00 +01:00))),
            "Mon 22:00–06:00"
        );
        assert!(!s.allowed(at(datetime!(2026-12-08 06:00 +01:00))));
        assert!(
            !s.allowed(at(datetime!(2026-12-08 22:30 +01:00))),
            "Tue night"
        );
        assert!(
            !s.allowed(at(datetime!(2026-12-07 03:00 +01:00))),
            "Sun night"
        );
    }

    #[test]
    fn a_window_to_midnight_ends_at_the_next_day() {
        let s = berlin(vec![allow(&["Fri"], "20:00", "24:00")], vec![]);
        assert!(s.allowed(at(datetime!(2026-12-11 23:59 +01:00))));
        assert!(!s.allowed(at(datetime!(2026-12-12 00:00 +01:00))));
    }

    #[test]
    fn the_next_opening_skips_deny_windows() {
        let s = berlin(
            vec![allow(&["Mon", "Tue", "Wed", "Thu"], "09:00", "16:00")],
            vec![DenyWindow {
                from: "2026-12-20T00:00".into(),
                to: "2027-01-04T00:00".into(),
                reason: Some("year-end freeze".into()),
            }],
        );
        // Friday evening: Monday 09:00.
        let fri = datetime!(2026-12-04 18:00 +01:00);
        assert_eq!(
            s.opens_at(at(fri)).map(to_offset_date_time),
            Some(datetime!(2026-12-07 09:00 +01:00))
        );
        // In the freeze: the first allowed day after it (Mon 4 January 2027).
        let state = s.state(datetime!(2026-12-22 10:00 +01:00));
        assert_eq!(
            state.reasons,
            vec![
                "inside the deny window 2026-12-20T00:00–2027-01-04T00:00 Europe/Berlin: \
                  year-end freeze"
                    .to_owned()
            ]
        );
        assert_eq!(state.opens_at, Some(datetime!(2027-01-04 09:00 +01:00)));
    }

    #[test]
    fn windows_that_never_open_say_so() {
        let s = berlin(
            vec![allow(&["Mon"], "09:00", "10:00")],
            vec![DenyWindow {
                from: "2026-01-01T00:00".into(),
                to: "2030-01-01T00:00".into(),
                reason: None,
            }],
        );
        let state = s.state(datetime!(2026-12-07 09:30 +01:00));
        assert_eq!(state.opens_at, None);
        assert!(
            state.reasons[0].ends_with("do not open in the next 400 days"),
            "{:?}",
            state.reasons
        );
    }

    #[test]
    fn a_search_of_fifty_windows_that_never_open_stays_quick() {
        let allow: Vec<AllowWindow> = (0..50)
            .map(|i| allow(&[], &format!("{:02}:{:02}", i / 3, (i % 3) * 20), "23:59"))
            .collect();
        let deny = (0..50)
            .map(|i| DenyWindow {
                from: format!("2026-01-{:02}T00:00", i % 28 + 1),
                to: "2030-01-01T00:00".into(),
                reason: None,
            })
            .collect();
        let s = berlin(allow, deny);
        let started = std::time::Instant::now();
        let state = s.state(datetime!(2026-12-07 09:30 +01:00));
        assert_eq!(state.opens_at, None);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
