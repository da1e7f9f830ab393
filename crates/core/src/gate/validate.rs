//! The gate's settings, checked: every problem at once, each with its path (`$.gates.windows
//! .allow[0].from` in a manifest, `$.waitMinutes` in the health-gate action's UserParameters).
//!
//! Two passes. [`GateSettings::from_json`] walks the JSON for shapes (unknown fields, types,
//! required fields, fields that belong to the other place) and drops what is malformed, so
//! the rest still reads; [`GateSettings::validate`] checks the values (time zones, days,
//! times, ranges) of settings however they were made.

use super::windows::{parse_clock, parse_day, parse_local, time_zone};
use super::GateSettings;
use crate::error::ValidationError;
use serde_json::{Map, Value};

/// Where the settings are used: between waves (the manifest's `gates`) or inside a pipeline
/// (the health-gate action's UserParameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateContext {
    Manifest,
    Action,
}

/// Between waves: a wave waits a day for a closed gate unless `maxWaitMinutes` says otherwise.
pub const DEFAULT_GATE_MAX_WAIT_MINUTES: u32 = 24 * 60;
/// At most a week.
pub const MAX_GATE_MAX_WAIT_MINUTES: u32 = 7 * 24 * 60;
/// A bake of at most a day.
pub const MAX_BAKE_MINUTES: u32 = 24 * 60;
/// The health-gate action holds its job at most 23 hours: CodePipeline fails a Lambda invoke
/// action after 24 hours
/// (<https://docs.aws.amazon.com/codepipeline/latest/userguide/limits.html>), and a
/// re-invocation comes on CodePipeline's own schedule, so an hour is left for the last one.
pub const MAX_WAIT_MINUTES: u32 = 23 * 60;
/// Allow and deny windows, each.
pub const MAX_WINDOWS: usize = 50;
/// CloudWatch's limit on an alarm's name.
pub const MAX_ALARM_NAME_CHARS: usize = 255;

const MANIFEST_FIELDS: [&str; 8] = [
    "alarmNames",
    "alarmPrefixes",
    "insufficientData",
    "health",
    "failOpen",
    "windows",
    "bakeMinutes",
    "maxWaitMinutes",
];
const ACTION_FIELDS: [&str; 9] = [
    "alarmNames",
    "alarmPrefixes",
    "insufficientData",
    "health",
    "failOpen",
    "windows",
    "bakeMinutes",
    "waitMinutes",
    "executionId",
];

/// An example of UserParameters, for the messages that reject them.
pub const USER_PARAMETERS_EXAMPLE: &str = "{\"alarmNames\": [\"api-5xx\"], \"alarmPrefixes\": \
     [\"prod-\"], \"insufficientData\": \"fail\", \"health\": {\"enabled\": true, \"regions\": \
     [\"us-east-1\"], \"services\": [\"EC2\"]}, \"windows\": {\"timezone\": \"Europe/Berlin\", \
     \"allow\": [{\"days\": [\"Mon\", \"Tue\", \"Wed\", \"Thu\"], \"from\": \"09:00\", \"to\": \
     \"16:00\"}]}, \"bakeMinutes\": 15, \"waitMinutes\": 60, \"executionId\": \
     \"#{codepipeline.PipelineExecutionId}\", \"failOpen\": false}";

fn belongs_elsewhere(field: &str, context: GateContext) -> Option<String> {
    match (context, field) {
        (GateContext::Manifest, "waitMinutes") => Some(
            "belongs to the health-gate action's UserParameters (how long the action holds its \
             job), not to the manifest's gates; between waves a closed gate waits up to \
             maxWaitMinutes"
                .into(),
        ),
        (GateContext::Manifest, "executionId") => Some(
            "belongs to the health-gate action's UserParameters (\"executionId\": \
             \"#{codepipeline.PipelineExecutionId}\"), not to the manifest's gates"
                .into(),
        ),
        (GateContext::Action, "maxWaitMinutes") => Some(format!(
            "belongs to the manifest's gates (how long a wave waits); in the health-gate \
             action's UserParameters, waitMinutes (0 to {MAX_WAIT_MINUTES}) says how long a \
             closed gate holds the job"
        )),
        _ => None,
    }
}

/// The allowed range of an integer field.
fn range(field: &str, context: GateContext) -> (u32, u32) {
    match (field, context) {
        ("bakeMinutes", _) => (0, MAX_BAKE_MINUTES),
        ("maxWaitMinutes", _) => (1, MAX_GATE_MAX_WAIT_MINUTES),
        _ => (0, MAX_WAIT_MINUTES),
    }
}

fn range_message(field: &str, context: GateContext, found: &str) -> String {
    let (min, max) = range(field, context);
    let why = match field {
        "waitMinutes" => " (CodePipeline fails a Lambda invoke action after 24 hours)",
        "maxWaitMinutes" => " (a week)",
        "bakeMinutes" => " (a day)",
        _ => "",
    };
    format!("expected an integer from {min} to {max}{why}, found {found}")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

/// The path of a member: `$.gates.alarmNames`, or `$.gates['odd key']`.
fn member(path: &str, key: &str) -> String {
    crate::manifest::member_path(path, key)
}

/// The walk over the settings' JSON: every problem, with its path.
struct Walk {
    errors: Vec<ValidationError>,
    context: GateContext,
}

impl Walk {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ValidationError::new(path, message));
    }

    /// The object's members, reporting those not in `allowed`.
    fn object<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        what: &str,
        allowed: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Some(obj) = v.as_object() else {
            self.err(path, format!("expected {what}, found {}", type_name(v)));
            return None;
        };
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                self.err(
                    member(path, key),
                    format!("unknown field; allowed fields are {}", allowed.join(", ")),
                );
            }
        }
        Some(obj)
    }

    fn string<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v str> {
        let s = v.as_str();
        if s.is_none() {
            self.err(path, format!("expected a string, found {}", type_name(v)));
        }
        s
    }

    fn boolean(&mut self, v: &Value, path: &str) {
        if !v.is_boolean() {
            self.err(
                path,
                format!("expected true or false, found {}", compact(v)),
            );
        }
    }

    /// A list of strings, each checked by `check` (its error message).
    fn strings(
        &mut self,
        v: &Value,
        path: &str,
        what: &str,
        mut check: impl FnMut(&str) -> Option<String>,
    ) {
        let Some(items) = v.as_array() else {
            self.err(
                path,
                format!("expected a list of {what}, found {}", type_name(v)),
            );
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            if let Some(s) = self.string(item, &ipath) {
                if let Some(message) = check(s) {
                    self.err(ipath, message);
                }
            }
        }
    }

    fn integer(&mut self, v: &Value, path: &str, field: &str) {
        let (min, max) = range(field, self.context);
        match v.as_u64() {
            Some(n) if n >= u64::from(min) && n <= u64::from(max) => {}
            _ => self.err(path, range_message(field, self.context, &compact(v))),
        }
    }

    fn settings(&mut self, v: &Value, path: &str) {
        let allowed: &[&str] = match self.context {
            GateContext::Manifest => &MANIFEST_FIELDS,
            GateContext::Action => &ACTION_FIELDS,
        };
        let Some(obj) = v.as_object() else {
            self.err(
                path,
                format!(
                    "expected an object of gate settings ({}), found {}",
                    allowed.join(", "),
                    type_name(v)
                ),
            );
            return;
        };
        for (key, value) in obj {
            let at = member(path, key);
            if let Some(message) = belongs_elsewhere(key, self.context) {
                self.err(at, message);
                continue;
            }
            match key.as_str() {
                "alarmNames" => self.strings(value, &at, "alarm names", |s| {
                    alarm_name_problem(s, "must not be empty: name a CloudWatch alarm")
                }),
                "alarmPrefixes" => self.strings(value, &at, "alarm name prefixes", |s| {
                    alarm_name_problem(
                        s,
                        "must not be empty: a prefix selects the alarms whose names start with it",
                    )
                }),
                "insufficientData" => {
                    if !matches!(value.as_str(), Some("fail" | "pass")) {
                        self.err(
                            at,
                            format!("expected \"fail\" or \"pass\", found {}", compact(value)),
                        );
                    }
                }
                "health" => self.health(value, &at),
                "failOpen" => self.boolean(value, &at),
                "windows" => self.windows(value, &at),
                "bakeMinutes" | "maxWaitMinutes" | "waitMinutes" => {
                    self.integer(value, &at, key);
                }
                "executionId" => {
                    if self.string(value, &at) == Some("") {
                        self.err(
                            at,
                            "must not be empty: pass \"#{codepipeline.PipelineExecutionId}\"",
                        );
                    }
                }
                _ => self.err(
                    at,
                    format!("unknown field; allowed fields are {}", allowed.join(", ")),
                ),
            }
        }
    }

    fn health(&mut self, v: &Value, path: &str) {
        let Some(obj) = self.object(
            v,
            path,
            "an object {\"enabled\", \"regions\", \"services\"}",
            &["enabled", "regions", "services"],
        ) else {
            return;
        };
        if let Some(e) = obj.get("enabled") {
            self.boolean(e, &member(path, "enabled"));
        }
        for (key, what) in [("regions", "regions"), ("services", "service names")] {
            if let Some(list) = obj.get(key) {
                self.strings(list, &member(path, key), what, |s| {
                    s.is_empty().then(|| "must not be empty".to_owned())
                });
            }
        }
    }

    fn windows(&mut self, v: &Value, path: &str) {
        let Some(obj) = self.object(
            v,
            path,
            "an object {\"timezone\", \"allow\", \"deny\"}",
            &["timezone", "allow", "deny"],
        ) else {
            return;
        };
        let tz_path = member(path, "timezone");
        match obj.get("timezone") {
            None => self.err(
                tz_path,
                "is required: the IANA time zone of the windows, such as \"Europe/Berlin\"",
            ),
            Some(tz) => {
                if let Some(Err(m)) = self.string(tz, &tz_path).map(time_zone) {
                    self.err(tz_path, m);
                }
            }
        }
        for key in ["allow", "deny"] {
            let Some(list) = obj.get(key) else {
                continue;
            };
            let lpath = member(path, key);
            let shape = if key == "allow" {
                "{\"days\", \"from\", \"to\"}"
            } else {
                "{\"from\", \"to\", \"reason\"}"
            };
            let Some(items) = list.as_array() else {
                self.err(
                    lpath,
                    format!(
                        "expected a list of windows {shape}, found {}",
                        type_name(list)
                    ),
                );
                continue;
            };
            if items.len() > MAX_WINDOWS {
                self.err(
                    lpath.clone(),
                    format!("has {} windows; at most {MAX_WINDOWS}", items.len()),
                );
            }
            for (i, item) in items.iter().enumerate() {
                let ipath = format!("{lpath}[{i}]");
                if key == "allow" {
                    self.allow(item, &ipath, shape);
                } else {
                    self.deny(item, &ipath, shape);
                }
            }
        }
    }

    /// A required string member: reported when missing or not a string.
    fn required<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<&'v str> {
        match obj.get(key) {
            None => {
                self.err(member(path, key), "is required");
                None
            }
            Some(v) => self.string(v, &member(path, key)),
        }
    }

    fn allow(&mut self, item: &Value, path: &str, shape: &str) {
        let Some(w) = self.object(
            item,
            path,
            &format!("a window {shape}"),
            &["days", "from", "to"],
        ) else {
            return;
        };
        if let Some(days) = w.get("days") {
            let mut seen = Vec::new();
            self.strings(
                days,
                &member(path, "days"),
                "days (Mon … Sun)",
                |day| match parse_day(day) {
                    Err(m) => Some(m),
                    Ok(d) if seen.contains(&d) => Some(format!("{day} is listed twice")),
                    Ok(d) => {
                        seen.push(d);
                        None
                    }
                },
            );
        }
        let from = self.required(w, path, "from").and_then(|s| {
            parse_clock(s, false)
                .map_err(|m| self.err(member(path, "from"), m))
                .ok()
        });
        let to = self.required(w, path, "to").and_then(|s| {
            parse_clock(s, true)
                .map_err(|m| self.err(member(path, "to"), m))
                .ok()
        });
        if from.is_some() && from == to {
            let text = w.get("from").and_then(Value::as_str).unwrap_or_default();
            self.err(
                member(path, "to"),
                format!(
                    "is the same as from ({text}): the window would be empty (to is exclusive); \
                     for a whole day write \"from\": \"00:00\", \"to\": \"24:00\""
                ),
            );
        }
    }

    fn deny(&mut self, item: &Value, path: &str, shape: &str) {
        let Some(w) = self.object(
            item,
            path,
            &format!("a window {shape}"),
            &["from", "to", "reason"],
        ) else {
            return;
        };
        let from = self.required(w, path, "from").and_then(|s| {
            parse_local(s)
                .map_err(|m| self.err(member(path, "from"), m))
                .ok()
        });
        let to = self.required(w, path, "to").and_then(|s| {
            parse_local(s)
                .map_err(|m| self.err(member(path, "to"), m))
                .ok()
        });
        if let (Some(from), Some(to)) = (from, to) {
            if to <= from {
                let text = w.get("from").and_then(Value::as_str).unwrap_or_default();
                self.err(
                    member(path, "to"),
                    format!("must be after from ({text}); to is exclusive"),
                );
            }
        }
        if let Some(reason) = w.get("reason") {
            self.string(reason, &member(path, "reason"));
        }
    }
}

fn alarm_name_problem(s: &str, empty: &str) -> Option<String> {
    if s.is_empty() {
        Some(empty.to_owned())
    } else if s.chars().count() > MAX_ALARM_NAME_CHARS {
        Some(format!(
            "is too long; an alarm name has at most {MAX_ALARM_NAME_CHARS} characters"
        ))
    } else {
        None
    }
}

/// Every problem of settings given as JSON, with paths from `path`.
fn problems(value: &Value, path: &str, context: GateContext) -> Vec<ValidationError> {
    let mut walk = Walk {
        errors: Vec::new(),
        context,
    };
    walk.settings(value, path);
    walk.errors
}

impl GateSettings {
    /// Reads settings from JSON (the manifest's `gates` at `path` = `$.gates`, or parsed
    /// UserParameters at `$`), reporting every problem with its path.
    pub fn from_json(
        value: &Value,
        path: &str,
        context: GateContext,
    ) -> Result<GateSettings, Vec<ValidationError>> {
        let errors = problems(value, path, context);
        if !errors.is_empty() {
            return Err(errors);
        }
        // The walk checked every member's shape: this reads.
        serde_json::from_value(value.clone())
            .map_err(|e| vec![ValidationError::new(path, e.to_string())])
    }

    /// The health-gate action's UserParameters: empty means "no checks configured".
    pub fn from_user_parameters(
        user_parameters: Option<&str>,
    ) -> Result<GateSettings, Vec<ValidationError>> {
        match user_parameters.map(str::trim) {
            None | Some("") => Ok(GateSettings::default()),
            Some(text) => {
                let value: Value = serde_json::from_str(text)
                    .map_err(|e| vec![ValidationError::new("$", format!("is not JSON: {e}"))])?;
                GateSettings::from_json(&value, "$", GateContext::Action)
            }
        }
    }

    /// Checks settings however they were made (the rules of [`GateSettings::from_json`]):
    /// time zone, days, times, date-times, names, ranges, and the fields that belong to the
    /// other context (a default, such as `waitMinutes` 0, is not written, so not reported).
    /// Paths start at `path`.
    pub fn validate(&self, path: &str, context: GateContext) -> Vec<ValidationError> {
        match serde_json::to_value(self) {
            Ok(value) => problems(&value, path, context),
            Err(e) => vec![ValidationError::new(path, e.to_string())],
        }
    }
}
