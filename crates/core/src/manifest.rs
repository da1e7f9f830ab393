//! The release manifest: parsing, validation and normalization.
//!
//! [`Manifest::parse`] reports every problem at once, each with a JSONPath such as
//! `$.pipelines[2].name`. The seed's format (`{"releaseId": 5.15, "pipelines": ["a"]}`) is
//! valid, and a numeric release id is kept exactly as written (`5.10` stays `"5.10"`).

use crate::error::{Rejection, ValidationError};
use crate::release::ReleaseId;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;
pub const MAX_PIPELINES: usize = 500;
pub const MAX_VARIABLES: usize = 50;
pub const MAX_SOURCE_REVISIONS: usize = 50;
/// The inline Map state's concurrency limit.
pub const MAX_CONCURRENCY: u32 = 40;
pub const DEFAULT_MAX_CONCURRENCY: u32 = 10;
pub const DEFAULT_TIMEOUT_MINUTES: u32 = 120;
/// Seven days: CodePipeline's longest-lived action (a manual approval) times out then.
pub const MAX_TIMEOUT_MINUTES: u32 = 7 * 24 * 60;
pub const MAX_WAVE: u32 = 500;
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
pub const REVISION_TYPES: [&str; 4] = [
    "COMMIT_ID",
    "IMAGE_DIGEST",
    "S3_OBJECT_VERSION_ID",
    "S3_OBJECT_KEY",
];

/// What to do with the other pipelines when one fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Stop the running siblings (the default).
    #[default]
    Stop,
    /// Let them finish; start no later wave.
    Continue,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Continue => "continue",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "stop" => Some(Self::Stop),
            "continue" => Some(Self::Continue),
            _ => None,
        }
    }
}

/// A source revision override for StartPipelineExecution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRevision {
    pub action_name: String,
    pub revision_type: String,
    pub revision_value: String,
}

/// One pipeline of a release, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    pub name: String,
    pub wave: u32,
    /// Pipeline-level variables for StartPipelineExecution, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_revisions: Vec<SourceRevision>,
    pub timeout_minutes: u32,
}

impl PipelineSpec {
    pub fn new(name: impl Into<String>, wave: u32) -> Self {
        Self {
            name: name.into(),
            wave,
            variables: BTreeMap::new(),
            source_revisions: Vec::new(),
            timeout_minutes: DEFAULT_TIMEOUT_MINUTES,
        }
    }

    pub fn timeout_seconds(&self) -> u64 {
        u64::from(self.timeout_minutes) * 60
    }
}

/// A validated, normalized manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub release_id: ReleaseId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub pipelines: Vec<PipelineSpec>,
    pub max_concurrency: u32,
    pub on_failure: OnFailure,
}

/// A wave: the pipelines started together, in manifest order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wave<'a> {
    pub number: u32,
    pub pipelines: Vec<&'a PipelineSpec>,
}

impl Manifest {
    /// Parses and validates a manifest file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, Rejection> {
        let reject = |m: String| Rejection(vec![ValidationError::new("$", m)]);
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(reject(format!(
                "the manifest is {} bytes; at most {} bytes (256 KiB) are allowed",
                bytes.len(),
                MAX_MANIFEST_BYTES
            )));
        }
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(reject(
                "the manifest is empty; expected a JSON object with releaseId and pipelines".into(),
            ));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| reject(format!("the manifest is not UTF-8 text: {e}")))?;
        let value: Value = serde_json::from_str(text)
            .map_err(|e| reject(format!("the manifest is not valid JSON: {e}")))?;
        let raw_release_id = raw_release_id(text);
        Self::from_value(&value, raw_release_id.as_deref())
    }

    /// Validates an already-parsed manifest (an inline state machine input, an API body).
    /// `raw_release_id` is the release id's JSON text when known, so a number keeps its
    /// digits exactly as written.
    pub fn from_value(value: &Value, raw_release_id: Option<&str>) -> Result<Manifest, Rejection> {
        let mut v = Validator::default();
        let manifest = v.manifest(value, raw_release_id);
        match manifest {
            Some(m) if v.errors.is_empty() => Ok(m),
            _ => Err(Rejection(v.errors)),
        }
    }

    /// The waves in ascending order, each with its pipelines in manifest order.
    pub fn waves(&self) -> Vec<Wave<'_>> {
        let mut numbers: Vec<u32> = self.pipelines.iter().map(|p| p.wave).collect();
        numbers.sort_unstable();
        numbers.dedup();
        numbers
            .into_iter()
            .map(|number| Wave {
                number,
                pipelines: self.pipelines.iter().filter(|p| p.wave == number).collect(),
            })
            .collect()
    }

    pub fn pipeline(&self, name: &str) -> Option<&PipelineSpec> {
        self.pipelines.iter().find(|p| p.name == name)
    }
}

/// The release id's JSON text, read without converting numbers (so `5.10` is not `5.1`).
/// Of repeated keys the last counts, as in [`Value`].
fn raw_release_id(text: &str) -> Option<String> {
    let fields: HashMap<String, &RawValue> = serde_json::from_str(text).ok()?;
    fields.get("releaseId").map(|r| r.get().to_owned())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks a pipeline name against CodePipeline's rule `[A-Za-z0-9.@_-]{1,100}`.
pub fn check_pipeline_name(name: &str) -> Result<(), String> {
    check_aws_name(name, 100, "a pipeline name")
}

fn check_aws_name(name: &str, max: usize, what: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    let len = name.chars().count();
    if len > max {
        return Err(format!(
            "is {len} characters long; {what} has at most {max}"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '_' | '-')))
    {
        return Err(format!(
            "{name:?} contains {bad:?}; {what} may only use letters, digits, '.', '@', '_' and '-'"
        ));
    }
    Ok(())
}

#[derive(Default)]
struct Validator {
    errors: Vec<ValidationError>,
}

impl Validator {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ValidationError::new(path, message));
    }

    fn unknown_fields(&mut self, obj: &Map<String, Value>, path: &str, allowed: &[&str]) {
        for key in obj.keys().filter(|k| !allowed.contains(&k.as_str())) {
            self.err(
                member(path, key),
                format!("unknown field; allowed fields are {}", allowed.join(", ")),
            );
        }
    }

    fn manifest(&mut self, value: &Value, raw_release_id: Option<&str>) -> Option<Manifest> {
        let Some(obj) = value.as_object() else {
            self.err(
                "$",
                format!(
                    "expected a JSON object with releaseId and pipelines, found {}",
                    json_type(value)
                ),
            );
            return None;
        };
        self.unknown_fields(
            obj,
            "$",
            &[
                "releaseId",
                "description",
                "pipelines",
                "maxConcurrency",
                "onFailure",
            ],
        );
        let release_id = self.release_id(obj.get("releaseId"), raw_release_id);
        let description = match obj.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.chars().count() > MAX_DESCRIPTION_CHARS => {
                self.err(
                    "$.description",
                    format!("is too long; at most {MAX_DESCRIPTION_CHARS} characters"),
                );
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.err(
                    "$.description",
                    format!("expected a string, found {}", json_type(other)),
                );
                None
            }
        };
        let max_concurrency = match obj.get("maxConcurrency") {
            None => Some(DEFAULT_MAX_CONCURRENCY),
            Some(v) => self.integer(v, "$.maxConcurrency", 1, MAX_CONCURRENCY),
        };
        let on_failure = match obj.get("onFailure") {
            None => Some(OnFailure::default()),
            Some(Value::String(s)) if OnFailure::parse(s).is_some() => OnFailure::parse(s),
            Some(v) => {
                self.err(
                    "$.onFailure",
                    format!("expected \"stop\" or \"continue\", found {}", compact(v)),
                );
                None
            }
        };
        let pipelines = self.pipelines(obj.get("pipelines"));
        Some(Manifest {
            release_id: release_id?,
            description,
            pipelines: pipelines?,
            max_concurrency: max_concurrency?,
            on_failure: on_failure?,
        })
    }

    fn release_id(&mut self, value: Option<&Value>, raw: Option<&str>) -> Option<ReleaseId> {
        const PATH: &str = "$.releaseId";
        let text = match value {
            None => {
                self.err(PATH, "is required: a string or number naming the release");
                return None;
            }
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => match raw {
                Some(r) if r.parse::<f64>().is_ok() => r.to_owned(),
                _ => n.to_string(),
            },
            Some(other) => {
                self.err(
                    PATH,
                    format!("expected a string or a number, found {}", json_type(other)),
                );
                return None;
            }
        };
        ReleaseId::parse(&text).map_err(|m| self.err(PATH, m)).ok()
    }

    fn integer(&mut self, v: &Value, path: &str, min: u32, max: u32) -> Option<u32> {
        match v.as_u64() {
            Some(n) if n >= u64::from(min) && n <= u64::from(max) => Some(n as u32),
            _ => {
                self.err(
                    path,
                    format!(
                        "expected an integer from {min} to {max}, found {}",
                        compact(v)
                    ),
                );
                None
            }
        }
    }

    fn pipelines(&mut self, value: Option<&Value>) -> Option<Vec<PipelineSpec>> {
        const PATH: &str = "$.pipelines";
        let items = match value {
            None => {
                self.err(
                    PATH,
                    "is required: a non-empty list of pipeline names or objects",
                );
                return None;
            }
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.err(
                    PATH,
                    format!("expected a list of pipelines, found {}", json_type(other)),
                );
                return None;
            }
        };
        if items.is_empty() {
            self.err(PATH, "must name at least one pipeline");
            return None;
        }
        if items.len() > MAX_PIPELINES {
            self.err(
                PATH,
                format!(
                    "names {} pipelines; a release may have at most {MAX_PIPELINES}",
                    items.len()
                ),
            );
            return None;
        }
        let before = self.errors.len();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut specs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{PATH}[{i}]");
            if let Some(spec) = self.pipeline(item, &path) {
                specs.push(spec);
            }
            let name = match item {
                Value::String(s) => Some(s.as_str()),
                Value::Object(o) => o.get("name").and_then(Value::as_str),
                _ => None,
            };
            if let Some(name) = name.filter(|n| !n.is_empty()) {
                if !seen.insert(name) {
                    self.err(
                        format!("{path}.name"),
                        format!("duplicate pipeline {name:?}; each pipeline may appear once"),
                    );
                }
            }
        }
        (self.errors.len() == before).then_some(specs)
    }

    fn pipeline(&mut self, item: &Value, path: &str) -> Option<PipelineSpec> {
        let obj = match item {
            Value::String(name) => {
                return match check_pipeline_name(name) {
                    Ok(()) => Some(PipelineSpec::new(name.clone(), 1)),
                    Err(m) => {
                        self.err(format!("{path}.name"), m);
                        None
                    }
                };
            }
            Value::Object(obj) => obj,
            other => {
                self.err(
                    path,
                    format!(
                        "expected a pipeline name or an object with \"name\", found {}",
                        json_type(other)
                    ),
                );
                return None;
            }
        };
        let before = self.errors.len();
        self.unknown_fields(
            obj,
            path,
            &[
                "name",
                "wave",
                "variables",
                "sourceRevisions",
                "timeoutMinutes",
            ],
        );
        let name = match obj.get("name") {
            None => {
                self.err(format!("{path}.name"), "is required");
                None
            }
            Some(Value::String(n)) => match check_pipeline_name(n) {
                Ok(()) => Some(n.clone()),
                Err(m) => {
                    self.err(format!("{path}.name"), m);
                    None
                }
            },
            Some(other) => {
                self.err(
                    format!("{path}.name"),
                    format!("expected a string, found {}", json_type(other)),
                );
                None
            }
        };
        let wave = match obj.get("wave") {
            None => Some(1),
            Some(v) => self.integer(v, &format!("{path}.wave"), 1, MAX_WAVE),
        };
        let timeout_minutes = match obj.get("timeoutMinutes") {
            None => Some(DEFAULT_TIMEOUT_MINUTES),
            Some(v) => self.integer(v, &format!("{path}.timeoutMinutes"), 1, MAX_TIMEOUT_MINUTES),
        };
        let variables = self.variables(obj.get("variables"), &format!("{path}.variables"));
        let source_revisions = self.source_revisions(
            obj.get("sourceRevisions"),
            &format!("{path}.sourceRevisions"),
        );
        if self.errors.len() != before {
            return None;
        }
        Some(PipelineSpec {
            name: name?,
            wave: wave?,
            variables,
            source_revisions,
            timeout_minutes: timeout_minutes?,
        })
    }

    fn variables(&mut self, value: Option<&Value>, path: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let obj = match value {
            None => return out,
            Some(Value::Object(obj)) => obj,
            Some(other) => {
                self.err(
                    path,
                    format!(
                        "expected an object of variable names to string values, found {}",
                        json_type(other)
                    ),
                );
                return out;
            }
        };
        if obj.len() > MAX_VARIABLES {
            self.err(
                path,
                format!(
                    "has {} variables; CodePipeline allows at most {MAX_VARIABLES}",
                    obj.len()
                ),
            );
        }
        for (name, v) in obj {
            let vpath = member(path, name);
            let name_ok = !name.is_empty()
                && name.len() <= 128
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '_' | '-'));
            if !name_ok {
                self.err(
                    &vpath,
                    "a variable name is 1 to 128 letters, digits, '@', '_' or '-'",
                );
            }
            match v {
                Value::String(s) if !s.is_empty() && s.chars().count() <= 1000 => {
                    out.insert(name.clone(), s.clone());
                }
                Value::String(_) => self.err(&vpath, "a variable value is 1 to 1000 characters"),
                other => self.err(
                    &vpath,
                    format!("expected a string value, found {}", json_type(other)),
                ),
            }
        }
        out
    }

    fn source_revisions(&mut self, value: Option<&Value>, path: &str) -> Vec<SourceRevision> {
        let items = match value {
            None => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.err(
                    path,
                    format!(
                        "expected a list of {{actionName, revisionType, revisionValue}}, found {}",
                        json_type(other)
                    ),
                );
                return Vec::new();
            }
        };
        if items.len() > MAX_SOURCE_REVISIONS {
            self.err(
                path,
                format!(
                    "has {} entries; at most {MAX_SOURCE_REVISIONS}",
                    items.len()
                ),
            );
        }
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            let Some(obj) = item.as_object() else {
                self.err(
                    &ipath,
                    format!(
                        "expected an object {{actionName, revisionType, revisionValue}}, found {}",
                        json_type(item)
                    ),
                );
                continue;
            };
            self.unknown_fields(
                obj,
                &ipath,
                &["actionName", "revisionType", "revisionValue"],
            );
            let action_name = self.required_string(obj, &ipath, "actionName");
            if let Some(a) = &action_name {
                if let Err(m) = check_aws_name(a, 100, "an action name") {
                    self.err(format!("{ipath}.actionName"), m);
                } else if !seen.insert(a.clone()) {
                    self.err(
                        format!("{ipath}.actionName"),
                        format!("duplicate action {a:?}; give each source action one revision"),
                    );
                }
            }
            let revision_type = self.required_string(obj, &ipath, "revisionType");
            if let Some(t) = &revision_type {
                if !REVISION_TYPES.contains(&t.as_str()) {
                    self.err(
                        format!("{ipath}.revisionType"),
                        format!("{t:?} is not one of {}", REVISION_TYPES.join(", ")),
                    );
                }
            }
            let revision_value = self.required_string(obj, &ipath, "revisionValue");
            if let Some(v) = &revision_value {
                if v.chars().count() > 1500 {
                    self.err(
                        format!("{ipath}.revisionValue"),
                        "is too long; at most 1500 characters",
                    );
                }
            }
            if let (Some(action_name), Some(revision_type), Some(revision_value)) =
                (action_name, revision_type, revision_value)
            {
                out.push(SourceRevision {
                    action_name,
                    revision_type,
                    revision_value,
                });
            }
        }
        out
    }

    fn required_string(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        field: &str,
    ) -> Option<String> {
        match obj.get(field) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::String(_)) => {
                self.err(format!("{path}.{field}"), "must not be empty");
                None
            }
            None => {
                self.err(format!("{path}.{field}"), "is required");
                None
            }
            Some(other) => {
                self.err(
                    format!("{path}.{field}"),
                    format!("expected a string, found {}", json_type(other)),
                );
                None
            }
        }
    }
}

/// The path of an object member: `$.name` when the name is an identifier, else `$['the name']`
/// (RFC 9535), so a path stays readable and unambiguous whatever the key.
fn member(path: &str, key: &str) -> String {
    let mut chars = key.chars();
    let shorthand = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if shorthand {
        return format!("{path}.{key}");
    }
    let mut out = format!("{path}['");
    for c in key.chars() {
        match c {
            '\\' | '\'' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push_str("']");
    out
}

fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}
