//! What a simulated pipeline declares, and what it ran before the simulation started (issue 14:
//! the data `plan` checks a manifest against). Sim file keys, per pipeline or in `defaults`:
//!
//! - `pipelineType`: `"V1"` or `"V2"` (default `"V2"`).
//! - `variables`: the pipeline-level variables it declares, names or
//!   `{"name", "defaultValue"?}` objects. Unset: not known (GetPipeline through the port says
//!   `None`, so `plan` accepts any variable).
//! - `sourceActions`: its source actions, names (provider not known) or
//!   `{"name", "provider"?, "configuration"?}` objects (`configuration`: an object of strings,
//!   as CodePipeline's action configuration). Unset: not known.
//! - `lastRevisions`: the revisions of its last finished execution before the simulation
//!   (Succeeded): `{"ActionName": "revision"}`, or a list of
//!   `{"actionName", "revisionValue", "revisionType"?}` as a manifest writes them.
//! - `lastVariables`: that execution's variables, `{"name": "value"}`.
//!
//! Each key replaces the one in `defaults` whole (a pipeline's `variables` are not merged with
//! the defaults' `variables`).

use super::{json_type, quote_path};
use rm_core::error::ValidationError;
use rm_core::manifest::{MAX_VARIABLES, REVISION_TYPES};
use rm_core::ports::{PipelineShape, SourceAction};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};

/// CodePipeline's limit on an action name (`[A-Za-z0-9.@_-]{1,100}`).
const MAX_ACTION_NAME: usize = 100;
/// CodePipeline's limit on a variable name (`[A-Za-z0-9@_-]{1,128}`).
const MAX_VARIABLE_NAME: usize = 128;

/// GetPipeline's `pipelineType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineType {
    V1,
    V2,
}

impl PipelineType {
    pub const fn as_str(self) -> &'static str {
        match self {
            PipelineType::V1 => "V1",
            PipelineType::V2 => "V2",
        }
    }
}

/// A pipeline-level variable the pipeline declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredVariable {
    pub name: String,
    /// Its `defaultValue`: what an execution resolves when the start does not set it.
    pub default_value: Option<String>,
}

/// One source revision of the last execution before the simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRevision {
    pub action_name: String,
    /// The revision id the execution ran (ListPipelineExecutions' `revisionId`).
    pub revision_value: String,
    /// As a manifest would have asked for it; informational.
    pub revision_type: Option<String>,
}

/// A simulated pipeline's declaration and its last execution before the simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimShape {
    pub pipeline_type: PipelineType,
    /// `None`: not known.
    pub variables: Option<Vec<DeclaredVariable>>,
    /// `None`: not known. A name-only action has an empty provider.
    pub source_actions: Option<Vec<SourceAction>>,
    pub last_revisions: Option<Vec<LastRevision>>,
    pub last_variables: Option<BTreeMap<String, String>>,
}

impl SimShape {
    /// What GetPipeline tells the port.
    pub fn port(&self, name: &str) -> PipelineShape {
        PipelineShape {
            name: name.to_owned(),
            pipeline_type: self.pipeline_type.as_str().to_owned(),
            variables: self
                .variables
                .as_ref()
                .map(|vars| vars.iter().map(|v| v.name.clone()).collect()),
            source_actions: self.source_actions.clone(),
        }
    }

    /// Whether the pipeline ran once before the simulation: `lastRevisions` or
    /// `lastVariables` is set.
    pub fn ran_before(&self) -> bool {
        self.last_revisions.is_some() || self.last_variables.is_some()
    }

    /// The declared variables' default values: what an execution resolves for a variable its
    /// start does not set.
    pub fn variable_defaults(&self) -> BTreeMap<String, String> {
        self.variables
            .iter()
            .flatten()
            .filter_map(|v| Some((v.name.clone(), v.default_value.clone()?)))
            .collect()
    }
}

/// The shape keys of one object of the sim file (a pipeline's, or `defaults`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct ShapeOverrides {
    pipeline_type: Option<PipelineType>,
    variables: Option<Vec<DeclaredVariable>>,
    source_actions: Option<Vec<SourceAction>>,
    last_revisions: Option<Vec<LastRevision>>,
    last_variables: Option<BTreeMap<String, String>>,
}

impl ShapeOverrides {
    /// The resolved shape: these keys, else `defaults`' keys, else the built-in defaults.
    pub(super) fn over(&self, defaults: &ShapeOverrides) -> SimShape {
        SimShape {
            pipeline_type: self
                .pipeline_type
                .or(defaults.pipeline_type)
                .unwrap_or(PipelineType::V2),
            variables: self.variables.clone().or(defaults.variables.clone()),
            source_actions: self
                .source_actions
                .clone()
                .or(defaults.source_actions.clone()),
            last_revisions: self
                .last_revisions
                .clone()
                .or(defaults.last_revisions.clone()),
            last_variables: self
                .last_variables
                .clone()
                .or(defaults.last_variables.clone()),
        }
    }

    /// Parses `key` if it is a shape key (problems go to `errors`); false if it is not one.
    pub(super) fn parse(
        &mut self,
        key: &str,
        v: &Value,
        path: &str,
        errors: &mut Vec<ValidationError>,
    ) -> bool {
        match key {
            "pipelineType" => self.pipeline_type = pipeline_type(v, path, errors),
            "variables" => self.variables = variables(v, path, errors),
            "sourceActions" => self.source_actions = source_actions(v, path, errors),
            "lastRevisions" => self.last_revisions = last_revisions(v, path, errors),
            "lastVariables" => self.last_variables = last_variables(v, path, errors),
            _ => return false,
        }
        true
    }
}

fn pipeline_type(v: &Value, path: &str, errors: &mut Vec<ValidationError>) -> Option<PipelineType> {
    match v.as_str() {
        Some("V1") => Some(PipelineType::V1),
        Some("V2") => Some(PipelineType::V2),
        _ => {
            errors.push(ValidationError::new(
                path,
                format!("expected \"V1\" or \"V2\", got {v}"),
            ));
            None
        }
    }
}

fn last_variables(
    v: &Value,
    path: &str,
    errors: &mut Vec<ValidationError>,
) -> Option<BTreeMap<String, String>> {
    let values = strings(v, path, "variable names to values", errors)?;
    let before = errors.len();
    for name in values.keys() {
        if let Err(m) = check_variable_name(name) {
            errors.push(ValidationError::new(quote_path(path, name), m));
        }
    }
    (errors.len() == before).then_some(values)
}

fn check_variable_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_VARIABLE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a variable name: 1 to {MAX_VARIABLE_NAME} letters, digits, '@', '_' \
             or '-'"
        ))
    }
}

fn check_action_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_ACTION_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".@_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an action name: 1 to {MAX_ACTION_NAME} letters, digits, '.', '@', \
             '_' or '-'"
        ))
    }
}

/// An object of strings (`{"name": "value"}`).
fn strings(
    v: &Value,
    path: &str,
    what: &str,
    errors: &mut Vec<ValidationError>,
) -> Option<BTreeMap<String, String>> {
    let Some(map) = v.as_object() else {
        errors.push(ValidationError::new(
            path,
            format!("expected an object of {what}, got {}", json_type(v)),
        ));
        return None;
    };
    let before = errors.len();
    let values = map
        .iter()
        .filter_map(|(k, value)| match value.as_str() {
            Some(s) => Some((k.clone(), s.to_owned())),
            None => {
                errors.push(ValidationError::new(
                    quote_path(path, k),
                    format!("expected a string, got {}", json_type(value)),
                ));
                None
            }
        })
        .collect();
    (errors.len() == before).then_some(values)
}

/// A non-empty string at `map[key]`, `None` (and a problem) otherwise; a missing key is a
/// problem only when `required`.
fn text(
    map: &Map<String, Value>,
    key: &str,
    path: &str,
    required: bool,
    errors: &mut Vec<ValidationError>,
) -> Option<String> {
    match map.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(other) => {
            errors.push(ValidationError::new(
                quote_path(path, key),
                format!("expected a non-empty string, got {other}"),
            ));
            None
        }
        None => {
            if required {
                errors.push(ValidationError::new(
                    quote_path(path, key),
                    "is required".to_owned(),
                ));
            }
            None
        }
    }
}

/// Unknown keys of an object are errors.
fn known_keys(
    map: &Map<String, Value>,
    path: &str,
    allowed: &[&str],
    errors: &mut Vec<ValidationError>,
) {
    for key in map.keys().filter(|k| !allowed.contains(&k.as_str())) {
        errors.push(ValidationError::new(
            quote_path(path, key),
            format!(
                "unknown field {key:?}; expected one of {}",
                allowed.join(", ")
            ),
        ));
    }
}

/// A list whose entries are a name or an object; `entry` parses each, problems at
/// `path[i]`. Names must be unique.
fn named_list<T>(
    v: &Value,
    path: &str,
    example: &str,
    errors: &mut Vec<ValidationError>,
    entry: impl Fn(&Value, &str, &mut Vec<ValidationError>) -> Option<T>,
    name_of: impl Fn(&T) -> &str,
) -> Option<Vec<T>> {
    let Some(items) = v.as_array() else {
        errors.push(ValidationError::new(
            path,
            format!("expected a list like {example}, got {}", json_type(v)),
        ));
        return None;
    };
    let before = errors.len();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ipath = format!("{path}[{i}]");
        let Some(parsed) = entry(item, &ipath, errors) else {
            continue;
        };
        if !seen.insert(name_of(&parsed).to_owned()) {
            errors.push(ValidationError::new(
                &ipath,
                format!("{:?} is listed twice", name_of(&parsed)),
            ));
        }
        out.push(parsed);
    }
    (errors.len() == before).then_some(out)
}

fn variables(
    v: &Value,
    path: &str,
    errors: &mut Vec<ValidationError>,
) -> Option<Vec<DeclaredVariable>> {
    let parsed = named_list(
        v,
        path,
        "[\"ENV\", {\"name\": \"VERSION\", \"defaultValue\": \"latest\"}]",
        errors,
        |item, ipath, errors| {
            let (name, default_value) = match item {
                Value::String(name) => (name.clone(), None),
                Value::Object(map) => {
                    known_keys(map, ipath, &["name", "defaultValue"], errors);
                    let default_value = match map.get("defaultValue") {
                        None => None,
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(other) => {
                            errors.push(ValidationError::new(
                                quote_path(ipath, "defaultValue"),
                                format!("expected a string, got {}", json_type(other)),
                            ));
                            None
                        }
                    };
                    (text(map, "name", ipath, true, errors)?, default_value)
                }
                other => {
                    errors.push(ValidationError::new(
                        ipath,
                        format!(
                            "expected a variable name or {{\"name\", \"defaultValue\"}}, got {}",
                            json_type(other)
                        ),
                    ));
                    return None;
                }
            };
            if let Err(m) = check_variable_name(&name) {
                errors.push(ValidationError::new(ipath, m));
            }
            Some(DeclaredVariable {
                name,
                default_value,
            })
        },
        |d| &d.name,
    )?;
    if parsed.len() > MAX_VARIABLES {
        errors.push(ValidationError::new(
            path,
            format!(
                "declares {} variables; CodePipeline allows at most {MAX_VARIABLES}",
                parsed.len()
            ),
        ));
        return None;
    }
    Some(parsed)
}

fn source_actions(
    v: &Value,
    path: &str,
    errors: &mut Vec<ValidationError>,
) -> Option<Vec<SourceAction>> {
    let parsed = named_list(
        v,
        path,
        "[\"Source\", {\"name\": \"Image\", \"provider\": \"ECR\", \"configuration\": {...}}]",
        errors,
        |item, ipath, errors| {
            let action = match item {
                Value::String(name) => SourceAction {
                    name: name.clone(),
                    ..SourceAction::default()
                },
                Value::Object(map) => {
                    known_keys(map, ipath, &["name", "provider", "configuration"], errors);
                    let provider = text(map, "provider", ipath, false, errors);
                    let configuration = map.get("configuration").and_then(|c| {
                        strings(
                            c,
                            &quote_path(ipath, "configuration"),
                            "configuration keys to strings",
                            errors,
                        )
                    });
                    SourceAction {
                        name: text(map, "name", ipath, true, errors)?,
                        provider: provider.unwrap_or_default(),
                        configuration: configuration.unwrap_or_default(),
                    }
                }
                other => {
                    errors.push(ValidationError::new(
                        ipath,
                        format!(
                            "expected an action name or {{\"name\", \"provider\", \
                             \"configuration\"}}, got {}",
                            json_type(other)
                        ),
                    ));
                    return None;
                }
            };
            if let Err(m) = check_action_name(&action.name) {
                errors.push(ValidationError::new(ipath, m));
            }
            Some(action)
        },
        |a| &a.name,
    )?;
    if parsed.is_empty() {
        // CodePipeline's first stage holds the source actions, at least one.
        errors.push(ValidationError::new(
            path,
            "a pipeline has at least one source action; remove \"sourceActions\" if they are \
             not known",
        ));
        return None;
    }
    Some(parsed)
}

fn last_revisions(
    v: &Value,
    path: &str,
    errors: &mut Vec<ValidationError>,
) -> Option<Vec<LastRevision>> {
    if v.is_object() {
        let values = strings(v, path, "action names to revisions", errors)?;
        let before = errors.len();
        let revisions: Vec<LastRevision> = values
            .into_iter()
            .map(|(action_name, revision_value)| {
                let p = quote_path(path, &action_name);
                if let Err(m) = check_action_name(&action_name) {
                    errors.push(ValidationError::new(&p, m));
                }
                if revision_value.is_empty() {
                    errors.push(ValidationError::new(&p, "expected a revision, got \"\""));
                }
                LastRevision {
                    action_name,
                    revision_value,
                    revision_type: None,
                }
            })
            .collect();
        return (errors.len() == before).then_some(revisions);
    }
    named_list(
        v,
        path,
        "{\"Source\": \"abc123\"} or [{\"actionName\": \"Source\", \"revisionValue\": \"abc123\"}]",
        errors,
        |item, ipath, errors| {
            let Some(map) = item.as_object() else {
                errors.push(ValidationError::new(
                    ipath,
                    format!(
                        "expected {{\"actionName\", \"revisionValue\", \"revisionType\"?}}, got {}",
                        json_type(item)
                    ),
                ));
                return None;
            };
            known_keys(
                map,
                ipath,
                &["actionName", "revisionValue", "revisionType"],
                errors,
            );
            let action_name = text(map, "actionName", ipath, true, errors);
            let revision_value = text(map, "revisionValue", ipath, true, errors);
            let revision_type = text(map, "revisionType", ipath, false, errors);
            if let Some(t) = &revision_type {
                if !REVISION_TYPES.contains(&t.as_str()) {
                    errors.push(ValidationError::new(
                        quote_path(ipath, "revisionType"),
                        format!("expected one of {}, got {t:?}", REVISION_TYPES.join(", ")),
                    ));
                }
            }
            if let Some(Err(m)) = action_name.as_deref().map(check_action_name) {
                errors.push(ValidationError::new(quote_path(ipath, "actionName"), m));
            }
            Some(LastRevision {
                action_name: action_name?,
                revision_value: revision_value?,
                revision_type,
            })
        },
        |r| &r.action_name,
    )
}
