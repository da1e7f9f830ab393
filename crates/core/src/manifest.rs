//! The release manifest: parsing, validation and normalization.
//!
//! [`Manifest::parse`] reports every problem at once, each with a JSONPath such as
//! `$.pipelines[2].name`. The seed's format (`{"releaseId": 5.15, "pipelines": ["a"]}`) is
//! valid, and a numeric release id is kept exactly as written (`5.10` stays `"5.10"`).

use crate::error::{Rejection, ValidationError};
use crate::release::ReleaseId;
use bumpalo::Bump;
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
        let arena = Bump::new();
        let (value, raw_release_id) = read(text, &arena)
            .map_err(|e| reject(format!("the manifest is not valid JSON: {e}")))?;
        Self::validate(&value, raw_release_id)
    }

    /// Validates an already-parsed manifest (an inline state machine input, an API body).
    /// `raw_release_id` is the release id's JSON text when known, so a number keeps its
    /// digits exactly as written.
    pub fn from_value(value: &Value, raw_release_id: Option<&str>) -> Result<Manifest, Rejection> {
        let arena = Bump::new();
        Self::validate(&Json::from_value(value, &arena), raw_release_id)
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

/// A JSON value as the validator reads it. It borrows everything: strings from the manifest's
/// text where they can, the rest (escaped strings, numbers, items, members) from one arena per
/// read, so reading the largest manifest allocates a few arena chunks rather than once per
/// object, and nothing is dropped value by value (the 1 ms budget). An object's members are
/// unique, in the order of their first appearance, the last value winning — as in [`Value`].
#[derive(Debug, Clone, Copy)]
enum Json<'a> {
    Null,
    Bool(bool),
    Number(&'a serde_json::Number),
    String(&'a str),
    Array(&'a [Json<'a>]),
    Object(&'a Object<'a>),
}

type Object<'a> = [(&'a str, Json<'a>)];

impl<'a> Json<'a> {
    fn from_value(v: &'a Value, arena: &'a Bump) -> Self {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n),
            Value::String(s) => Json::String(s),
            Value::Array(items) => Json::Array(
                arena.alloc_slice_fill_iter(items.iter().map(|v| Json::from_value(v, arena))),
            ),
            Value::Object(o) => Json::Object(
                arena.alloc_slice_fill_iter(
                    o.iter()
                        .map(|(k, v)| (k.as_str(), Json::from_value(v, arena))),
                ),
            ),
        }
    }

    /// Only for messages: the value as JSON text.
    fn to_value(self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.to_owned()),
            Json::Array(items) => Value::Array(items.iter().map(|v| v.to_value()).collect()),
            Json::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| ((*k).to_owned(), v.to_value()))
                    .collect(),
            ),
        }
    }

    fn as_str(&self) -> Option<&'a str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    fn as_object(&self) -> Option<&'a Object<'a>> {
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
    obj.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// Reads [`Json`] values into an arena. An object's members (an array's items) gather on a
/// stack shared by the whole read and move into one slice of the arena when it closes.
struct Reader<'a> {
    arena: &'a Bump,
    members: Vec<(&'a str, Json<'a>)>,
    items: Vec<Json<'a>>,
    /// The top-level `releaseId`'s text as written.
    raw_release_id: Option<&'a str>,
}

/// Past this many members an object finds repeated keys through a map, not a scan.
const SCAN_MEMBERS: usize = 16;

impl<'a> Reader<'a> {
    /// A seed for a value below the top level.
    fn value(&mut self) -> ValueSeed<'_, 'a> {
        ValueSeed {
            reader: self,
            top: false,
        }
    }

    /// Adds a member to the object gathering from `start`. A repeated key keeps its first
    /// place and takes the new value; `index` finds keys once the object is large.
    fn add_member(
        &mut self,
        start: usize,
        index: &mut Option<HashMap<&'a str, usize>>,
        key: &'a str,
        value: Json<'a>,
    ) {
        let members = &mut self.members[start..];
        if members.len() == SCAN_MEMBERS && index.is_none() {
            *index = Some(
                members
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (*k, i))
                    .collect(),
            );
        }
        let existing = match index {
            Some(index) => index.get(key).copied(),
            None => members.iter().position(|(k, _)| *k == key),
        };
        match existing {
            Some(i) => members[i].1 = value,
            None => {
                if let Some(index) = index {
                    index.insert(key, members.len());
                }
                self.members.push((key, value));
            }
        }
    }

    /// Moves the members gathered from `start` into the arena.
    fn close_object(&mut self, start: usize) -> &'a Object<'a> {
        let members = self.arena.alloc_slice_copy(&self.members[start..]);
        self.members.truncate(start);
        members
    }

    /// Moves the items gathered from `start` into the arena.
    fn close_array(&mut self, start: usize) -> &'a [Json<'a>] {
        let items = self.arena.alloc_slice_copy(&self.items[start..]);
        self.items.truncate(start);
        items
    }
}

/// Reads one value; at the top level (`top`) it also keeps the text of `releaseId`.
struct ValueSeed<'r, 'a> {
    reader: &'r mut Reader<'a>,
    top: bool,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for ValueSeed<'_, 'a> {
    type Value = Json<'a>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Json<'a>, D::Error> {
        d.deserialize_any(self)
    }
}

/// A key, borrowed from the text unless it has escapes.
struct KeySeed<'a>(&'a Bump);

impl<'de: 'a, 'a> DeserializeSeed<'de> for KeySeed<'a> {
    type Value = &'a str;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'a str, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for KeySeed<'a> {
    type Value = &'a str;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.alloc_str(v))
    }
}

impl<'de: 'a, 'a> Visitor<'de> for ValueSeed<'_, 'a> {
    type Value = Json<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(self.reader.arena.alloc(v.into())))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(self.reader.arena.alloc(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        let n = serde_json::Number::from_f64(v)
            .ok_or_else(|| E::custom("a number that is not finite"))?;
        Ok(Json::Number(self.reader.arena.alloc(n)))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Json::String(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::String(self.reader.arena.alloc_str(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let reader = self.reader;
        let start = reader.items.len();
        while let Some(item) = seq.next_element_seed(reader.value())? {
            reader.items.push(item);
        }
        Ok(Json::Array(reader.close_array(start)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let reader = self.reader;
        let start = reader.members.len();
        let mut index: Option<HashMap<&'a str, usize>> = None;
        while let Some(key) = map.next_key_seed(KeySeed(reader.arena))? {
            let value = if self.top && key == "releaseId" {
                let raw: &'de RawValue = map.next_value()?;
                reader.raw_release_id = Some(raw.get());
                // Its value, read on its own as `serde_json::from_str` would.
                let mut d = serde_json::Deserializer::from_str(raw.get());
                reader
                    .value()
                    .deserialize(&mut d)
                    .and_then(|v| d.end().map(|()| v))
                    .map_err(de::Error::custom)?
            } else {
                map.next_value_seed(reader.value())?
            };
            reader.add_member(start, &mut index, key, value);
        }
        Ok(Json::Object(reader.close_object(start)))
    }
}

/// Reads the manifest's text into `arena`: its value, and the release id's text as written.
fn read<'a>(text: &'a str, arena: &'a Bump) -> serde_json::Result<(Json<'a>, Option<&'a str>)> {
    let mut reader = Reader {
        arena,
        members: Vec::new(),
        items: Vec::new(),
        raw_release_id: None,
    };
    let mut d = serde_json::Deserializer::from_str(text);
    let value = ValueSeed {
        reader: &mut reader,
        top: true,
    }
    .deserialize(&mut d)?;
    d.end()?;
    Ok((value, reader.raw_release_id))
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

/// The bytes of `[A-Za-z0-9.@_-]`, by value: the characters of an AWS name.
const AWS_NAME_BYTES: [bool; 256] = ascii_alphanumeric_and(b".@_-");
/// The bytes of `[A-Za-z0-9@_-]`: the characters of a pipeline variable's name.
const VARIABLE_NAME_BYTES: [bool; 256] = ascii_alphanumeric_and(b"@_-");

/// A table of the ASCII letters and digits and the bytes of `extra` (a lookup is cheaper than
/// the comparisons, on every byte of every name).
const fn ascii_alphanumeric_and(extra: &[u8]) -> [bool; 256] {
    let mut set = [false; 256];
    let mut b = 0;
    while b < 256 {
        set[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        set[extra[i] as usize] = true;
        i += 1;
    }
    set
}

/// Checks a pipeline name against CodePipeline's rule `[A-Za-z0-9.@_-]{1,100}`.
pub fn check_pipeline_name(name: &str) -> Result<(), String> {
    check_aws_name(name, 100, "a pipeline name")
}

fn check_aws_name(name: &str, max: usize, what: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if longer_than(name, max) {
        let len = name.chars().count();
        return Err(format!(
            "is {len} characters long; {what} has at most {max}"
        ));
    }
    // Every allowed character is ASCII, so the first byte not allowed starts the first
    // character not allowed.
    if let Some(bad) = name
        .bytes()
        .position(|b| !AWS_NAME_BYTES[usize::from(b)])
        .and_then(|at| name[at..].chars().next())
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

    /// The values of `obj`'s fields named in `allowed`, in that order; any other member is an
    /// unknown field (reported in the object's order).
    fn fields<'o, 'a, const N: usize>(
        &mut self,
        obj: &'o Object<'a>,
        path: impl Fn() -> String,
        allowed: [&str; N],
    ) -> [Option<&'o Json<'a>>; N] {
        let mut values = [None; N];
        for (key, value) in obj {
            match allowed.iter().position(|name| name == key) {
                Some(i) => values[i] = Some(value),
                None => self.err(
                    member(&path(), key),
                    format!("unknown field; allowed fields are {}", allowed.join(", ")),
                ),
            }
        }
        values
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
        let [release_id, description, pipelines, max_concurrency, on_failure] = self.fields(
            obj,
            || "$".to_owned(),
            [
                "releaseId",
                "description",
                "pipelines",
                "maxConcurrency",
                "onFailure",
            ],
        );
        let release_id = self.release_id(release_id, raw_release_id);
        let description = match description {
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
        let max_concurrency = match max_concurrency {
            None => Some(DEFAULT_MAX_CONCURRENCY),
            Some(v) => self.integer(v, || "$.maxConcurrency".into(), 1, MAX_CONCURRENCY),
        };
        let on_failure = match on_failure {
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
        let pipelines = self.pipelines(pipelines);
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
        // foldhash: SipHash showed in the profile.
        let mut seen: HashSet<&str, foldhash::fast::RandomState> =
            HashSet::with_capacity_and_hasher(items.len(), Default::default());
        let mut specs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(spec) = self.pipeline(item, i) {
                specs.push(spec);
            }
            let name = match item {
                Json::String(s) => Some(*s),
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
                    Ok(()) => Some(PipelineSpec::new(*name, 1)),
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
        let [name, wave, variables, source_revisions, timeout_minutes] = self.fields(
            obj,
            || item_path(i),
            [
                "name",
                "wave",
                "variables",
                "sourceRevisions",
                "timeoutMinutes",
            ],
        );
        let name = match name {
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
        let wave = match wave {
            None => Some(1),
            Some(v) => self.integer(v, field("wave"), 1, MAX_WAVE),
        };
        let timeout_minutes = match timeout_minutes {
            None => Some(DEFAULT_TIMEOUT_MINUTES),
            Some(v) => self.integer(v, field("timeoutMinutes"), 1, MAX_TIMEOUT_MINUTES),
        };
        let variables = self.variables(variables, field("variables"));
        let source_revisions = self.source_revisions(source_revisions, field("sourceRevisions"));
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
        for (name, v) in obj.iter() {
            let name_ok = !name.is_empty()
                && name.len() <= 128
                && name.bytes().all(|b| VARIABLE_NAME_BYTES[usize::from(b)]);
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
            let [action_name, revision_type, revision_value] =
                self.fields(obj, ipath, ["actionName", "revisionType", "revisionValue"]);
            let action_name = self.required_string(action_name, ipath, "actionName");
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
            let revision_type = self.required_string(revision_type, ipath, "revisionType");
            if let Some(t) = revision_type {
                if !REVISION_TYPES.contains(&t) {
                    self.err(
                        format!("{}.revisionType", ipath()),
                        format!("{t:?} is not one of {}", REVISION_TYPES.join(", ")),
                    );
                }
            }
            let revision_value = self.required_string(revision_value, ipath, "revisionValue");
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

    fn required_string<'a>(
        &mut self,
        value: Option<&Json<'a>>,
        path: impl Fn() -> String,
        field: &str,
    ) -> Option<&'a str> {
        match value {
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
