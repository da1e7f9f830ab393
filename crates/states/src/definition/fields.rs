//! Reading fields every state type shares: strings, paths, numbers, templates, sources.

use serde_json::{Map, Value};

use super::template::compile_template;
use super::{Num, PathSel, ResultPath, Source, Template};
use crate::error::LoadError;
use crate::intrinsics;
use crate::paths::Path;

/// Fields that exist in the States Language but that this engine does not implement.
/// Fields that exist in the States Language but that this engine does not implement.
pub(super) fn unsupported(field: &str) -> Option<&'static str> {
    Some(match field {
        "Assign" | "Output" | "Arguments" => "variables and JSONata fields are not supported by this engine",
        "Credentials" => "cross-account Task credentials are not supported by this engine",
        "ItemReader" | "ResultWriter" | "ItemBatcher" => "distributed Map (ItemReader, ResultWriter, ItemBatcher) is not supported by this engine",
        "ToleratedFailurePercentage" | "ToleratedFailurePercentagePath" | "ToleratedFailureCount"
        | "ToleratedFailureCountPath" => "tolerated failures in Map are not supported by this engine",
        "Label" => "distributed Map labels are not supported by this engine",
        "Items" => "the JSONata 'Items' field is not supported by this engine",
        _ => return None,
    })
}

/// One state (or retrier) object being read, named for its errors.
pub(super) struct Ctx<'a> {
    /// The state's name, prefixed by its enclosing states for nested machines.
    pub label: &'a str,
    pub obj: &'a Map<String, Value>,
}

impl Ctx<'_> {
    pub(super) fn err(&self, field: &str, msg: impl Into<String>) -> LoadError {
        LoadError::new(self.label, field, msg)
    }

    pub(super) fn str(&self, field: &str) -> Result<Option<&str>, LoadError> {
        match self.obj.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.err(field, "must be a string")),
        }
    }

    pub(super) fn reference_path(&self, field: &str) -> Result<Option<Path>, LoadError> {
        let Some(s) = self.str(field)? else {
            return Ok(None);
        };
        let p = Path::parse(s).map_err(|e| self.err(field, e))?;
        if !p.is_context() {
            Path::parse_reference(s).map_err(|e| self.err(field, e))?;
        }
        Ok(Some(p))
    }

    pub(super) fn uint(&self, field: &str, min: u64) -> Result<Option<u64>, LoadError> {
        match self.obj.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| *n >= min)
                .map(Some)
                .ok_or_else(|| self.err(field, format!("must be an integer >= {min}"))),
        }
    }

    pub(super) fn path_sel(&self, field: &str) -> Result<PathSel, LoadError> {
        match self.obj.get(field) {
            None => Ok(PathSel::Whole),
            Some(Value::Null) => Ok(PathSel::Null),
            Some(Value::String(s)) if s == "$" => Ok(PathSel::Whole),
            Some(Value::String(s)) => Ok(PathSel::Path(
                Path::parse(s).map_err(|e| self.err(field, e))?,
            )),
            Some(_) => Err(self.err(field, "must be a path string or null")),
        }
    }

    pub(super) fn result_path(
        &self,
        field: &str,
        v: Option<&Value>,
    ) -> Result<ResultPath, LoadError> {
        match v {
            None => Ok(ResultPath::Whole),
            Some(Value::Null) => Ok(ResultPath::Discard),
            Some(Value::String(s)) => {
                let segs = Path::parse_reference(s).map_err(|e| self.err(field, e))?;
                Ok(if segs.is_empty() {
                    ResultPath::Whole
                } else {
                    ResultPath::At(segs, s.clone())
                })
            }
            Some(_) => Err(self.err(field, "must be a reference path string or null")),
        }
    }

    pub(super) fn template(&self, field: &str) -> Result<Option<Template>, LoadError> {
        self.obj
            .get(field)
            .map(|v| compile_template(v).map_err(|e| self.err(field, e)))
            .transpose()
    }

    pub(super) fn num_or_path(&self, field: &str, min: u64) -> Result<Option<Num>, LoadError> {
        let path_field = format!("{field}Path");
        match (self.uint(field, min)?, self.reference_path(&path_field)?) {
            (Some(_), Some(_)) => Err(self.err(
                &path_field,
                format!("'{field}' and '{path_field}' are mutually exclusive"),
            )),
            (Some(n), None) => Ok(Some(Num::Fixed(n))),
            (None, Some(p)) => Ok(Some(Num::Path(p))),
            (None, None) => Ok(None),
        }
    }

    pub(super) fn source(&self, field: &str) -> Result<Option<Source>, LoadError> {
        let path_field = format!("{field}Path");
        match (self.str(field)?, self.str(&path_field)?) {
            (Some(_), Some(_)) => Err(self.err(
                &path_field,
                format!("'{field}' and '{path_field}' are mutually exclusive"),
            )),
            (Some(s), None) => Ok(Some(Source::Literal(s.to_owned()))),
            (None, Some(s)) if s.starts_with("States.") => Ok(Some(Source::Intrinsic(
                intrinsics::parse(s).map_err(|e| self.err(&path_field, e))?,
            ))),
            (None, Some(s)) => Ok(Some(Source::Path(
                Path::parse(s).map_err(|e| self.err(&path_field, e))?,
            ))),
            (None, None) => Ok(None),
        }
    }
}

pub(super) fn check_query_language(label: &str, obj: &Map<String, Value>) -> Result<(), LoadError> {
    match obj.get("QueryLanguage") {
        None => Ok(()),
        Some(Value::String(s)) if s == "JSONPath" => Ok(()),
        Some(Value::String(s)) if s == "JSONata" => Err(LoadError::new(
            label,
            "QueryLanguage",
            "JSONata is not supported by this engine (use JSONPath)",
        )),
        Some(other) => Err(LoadError::new(
            label,
            "QueryLanguage",
            format!("must be JSONPath or JSONata, not {other}"),
        )),
    }
}
