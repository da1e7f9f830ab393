//! The manifest's rules. Every problem is reported, each with its path (`$.pipelines[2].name`).

use super::reader::{get, json_type, Json, Object};
use super::types::{Manifest, OnFailure, PipelineSpec, SourceRevision};
use super::{
    DEFAULT_APPROVAL_TIMEOUT_MINUTES, DEFAULT_MAX_CONCURRENCY, DEFAULT_TIMEOUT_MINUTES,
    MAX_APPROVAL_TIMEOUT_MINUTES, MAX_CONCURRENCY, MAX_DESCRIPTION_CHARS, MAX_PIPELINES,
    MAX_RELEASE_MINUTES, MAX_SOURCE_REVISIONS, MAX_TIMEOUT_MINUTES, MAX_VARIABLES, MAX_WAVE,
    REVISION_TYPES, STOP_WAIT_MINUTES,
};
use crate::error::{Rejection, ValidationError};
use crate::gate::{GateContext, GateSettings};
use crate::release::ReleaseId;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

/// Validates a manifest read into [`Json`]. `raw_release_id` is the release id's JSON text when
/// known, so a number keeps its digits exactly as written. `duplicates` are the paths of keys
/// the text repeats: each is an error, reported first, with the other problems.
pub(super) fn validate(
    value: &Json,
    raw_release_id: Option<&str>,
    duplicates: &[String],
) -> Result<Manifest, Rejection> {
    let mut v = Validator::default();
    for path in duplicates {
        v.err(
            path.clone(),
            "duplicate key: the object has this key more than once; write it once (JSON readers \
             disagree on which value wins)",
        );
    }
    let manifest = v.manifest(value, raw_release_id);
    if let Some(m) = manifest.as_ref().filter(|_| v.errors.is_empty()) {
        let worst = m.worst_case_minutes();
        if worst > MAX_RELEASE_MINUTES {
            v.err(
                "$.pipelines",
                format!(
                    "the release could take up to {} in the worst case (every pipeline running to \
                     its timeoutMinutes, wave after wave, {} at a time{}, then \
                     {STOP_WAIT_MINUTES} minutes of stop wait), more than a release's limit of \
                     30 days (the state machine's TimeoutSeconds); lower timeoutMinutes{}, raise \
                     maxConcurrency, or split the release",
                    minutes_text(worst),
                    m.max_concurrency,
                    if m.gates.is_some() {
                        format!(
                            ", each wave's gate waiting up to maxWaitMinutes and baking \
                             bakeMinutes: {} in all",
                            minutes_text(m.gate_minutes())
                        )
                    } else {
                        String::new()
                    },
                    if m.gates.is_some() {
                        ", gates.maxWaitMinutes or gates.bakeMinutes"
                    } else {
                        ""
                    }
                ),
            );
        }
    }
    match manifest {
        Some(m) if v.errors.is_empty() => Ok(m),
        _ => Err(Rejection(v.errors)),
    }
}

/// `43210 minutes` as `30 days 0 h 10 min`.
fn minutes_text(minutes: u64) -> String {
    format!(
        "{} days {} h {} min",
        minutes / (24 * 60),
        minutes / 60 % 24,
        minutes % 60
    )
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
        let [release_id, description, pipelines, max_concurrency, on_failure, approvals, approval_timeout, gates, skip_unchanged] =
            self.fields(
                obj,
                || "$".to_owned(),
                [
                    "releaseId",
                    "description",
                    "pipelines",
                    "maxConcurrency",
                    "onFailure",
                    "approvals",
                    "approvalTimeoutMinutes",
                    "gates",
                    "skipUnchanged",
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
        let approval_timeout_minutes = match approval_timeout {
            None => Some(DEFAULT_APPROVAL_TIMEOUT_MINUTES),
            Some(v) => self.integer(
                v,
                || "$.approvalTimeoutMinutes".into(),
                1,
                MAX_APPROVAL_TIMEOUT_MINUTES,
            ),
        };
        let skip_unchanged = match skip_unchanged {
            None | Some(Json::Null) => Some(false),
            Some(Json::Bool(b)) => Some(*b),
            Some(other) => {
                self.err(
                    "$.skipUnchanged",
                    format!("expected true or false, found {}", compact(other)),
                );
                None
            }
        };
        let pipelines = self.pipelines(pipelines);
        let approvals = self.approvals(approvals, pipelines.as_deref());
        let gates = match gates {
            None => Some(None),
            Some(v) => {
                match GateSettings::from_json(&v.to_value(), "$.gates", GateContext::Manifest) {
                    Ok(g) => Some(Some(g)),
                    Err(errors) => {
                        self.errors.extend(errors);
                        None
                    }
                }
            }
        };
        Some(Manifest {
            release_id: release_id?,
            description,
            pipelines: pipelines?,
            max_concurrency: max_concurrency?,
            on_failure: on_failure?,
            approvals: approvals?,
            approval_timeout_minutes: approval_timeout_minutes?,
            gates: gates?,
            skip_unchanged: skip_unchanged?,
        })
    }

    /// `approvals`: a list of distinct waves of this manifest, each waiting for a human before
    /// it starts. Sorted in the normalized manifest.
    fn approvals(
        &mut self,
        value: Option<&Json>,
        pipelines: Option<&[PipelineSpec]>,
    ) -> Option<Vec<u32>> {
        const PATH: &str = "$.approvals";
        let items = match value {
            None | Some(Json::Null) => return Some(Vec::new()),
            Some(Json::Array(items)) => items,
            Some(other) => {
                self.err(
                    PATH,
                    format!(
                        "expected a list of wave numbers, found {}",
                        json_type(other)
                    ),
                );
                return None;
            }
        };
        let before = self.errors.len();
        let mut waves = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = || format!("{PATH}[{i}]");
            let Some(wave) = self.integer(item, path, 1, MAX_WAVE) else {
                continue;
            };
            if waves.contains(&wave) {
                self.err(path(), format!("wave {wave} is listed twice"));
                continue;
            }
            if let Some(pipelines) = pipelines {
                if !pipelines.iter().any(|p| p.wave == wave) {
                    let mut existing: Vec<u32> = pipelines.iter().map(|p| p.wave).collect();
                    existing.sort_unstable();
                    existing.dedup();
                    let existing: Vec<String> = existing.iter().map(u32::to_string).collect();
                    self.err(
                        path(),
                        format!(
                            "wave {wave} has no pipelines; the manifest's waves are {}",
                            existing.join(", ")
                        ),
                    );
                    continue;
                }
            }
            waves.push(wave);
        }
        waves.sort_unstable();
        (self.errors.len() == before).then_some(waves)
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
pub(crate) fn member(path: &str, key: &str) -> String {
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
