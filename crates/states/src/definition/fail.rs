//! Fail: ends the machine with an error and a cause, given literally, by a path or by an
//! intrinsic function.

use serde_json::Value;

use super::fields::Ctx;
use super::{Kind, Source};
use crate::error::{LoadError, StatesError};
use crate::paths::ContextSource;

pub(super) const FIELDS: &[&str] = &["Error", "ErrorPath", "Cause", "CausePath"];

pub(super) fn load(c: &Ctx) -> Result<Kind, LoadError> {
    Ok(Kind::Fail {
        error: c.source("Error")?,
        cause: c.source("Cause")?,
    })
}

impl Source {
    pub(crate) fn eval(
        &self,
        data: &Value,
        ctx: &dyn ContextSource,
    ) -> Result<String, StatesError> {
        let v = match self {
            Source::Literal(s) => return Ok(s.clone()),
            Source::Path(p) => p.resolve(data, ctx)?.into_owned(),
            Source::Intrinsic(c) => c.eval(data, ctx)?,
        };
        match v {
            Value::String(s) => Ok(s),
            other => Err(StatesError::runtime(format!(
                "The ErrorPath/CausePath must resolve to a string, got {other}"
            ))),
        }
    }
}
