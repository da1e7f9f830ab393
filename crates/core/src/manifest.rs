//! The release manifest: parsing, validation and normalization.
//!
//! [`Manifest::parse`] reports every problem at once, each with a JSONPath such as
//! `$.pipelines[2].name`. The seed's format (`{"releaseId": 5.15, "pipelines": ["a"]}`) is
//! valid, and a numeric release id is kept exactly as written (`5.10` stays `"5.10"`).

use crate::error::{Rejection, ValidationError};
use crate::release::ReleaseId;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
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
        let (value, raw_release_id) =
            read(text).map_err(|e| reject(format!("the manifest is not valid JSON: {e}")))?;
        Self::validate(&value, raw_release_id)
    }

    /// Validates an already-parsed manifest (an inline state machine input, an API body).
    /// `raw_release_id` is the release id's JSON text when known, so a number keeps its
    /// digits exactly as written.
    pub fn from_value(value: &Value, raw_release_id: Option<&str>) -> Result<Manifest, Rejection> {
        Self::validate(&Json::from_value(value), raw_release_id)
    }

    fn validate(value: &Json, raw_release_id: Option<&str>) -> Result<Manifest, Rejection> {
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

/// A JSON value as the validator reads it. Strings borrow from the manifest's text where they
/// can and an object's members stay in a list: reading the largest manifest allocates a few
/// thousand times instead of the tens of thousands a [`Value`] costs (the 1 ms budget).
/// Members are unique, in the order of their first appearance, the last value winning — as in
/// `Value`.
#[derive(Debug, Clone)]
enum Json<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

type Object<'a> = [(Cow<'a, str>, Json<'a>)];

impl<'a> Json<'a> {
    fn from_value(v: &'a Value) -> Self {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(Cow::Borrowed(s)),
            Value::Array(items) => Json::Array(items.iter().map(Json::from_value).collect()),
            Value::Object(o) => Json::Object(
                o.iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Json::from_value(v)))
                    .collect(),
            ),
        }
    }

    /// Only for messages: the value as JSON text.
    fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.to_string()),
            Json::Array(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.as_u64(),
            _ => None,
        }
    }
}

fn get<'o, 'a>(obj: &'o Object<'a>, key: &str) -> Option<&'o Json<'a>> {
    obj.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Reads a [`Json`]; at the top level (`top`) it also keeps the text of `releaseId`.
struct JsonVisitor {
    top: bool,
}

struct JsonSeed;

impl<'de> DeserializeSeed<'de> for JsonSeed {
    type Value = Json<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(JsonVisitor { top: false })
            .map(|(v, _)| v)
    }
}

/// A key, borrowed from the text unless it has escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Past this many members an object finds repeated keys through a map, not a scan.
const SCAN_MEMBERS: usize = 16;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = (Json<'de>, Option<&'de RawValue>);

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok((Json::Null, None))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok((Json::Bool(v), None))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok((Json::Number(v.into()), None))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok((Json::Number(v.into()), None))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        serde_json::Number::from_f64(v)
            .map(|n| (Json::Number(n), None))
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok((Json::String(Cow::Borrowed(v)), None))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((Json::String(Cow::Owned(v.to_owned())), None))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok((Json::String(Cow::Owned(v)), None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(JsonSeed)? {
            items.push(item);
        }
        Ok((Json::Array(items), None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Room for the manifest's own objects (at most 5 known members) in one allocation.
        let mut members: Vec<(Cow<'de, str>, Json<'de>)> = Vec::with_capacity(8);
        let mut index: Option<HashMap<Cow<'de, str>, usize>> = None;
        let mut raw_release_id = None;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = if self.top && key == "releaseId" {
                let raw: &'de RawValue = map.next_value()?;
                raw_release_id = Some(raw);
                serde_json::from_str(raw.get())
                    .map(|v: JsonOwnedSeed<'de>| v.0)
                    .map_err(de::Error::custom)?
            } else {
                map.next_value_seed(JsonSeed)?
            };
            if members.len() == SCAN_MEMBERS && index.is_none() {
                index = Some(
                    members
                        .iter()
                        .enumerate()
                        .map(|(i, (k, _))| (k.clone(), i))
                        .collect(),
                );
            }
            let existing = match &index {
                Some(index) => index.get(&key).copied(),
                None => members.iter().position(|(k, _)| *k == key),
            };
            match existing {
                Some(i) => members[i].1 = value,
                None => {
                    if let Some(index) = &mut index {
                        index.insert(key.clone(), members.len());
                    }
                    members.push((key, value));
                }
            }
        }
        Ok((Json::Object(members), raw_release_id))
    }
}

/// A [`Json`] read on its own (the release id's value from its raw text).
struct JsonOwnedSeed<'a>(Json<'a>);

impl<'de> Deserialize<'de> for JsonOwnedSeed<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        JsonSeed.deserialize(d).map(JsonOwnedSeed)
    }
}

/// Reads the manifest's text: its value, and the release id's text as written.
fn read(text: &str) -> serde_json::Result<(Json<'_>, Option<&str>)> {
    let mut d = serde_json::Deserializer::from_str(text);
    let (value, raw) = d.deserialize_any(JsonVisitor { top: true })?;
    d.end()?;
    Ok((value, raw.map(RawValue::get)))
}

fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
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

/// Whether `s` has more than `max` characters (counted only when its bytes could be).
fn longer_than(s: &str, max: usize) -> bool {
    s.len() > max && s.chars().count() > max
}

/// `$.pipelines[i]`, written only when an error needs it.
fn item_path(i: usize) -> String {
    format!("$.pipelines[{i}]")
}

#[derive(Default)]
struct Validator {
    errors: Vec<ValidationError>,
}

impl Validator {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ValidationError::new(path, message));
    }

    fn unknown_fields(&mut self, obj: &Object, path: impl Fn() -> String, allowed: &[&str]) {
        for (key, _) in obj.iter().filter(|(k, _)| !allowed.contains(&k.as_ref())) {
            self.err(
                member(&path(), key),
                format!("unknown field; allowed fields are {}", allowed.join(", ")),
            );
        }
    }

    fn manifest(&mut self, value: &Json, raw_release_id: Option<&str>) -> Option<Manifest> {
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
            || "$".to_owned(),
            &[
                "releaseId",
                "description",
                "pipelines",
                "maxConcurrency",
                "onFailure",
            ],
        );
        let release_id = self.release_id(get(obj, "releaseId"), raw_release_id);
        let description = match get(obj, "description") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) if longer_than(s, MAX_DESCRIPTION_CHARS) => {
                self.err(
                    "$.description",
                    format!("is too long; at most {MAX_DESCRIPTION_CHARS} characters"),
                );
                None
            }
            Some(Json::String(s)) => Some(s.to_string()),
            Some(other) => {
                self.err(
                    "$.description",
                    format!("expected a string, found {}", json_type(other)),
                );
                None
            }
        };
        let max_concurrency = match get(obj, "maxConcurrency") {
            None => Some(DEFAULT_MAX_CONCURRENCY),
            Some(v) => self.integer(v, || "$.maxConcurrency".into(), 1, MAX_CONCURRENCY),
        };
        let on_failure = match get(obj, "onFailure") {
            None => Some(OnFailure::default()),
            Some(Json::String(s)) if OnFailure::parse(s).is_some() => OnFailure::parse(s),
            Some(v) => {
                self.err(
                    "$.onFailure",
                    format!("expected \"stop\" or \"continue\", found {}", compact(v)),
                );
                None
            }
        };
        let pipelines = self.pipelines(get(obj, "pipelines"));
        Some(Manifest {
            release_id: release_id?,
            description,
            pipelines: pipelines?,
            max_concurrency: max_concurrency?,
            on_failure: on_failure?,
        })
    }

    fn release_id(&mut self, value: Option<&Json>, raw: Option<&str>) -> Option<ReleaseId> {
        const PATH: &str = "$.releaseId";
        let text: Cow<str> = match value {
            None => {
                self.err(PATH, "is required: a string or number naming the release");
                return None;
            }
            Some(Json::String(s)) => Cow::Borrowed(s),
            Some(Json::Number(n)) => match raw {
                Some(r) if r.parse::<f64>().is_ok() => Cow::Borrowed(r),
                _ => Cow::Owned(n.to_string()),
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

    fn integer(&mut self, v: &Json, path: impl Fn() -> String, min: u32, max: u32) -> Option<u32> {
        match v.as_u64() {
            Some(n) if n >= u64::from(min) && n <= u64::from(max) => Some(n as u32),
            _ => {
                self.err(
                    path(),
                    format!(
                        "expected an integer from {min} to {max}, found {}",
                        compact(v)
                    ),
                );
                None
            }
        }
    }

    fn pipelines(&mut self, value: Option<&Json>) -> Option<Vec<PipelineSpec>> {
        const PATH: &str = "$.pipelines";
        let items = match value {
            None => {
                self.err(
                    PATH,
                    "is required: a non-empty list of pipeline names or objects",
                );
                return None;
            }
            Some(Json::Array(items)) => items,
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
        let mut seen: HashSet<&str> = HashSet::with_capacity(items.len());
        let mut specs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(spec) = self.pipeline(item, i) {
                specs.push(spec);
            }
            let name = match item {
                Json::String(s) => Some(s.as_ref()),
                Json::Object(o) => get(o, "name").and_then(Json::as_str),
                _ => None,
            };
            if let Some(name) = name.filter(|n| !n.is_empty()) {
                if !seen.insert(name) {
                    self.err(
                        format!("{}.name", item_path(i)),
                        format!("duplicate pipeline {name:?}; each pipeline may appear once"),
                    );
                }
            }
        }
        (self.errors.len() == before).then_some(specs)
    }

    fn pipeline(&mut self, item: &Json, i: usize) -> Option<PipelineSpec> {
        let field = |f: &'static str| move || format!("{}.{f}", item_path(i));
        let obj = match item {
            Json::String(name) => {
                return match check_pipeline_name(name) {
                    Ok(()) => Some(PipelineSpec::new(name.as_ref(), 1)),
                    Err(m) => {
                        self.err(field("name")(), m);
                        None
                    }
                };
            }
            Json::Object(obj) => obj,
            other => {
                self.err(
                    item_path(i),
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
            || item_path(i),
            &[
                "name",
                "wave",
                "variables",
                "sourceRevisions",
                "timeoutMinutes",
            ],
        );
        let name = match get(obj, "name") {
            None => {
                self.err(field("name")(), "is required");
                None
            }
            Some(Json::String(n)) => match check_pipeline_name(n) {
                Ok(()) => Some(n.to_string()),
                Err(m) => {
                    self.err(field("name")(), m);
                    None
                }
            },
            Some(other) => {
                self.err(
                    field("name")(),
                    format!("expected a string, found {}", json_type(other)),
                );
                None
            }
        };
        let wave = match get(obj, "wave") {
            None => Some(1),
            Some(v) => self.integer(v, field("wave"), 1, MAX_WAVE),
        };
        let timeout_minutes = match get(obj, "timeoutMinutes") {
            None => Some(DEFAULT_TIMEOUT_MINUTES),
            Some(v) => self.integer(v, field("timeoutMinutes"), 1, MAX_TIMEOUT_MINUTES),
        };
        let variables = self.variables(get(obj, "variables"), field("variables"));
        let source_revisions =
            self.source_revisions(get(obj, "sourceRevisions"), field("sourceRevisions"));
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

    fn variables(
        &mut self,
        value: Option<&Json>,
        path: impl Fn() -> String,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let obj = match value {
            None => return out,
            Some(Json::Object(obj)) => obj,
            Some(other) => {
                self.err(
                    path(),
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
                path(),
                format!(
                    "has {} variables; CodePipeline allows at most {MAX_VARIABLES}",
                    obj.len()
                ),
            );
        }
        for (name, v) in obj {
            let name_ok = !name.is_empty()
                && name.len() <= 128
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '_' | '-'));
            if !name_ok {
                self.err(
                    member(&path(), name),
                    "a variable name is 1 to 128 letters, digits, '@', '_' or '-'",
                );
            }
            match v {
                Json::String(s) if !s.is_empty() && !longer_than(s, 1000) => {
                    out.insert(name.to_string(), s.to_string());
                }
                Json::String(_) => self.err(
                    member(&path(), name),
                    "a variable value is 1 to 1000 characters",
                ),
                other => self.err(
                    member(&path(), name),
                    format!("expected a string value, found {}", json_type(other)),
                ),
            }
        }
        out
    }

    fn source_revisions(
        &mut self,
        value: Option<&Json>,
        path: impl Fn() -> String,
    ) -> Vec<SourceRevision> {
        let items = match value {
            None => return Vec::new(),
            Some(Json::Array(items)) => items,
            Some(other) => {
                self.err(
                    path(),
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
                path(),
                format!(
                    "has {} entries; at most {MAX_SOURCE_REVISIONS}",
                    items.len()
                ),
            );
        }
        let mut out = Vec::with_capacity(items.len());
        let mut seen: Vec<&str> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ipath = || format!("{}[{i}]", path());
            let Some(obj) = item.as_object() else {
                self.err(
                    ipath(),
                    format!(
                        "expected an object {{actionName, revisionType, revisionValue}}, found {}",
                        json_type(item)
                    ),
                );
                continue;
            };
            self.unknown_fields(obj, ipath, &["actionName", "revisionType", "revisionValue"]);
            let action_name = self.required_string(obj, ipath, "actionName");
            if let Some(a) = action_name {
                if let Err(m) = check_aws_name(a, 100, "an action name") {
                    self.err(format!("{}.actionName", ipath()), m);
                } else if items.len() > 1 && seen.contains(&a) {
                    self.err(
                        format!("{}.actionName", ipath()),
                        format!("duplicate action {a:?}; give each source action one revision"),
                    );
                } else if items.len() > 1 {
                    seen.push(a);
                }
            }
            let revision_type = self.required_string(obj, ipath, "revisionType");
            if let Some(t) = revision_type {
                if !REVISION_TYPES.contains(&t) {
                    self.err(
                        format!("{}.revisionType", ipath()),
                        format!("{t:?} is not one of {}", REVISION_TYPES.join(", ")),
                    );
                }
            }
            let revision_value = self.required_string(obj, ipath, "revisionValue");
            if let Some(v) = revision_value {
                if longer_than(v, 1500) {
                    self.err(
                        format!("{}.revisionValue", ipath()),
                        "is too long; at most 1500 characters",
                    );
                }
            }
            if let (Some(action_name), Some(revision_type), Some(revision_value)) =
                (action_name, revision_type, revision_value)
            {
                out.push(SourceRevision {
                    action_name: action_name.to_owned(),
                    revision_type: revision_type.to_owned(),
                    revision_value: revision_value.to_owned(),
                });
            }
        }
        out
    }

    fn required_string<'o>(
        &mut self,
        obj: &'o Object,
        path: impl Fn() -> String,
        field: &str,
    ) -> Option<&'o str> {
        match get(obj, field) {
            Some(Json::String(s)) if !s.is_empty() => Some(s),
            Some(Json::String(_)) => {
                self.err(format!("{}.{field}", path()), "must not be empty");
                None
            }
            None => {
                self.err(format!("{}.{field}", path()), "is required");
                None
            }
            Some(other) => {
                self.err(
                    format!("{}.{field}", path()),
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

fn compact(v: &Json) -> String {
    let s = v.to_value().to_string();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}
