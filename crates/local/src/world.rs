//! The world the gates see in a local run: CloudWatch alarms and AWS Health, as the sim file
//! scripts them over simulated time.
//!
//! ```json
//! {"startAt": "2026-12-01T09:00:00+01:00",
//!  "alarms": {"prod-api-5xx": [{"atSeconds": 0, "state": "OK"},
//!                              {"atSeconds": 900, "state": "ALARM"},
//!                              {"atSeconds": 1500, "state": "OK"}]},
//!  "health": [{"service": "EC2", "region": "us-east-1", "fromSeconds": 100, "toSeconds": 2000}]}
//! ```
//!
//! An alarm exists from its first entry on (an alarm not listed, or before its first entry,
//! does not exist: a gate naming it holds); each entry is a state change at `atSeconds` after
//! the start (OK, ALARM or INSUFFICIENT_DATA; times strictly ascending, each a different state
//! from the one before). DescribeAlarms answers the state at the virtual clock's now with
//! `StateTransitionedTimestamp` at the last change; DescribeAlarmHistory the changes so far;
//! each change after the start is an EventBridge "CloudWatch Alarm State Change" event
//! ([`WorldScript::alarm_changes`]), which the runner delivers as the rule would.
//!
//! A health issue is open from `fromSeconds` (default 0) until `toSeconds` (exclusive; none:
//! to the end of the run), with `eventTypeCode` defaulting to `AWS_<SERVICE>_OPERATIONAL_ISSUE`.

use crate::clock::VirtualClock;
use crate::sim::{json_type, quote_path, seconds, ACCOUNT, REGION};
use async_trait::async_trait;
use rm_core::error::ValidationError;
use rm_core::ports::{
    AlarmState, AlarmTransition, AlarmValue, Alarms, HealthEvents, HealthIssue, PortResult,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// One entry of an alarm's script: from `at` on, the alarm is in `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmStep {
    pub at: Duration,
    pub state: AlarmValue,
}

/// An AWS Health issue open in `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedIssue {
    pub service: String,
    pub region: String,
    pub event_type_code: String,
    pub from: Duration,
    /// `None`: open to the end of the run.
    pub to: Option<Duration>,
}

impl ScriptedIssue {
    fn open_at(&self, t: Duration) -> bool {
        self.from <= t && self.to.is_none_or(|to| t < to)
    }
}

/// One scripted state change of an alarm, after the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmChange {
    pub name: String,
    pub at: Duration,
    /// INSUFFICIENT_DATA for the alarm's creation (a new CloudWatch alarm starts there).
    pub previous: AlarmValue,
    pub state: AlarmValue,
}

/// The sim file's `alarms` and `health`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorldScript {
    pub(crate) alarms: BTreeMap<String, Vec<AlarmStep>>,
    pub(crate) health: Vec<ScriptedIssue>,
}

impl WorldScript {
    /// Nothing scripted: no alarm exists, no issue is open.
    pub fn is_empty(&self) -> bool {
        self.alarms.is_empty() && self.health.is_empty()
    }

    /// The alarm's state at `t` after the start, and since when it has been in it; `None`: it
    /// does not exist (yet).
    pub fn alarm_at(&self, name: &str, t: Duration) -> Option<AlarmStep> {
        self.alarms
            .get(name)?
            .iter()
            .take_while(|step| step.at <= t)
            .last()
            .copied()
    }

    /// Every state change after the start (t > 0), in time order (then by name): the events
    /// EventBridge's rule delivers. An alarm's creation is a change from INSUFFICIENT_DATA,
    /// unless it is created there.
    pub fn alarm_changes(&self) -> Vec<AlarmChange> {
        let mut changes: Vec<AlarmChange> = self
            .alarms
            .iter()
            .flat_map(|(name, steps)| {
                let previous = std::iter::once(AlarmValue::InsufficientData)
                    .chain(steps.iter().map(|s| s.state));
                steps
                    .iter()
                    .zip(previous)
                    .filter(|(step, previous)| step.at > Duration::ZERO && step.state != *previous)
                    .map(|(step, previous)| AlarmChange {
                        name: name.clone(),
                        at: step.at,
                        previous,
                        state: step.state,
                    })
            })
            .collect();
        changes.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.name.cmp(&b.name)));
        changes
    }

    /// Whether anything the gates see changes after `t`: an alarm's entry or a health issue
    /// opening or closing. `false`: the world stays as it is now for good.
    pub fn changes_after(&self, t: Duration) -> bool {
        self.alarms.values().flatten().any(|s| s.at > t)
            || self
                .health
                .iter()
                .any(|i| i.from > t || i.to.is_some_and(|to| to > t))
    }
}

/// The scripted world at the virtual clock's now: the gates' [`Alarms`] and [`HealthEvents`].
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct SimWorld {
    script: Arc<WorldScript>,
    clock: VirtualClock,
}

impl SimWorld {
    pub fn new(script: WorldScript, clock: VirtualClock) -> Self {
        SimWorld {
            script: Arc::new(script),
            clock,
        }
    }

    pub fn script(&self) -> &WorldScript {
        &self.script
    }

    fn at(&self, after: Duration) -> OffsetDateTime {
        self.clock.start() + after
    }

    /// The scripted alarms that match: by exact name or by prefix.
    fn matching<'a>(
        &'a self,
        names: &'a [String],
        prefixes: &'a [String],
    ) -> impl Iterator<Item = (&'a String, &'a Vec<AlarmStep>)> + 'a {
        self.script.alarms.iter().filter(move |(name, _)| {
            names.iter().any(|n| n == *name) || prefixes.iter().any(|p| name.starts_with(p))
        })
    }

    /// The EventBridge "CloudWatch Alarm State Change" event of `change` (the shape of
    /// `events/cloudwatch-alarm-state-change.json`).
    pub fn alarm_event(&self, change: &AlarmChange) -> Value {
        let at = self.at(change.at);
        // The creation's "previous state" is as old as the change itself.
        let previous_since = self
            .script
            .alarms
            .get(&change.name)
            .and_then(|steps| steps.iter().take_while(|s| s.at < change.at).last())
            .map_or(change.at, |s| s.at);
        let reason = |state: AlarmValue, since: Duration| {
            format!(
                "the sim file's alarms: {state} from {} s after the start",
                since.as_secs()
            )
        };
        let arn = format!(
            "arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{}",
            change.name
        );
        json!({
            "version": "0",
            "id": format!("local-alarm-{}-{}", change.name, change.at.as_millis()),
            "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch",
            "account": ACCOUNT,
            "time": rfc3339(at),
            "region": REGION,
            "resources": [arn],
            "detail": {
                "alarmName": change.name,
                "configuration": {
                    "description": "scripted by the sim file's alarms",
                    "metrics": []
                },
                "previousState": {
                    "reason": reason(change.previous, previous_since),
                    "timestamp": cloudwatch_timestamp(self.at(previous_since)),
                    "value": change.previous.as_str()
                },
                "state": {
                    "reason": reason(change.state, change.at),
                    "timestamp": cloudwatch_timestamp(at),
                    "value": change.state.as_str()
                }
            }
        })
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// CloudWatch's own format in alarm events: `2026-12-01T08:15:00.000+0000`.
fn cloudwatch_timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[async_trait]
impl Alarms for SimWorld {
    /// The matching alarms that exist now, by name.
    async fn describe(&self, names: &[String], prefixes: &[String]) -> PortResult<Vec<AlarmState>> {
        let now = self.clock.elapsed();
        Ok(self
            .matching(names, prefixes)
            .filter_map(|(name, _)| {
                let step = self.script.alarm_at(name, now)?;
                Some(AlarmState {
                    name: name.clone(),
                    state: step.state,
                    actions_enabled: true,
                    reason: None,
                    transitioned_at: Some(self.at(step.at)),
                })
            })
            .collect())
    }

    /// The matching alarms' changes from `since` (inclusive) up to now, oldest first; an
    /// alarm's creation counts as its first change.
    async fn history(
        &self,
        names: &[String],
        prefixes: &[String],
        since: OffsetDateTime,
    ) -> PortResult<Vec<AlarmTransition>> {
        let now = self.clock.elapsed();
        let mut out: Vec<AlarmTransition> = self
            .matching(names, prefixes)
            .flat_map(|(name, steps)| {
                steps
                    .iter()
                    .filter(move |s| s.at <= now && self.at(s.at) >= since)
                    .map(move |s| AlarmTransition {
                        name: name.clone(),
                        at: self.at(s.at),
                        state: s.state,
                    })
            })
            .collect();
        out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.name.cmp(&b.name)));
        Ok(out)
    }
}

#[async_trait]
impl HealthEvents for SimWorld {
    /// The issues open now in these regions and services (empty: all).
    async fn open_issues(
        &self,
        regions: &[String],
        services: &[String],
    ) -> PortResult<Vec<HealthIssue>> {
        let now = self.clock.elapsed();
        Ok(self
            .script
            .health
            .iter()
            .enumerate()
            .filter(|(_, i)| i.open_at(now))
            .filter(|(_, i)| regions.is_empty() || regions.contains(&i.region))
            .filter(|(_, i)| services.is_empty() || services.contains(&i.service))
            .map(|(n, i)| HealthIssue {
                service: i.service.clone(),
                region: i.region.clone(),
                event_type_code: i.event_type_code.clone(),
                arn: format!(
                    "arn:aws:health:{}::event/{}/{}/sim-{n}",
                    i.region, i.service, i.event_type_code
                ),
            })
            .collect())
    }
}

const ALARM_STEP_FIELDS: &str = "atSeconds, state";
const HEALTH_FIELDS: &str = "service, region, eventTypeCode, fromSeconds, toSeconds";

/// `"alarms": {"NAME": [{"atSeconds": 0, "state": "OK"}, ...]}`.
pub(crate) fn parse_alarms(
    v: &Value,
    path: &str,
    errors: &mut Vec<ValidationError>,
) -> BTreeMap<String, Vec<AlarmStep>> {
    let mut alarms = BTreeMap::new();
    let Some(map) = v.as_object() else {
        errors.push(ValidationError::new(
            path,
            format!(
                "expected an object of alarm names to their states over time, like \
                 {{\"prod-api-5xx\": [{{\"atSeconds\": 0, \"state\": \"OK\"}}]}}, got {}",
                json_type(v)
            ),
        ));
        return alarms;
    };
    for (name, steps) in map {
        let path = quote_path(path, name);
        if name.is_empty() || name.len() > 255 {
            errors.push(ValidationError::new(
                &path,
                "an alarm name has 1 to 255 characters".to_owned(),
            ));
        }
        alarms.insert(name.clone(), alarm_steps(steps, &path, errors));
    }
    alarms
}

fn alarm_steps(v: &Value, path: &str, errors: &mut Vec<ValidationError>) -> Vec<AlarmStep> {
    let Some(items) = v.as_array().filter(|a| !a.is_empty()) else {
        errors.push(ValidationError::new(
            path,
            format!(
                "expected a non-empty list of states like [{{\"atSeconds\": 0, \"state\": \
                 \"OK\"}}, {{\"atSeconds\": 900, \"state\": \"ALARM\"}}], got {}",
                if v.is_array() {
                    "an empty list"
                } else {
                    json_type(v)
                }
            ),
        ));
        return Vec::new();
    };
    let mut steps: Vec<AlarmStep> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{path}[{i}]");
        let Some(map) = item.as_object() else {
            errors.push(ValidationError::new(
                &path,
                format!(
                    "expected an object with {ALARM_STEP_FIELDS}, got {}",
                    json_type(item)
                ),
            ));
            continue;
        };
        for key in map.keys() {
            if !["atSeconds", "state"].contains(&key.as_str()) {
                errors.push(ValidationError::new(
                    quote_path(&path, key),
                    format!("unknown field {key:?}; expected one of {ALARM_STEP_FIELDS}"),
                ));
            }
        }
        let at = required(map, &path, "atSeconds", errors)
            .and_then(|v| seconds(v, &quote_path(&path, "atSeconds"), errors));
        let state = required(map, &path, "state", errors).and_then(|v| {
            let parsed = v.as_str().map(str::parse::<AlarmValue>);
            match parsed {
                Some(Ok(state)) => Some(state),
                _ => {
                    errors.push(ValidationError::new(
                        quote_path(&path, "state"),
                        format!("expected one of OK, ALARM, INSUFFICIENT_DATA, got {v}"),
                    ));
                    None
                }
            }
        });
        let (Some(at), Some(state)) = (at, state) else {
            continue;
        };
        if let Some(last) = steps.last() {
            if at <= last.at {
                errors.push(ValidationError::new(
                    quote_path(&path, "atSeconds"),
                    format!(
                        "{} is not after the entry before ({}): atSeconds must ascend",
                        at.as_secs_f64(),
                        last.at.as_secs_f64()
                    ),
                ));
                continue;
            }
            if state == last.state {
                errors.push(ValidationError::new(
                    quote_path(&path, "state"),
                    format!(
                        "{state} again: the alarm is already {state}; each entry is a change \
                         of state"
                    ),
                ));
                continue;
            }
        }
        steps.push(AlarmStep { at, state });
    }
    steps
}

/// `"health": [{"service": "EC2", "region": "us-east-1", "fromSeconds": 100, "toSeconds": 2000}]`.
pub(crate) fn parse_health(
    v: &Value,
    path: &str,
    errors: &mut Vec<ValidationError>,
) -> Vec<ScriptedIssue> {
    let Some(items) = v.as_array() else {
        errors.push(ValidationError::new(
            path,
            format!(
                "expected a list of open issues like [{{\"service\": \"EC2\", \"region\": \
                 \"us-east-1\", \"fromSeconds\": 100, \"toSeconds\": 2000}}], got {}",
                json_type(v)
            ),
        ));
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| health_issue(item, &format!("{path}[{i}]"), errors))
        .collect()
}

fn health_issue(v: &Value, path: &str, errors: &mut Vec<ValidationError>) -> Option<ScriptedIssue> {
    let Some(map) = v.as_object() else {
        errors.push(ValidationError::new(
            path,
            format!(
                "expected an object with {HEALTH_FIELDS}, got {}",
                json_type(v)
            ),
        ));
        return None;
    };
    let before = errors.len();
    for key in map.keys() {
        if !HEALTH_FIELDS.split(", ").any(|k| k == key) {
            errors.push(ValidationError::new(
                quote_path(path, key),
                format!("unknown field {key:?}; expected one of {HEALTH_FIELDS}"),
            ));
        }
    }
    let text = |key: &str, errors: &mut Vec<ValidationError>| match map.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        None => None,
        Some(other) => {
            errors.push(ValidationError::new(
                quote_path(path, key),
                format!("expected a non-empty string, got {other}"),
            ));
            None
        }
    };
    let service = required(map, path, "service", errors).and(text("service", errors));
    let region = required(map, path, "region", errors).and(text("region", errors));
    let code = text("eventTypeCode", errors);
    let from = map.get("fromSeconds").map_or(Some(Duration::ZERO), |v| {
        seconds(v, &quote_path(path, "fromSeconds"), errors)
    });
    let to = map
        .get("toSeconds")
        .map(|v| seconds(v, &quote_path(path, "toSeconds"), errors));
    if let (Some(from), Some(Some(to))) = (from, to) {
        if to <= from {
            errors.push(ValidationError::new(
                quote_path(path, "toSeconds"),
                format!(
                    "{} is not after fromSeconds ({}): the issue is open in [fromSeconds, \
                     toSeconds)",
                    to.as_secs_f64(),
                    from.as_secs_f64()
                ),
            ));
        }
    }
    if errors.len() > before {
        return None;
    }
    let service = service?;
    Some(ScriptedIssue {
        event_type_code: code
            .unwrap_or_else(|| format!("AWS_{}_OPERATIONAL_ISSUE", service.to_uppercase())),
        service,
        region: region?,
        from: from?,
        to: to.flatten(),
    })
}

fn required<'a>(
    map: &'a serde_json::Map<String, Value>,
    path: &str,
    key: &str,
    errors: &mut Vec<ValidationError>,
) -> Option<&'a Value> {
    let v = map.get(key);
    if v.is_none() {
        errors.push(ValidationError::new(
            quote_path(path, key),
            "is required".to_owned(),
        ));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimFile;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-12-01 08:00:00 UTC);

    fn script(v: Value) -> WorldScript {
        SimFile::from_value(&v)
            .expect("a valid sim file")
            .world()
            .clone()
    }

    fn problems(v: Value) -> Vec<(String, String)> {
        SimFile::from_value(&v)
            .expect_err("an invalid sim file")
            .0
            .into_iter()
            .map(|e| (e.path, e.message))
            .collect()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn alarms_and_health_parse() {
        let w = script(json!({
            "alarms": {"prod-api-5xx": [{"atSeconds": 0, "state": "OK"},
                                        {"atSeconds": 900, "state": "ALARM"},
                                        {"atSeconds": 1500.5, "state": "OK"}],
                       "late": [{"atSeconds": 600, "state": "INSUFFICIENT_DATA"}]},
            "health": [{"service": "EC2", "region": "us-east-1", "fromSeconds": 100, "toSeconds": 2000},
                       {"service": "LAMBDA", "region": "eu-west-1", "eventTypeCode": "AWS_LAMBDA_API_ISSUE"}]
        }));
        assert_eq!(w.alarms["prod-api-5xx"].len(), 3);
        assert_eq!(
            w.alarms["prod-api-5xx"][2].at,
            Duration::from_millis(1_500_500)
        );
        assert_eq!(w.health[0].event_type_code, "AWS_EC2_OPERATIONAL_ISSUE");
        assert_eq!(w.health[0].to, Some(secs(2000)));
        assert_eq!((w.health[1].from, w.health[1].to), (Duration::ZERO, None));
        assert_eq!(w.health[1].event_type_code, "AWS_LAMBDA_API_ISSUE");
        assert!(!w.is_empty());
        assert!(SimFile::default().world().is_empty());
    }

    #[test]
    fn an_alarm_exists_from_its_first_entry() {
        let w = script(json!({"alarms": {
            "a": [{"atSeconds": 0, "state": "OK"}, {"atSeconds": 900, "state": "ALARM"}],
            "late": [{"atSeconds": 600, "state": "ALARM"}]}}));
        assert_eq!(w.alarm_at("a", secs(0)).unwrap().state, AlarmValue::Ok);
        assert_eq!(w.alarm_at("a", secs(899)).unwrap().state, AlarmValue::Ok);
        let at_900 = w.alarm_at("a", secs(900)).unwrap();
        assert_eq!((at_900.state, at_900.at), (AlarmValue::Alarm, secs(900)));
        assert_eq!(w.alarm_at("late", secs(599)), None, "not created yet");
        assert_eq!(
            w.alarm_at("late", secs(600)).unwrap().state,
            AlarmValue::Alarm
        );
        assert_eq!(w.alarm_at("unlisted", secs(600)), None);
    }

    #[test]
    fn alarm_changes_after_the_start_are_events() {
        let w = script(json!({"alarms": {
            "b": [{"atSeconds": 0, "state": "OK"}, {"atSeconds": 900, "state": "ALARM"},
                  {"atSeconds": 930, "state": "OK"}],
            "a": [{"atSeconds": 900, "state": "ALARM"}],
            "quiet": [{"atSeconds": 60, "state": "INSUFFICIENT_DATA"}]}}));
        let changes: Vec<(String, u64, AlarmValue, AlarmValue)> = w
            .alarm_changes()
            .into_iter()
            .map(|c| (c.name, c.at.as_secs(), c.previous, c.state))
            .collect();
        use AlarmValue::*;
        assert_eq!(
            changes,
            [
                ("a".to_owned(), 900, InsufficientData, Alarm),
                ("b".to_owned(), 900, Ok, Alarm),
                ("b".to_owned(), 930, Alarm, Ok),
            ]
        );
        assert!(w.changes_after(secs(929)));
        assert!(!w.changes_after(secs(930)));
        let h = script(json!({"health": [{"service": "EC2", "region": "us-east-1",
                                          "fromSeconds": 100, "toSeconds": 200}]}));
        assert!(h.changes_after(secs(150)));
        assert!(!h.changes_after(secs(200)));
    }

    #[test]
    fn alarm_and_health_problems_are_reported_at_their_paths() {
        let found = problems(json!({
            "alarms": {
                "a": [{"atSeconds": 0, "state": "OK"}, {"atSeconds": 0, "state": "ALARM"}],
                "b": [{"atSeconds": 0, "state": "OK"}, {"atSeconds": 60, "state": "OK"}],
                "c": [{"atSeconds": -1, "state": "ok", "reason": "x"}, {"state": "ALARM"}],
                "d": [],
                "e": {"atSeconds": 0}
            },
            "health": [{"service": "EC2", "fromSeconds": 100, "toSeconds": 100},
                       {"service": "", "region": "us-east-1", "until": 5},
                       "EC2"]
        }));
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "$.alarms.a[1].atSeconds",
                "$.alarms.b[1].state",
                "$.alarms.c[0].reason",
                "$.alarms.c[0].atSeconds",
                "$.alarms.c[0].state",
                "$.alarms.c[1].atSeconds",
                "$.alarms.d",
                "$.alarms.e",
                "$.health[0].region",
                "$.health[0].toSeconds",
                "$.health[1].until",
                "$.health[1].service",
                "$.health[2]",
            ],
            "{found:#?}"
        );
        assert!(found[0].1.contains("must ascend"), "{found:?}");
        assert!(found[1].1.contains("OK again"), "{found:?}");
        assert!(
            found[4].1.contains("OK, ALARM, INSUFFICIENT_DATA"),
            "{found:?}"
        );
        assert!(found[5].1.contains("is required"), "{found:?}");
        assert!(found[6].1.contains("an empty list"), "{found:?}");
        assert!(found[9].1.contains("[fromSeconds, toSeconds)"), "{found:?}");
        let found = problems(json!({"alarms": [], "health": {}}));
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            (found[0].0.as_str(), found[1].0.as_str()),
            ("$.alarms", "$.health")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn describe_and_history_follow_the_virtual_clock() {
        let clock = VirtualClock::new(T0);
        let world = SimWorld::new(
            script(json!({"alarms": {
                "prod-api-5xx": [{"atSeconds": 0, "state": "OK"},
                                 {"atSeconds": 900, "state": "ALARM"},
                                 {"atSeconds": 930, "state": "OK"}],
                "prod-db": [{"atSeconds": 0, "state": "INSUFFICIENT_DATA"}],
                "staging-api": [{"atSeconds": 0, "state": "ALARM"}],
                "late": [{"atSeconds": 1200, "state": "OK"}]}})),
            clock,
        );
        let prefix = names(&["prod-"]);
        let got = world.describe(&[], &prefix).await.unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].name.as_str(), got[0].state, got[0].transitioned_at),
            ("prod-api-5xx", AlarmValue::Ok, Some(T0))
        );
        assert!(got[0].actions_enabled);
        assert_eq!(got[1].state, AlarmValue::InsufficientData);

        tokio::time::sleep(secs(915)).await;
        let got = world
            .describe(&names(&["prod-api-5xx", "late"]), &[])
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "late does not exist yet: {got:?}");
        assert_eq!(got[0].state, AlarmValue::Alarm);
        assert_eq!(
            got[0].transitioned_at,
            Some(T0 + time::Duration::seconds(900))
        );

        tokio::time::sleep(secs(60)).await;
        let got = world.describe(&[], &prefix).await.unwrap();
        assert_eq!(got[0].state, AlarmValue::Ok, "cleared at 930");
        // A flap a once-a-minute look misses: the history since 600 s has it, oldest first.
        let flap = world
            .history(&[], &prefix, T0 + time::Duration::seconds(600))
            .await
            .unwrap();
        let flap: Vec<(i64, AlarmValue)> = flap
            .iter()
            .map(|t| ((t.at - T0).whole_seconds(), t.state))
            .collect();
        assert_eq!(flap, [(900, AlarmValue::Alarm), (930, AlarmValue::Ok)]);
        let all = world
            .history(&names(&["late", "staging-api"]), &[], T0)
            .await
            .unwrap();
        assert_eq!(all.len(), 1, "the future is not history: {all:?}");
        assert_eq!(all[0].name, "staging-api");
    }

    #[tokio::test(start_paused = true)]
    async fn health_issues_are_open_from_their_start_to_their_end() {
        let world = SimWorld::new(
            script(json!({"health": [
                {"service": "EC2", "region": "us-east-1", "fromSeconds": 100, "toSeconds": 2000},
                {"service": "S3", "region": "eu-west-1"}]})),
            VirtualClock::new(T0),
        );
        let all = world.open_issues(&[], &[]).await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].service, "S3");
        tokio::time::sleep(secs(100)).await;
        assert_eq!(world.open_issues(&[], &[]).await.unwrap().len(), 2);
        let ec2 = world
            .open_issues(&names(&["us-east-1"]), &names(&["EC2"]))
            .await
            .unwrap();
        assert_eq!(ec2.len(), 1);
        assert_eq!(ec2[0].event_type_code, "AWS_EC2_OPERATIONAL_ISSUE");
        assert!(ec2[0]
            .arn
            .starts_with("arn:aws:health:us-east-1::event/EC2/"));
        assert!(world
            .open_issues(&names(&["us-west-2"]), &[])
            .await
            .unwrap()
            .is_empty());
        tokio::time::sleep(secs(1900)).await;
        let left = world.open_issues(&[], &names(&["EC2"])).await.unwrap();
        assert!(left.is_empty(), "closed at 2000 (exclusive): {left:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_alarm_change_is_cloudwatchs_event() {
        let w = script(json!({"alarms": {"prod-api-5xx": [
            {"atSeconds": 0, "state": "OK"}, {"atSeconds": 900, "state": "ALARM"}]}}));
        let world = SimWorld::new(w.clone(), VirtualClock::new(T0));
        let event = world.alarm_event(&w.alarm_changes()[0]);
        let sample: Value = serde_json::from_str(include_str!(
            "../../../events/cloudwatch-alarm-state-change.json"
        ))
        .unwrap();
        fn shape(v: &Value) -> Value {
            match v {
                Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), shape(v))).collect(),
                Value::Array(_) => json!("array"),
                _ => json!(crate::sim::json_type(v)),
            }
        }
        assert_eq!(shape(&event), shape(&sample));
        assert_eq!(event["detail"]["state"]["value"], "ALARM");
        assert_eq!(event["detail"]["previousState"]["value"], "OK");
        assert_eq!(
            event["detail"]["state"]["timestamp"],
            "2026-12-01T08:15:00.000+0000"
        );
        assert_eq!(
            event["detail"]["previousState"]["timestamp"],
            "2026-12-01T08:00:00.000+0000"
        );
        assert_eq!(event["time"], "2026-12-01T08:15:00Z");
        assert_eq!(
            event["resources"][0],
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:prod-api-5xx"
        );
    }
}
