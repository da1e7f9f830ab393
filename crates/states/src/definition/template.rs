//! Payload templates (Parameters, ResultSelector, ItemSelector): compiled at load time,
//! evaluated per state entry.

use serde_json::{Map, Value};

use super::Template;
use crate::error::StatesError;
use crate::intrinsics;
use crate::paths::{ContextSource, Path};

impl Template {
    pub(crate) fn eval(&self, data: &Value, ctx: &dyn ContextSource) -> Result<Value, StatesError> {
        Ok(match self {
            Template::Value(v) => v.clone(),
            Template::Object(fields) => {
                let mut m = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    m.insert(k.clone(), t.eval(data, ctx)?);
                }
                Value::Object(m)
            }
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.eval(data, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Template::Path(p) => p.resolve(data, ctx)?.into_owned(),
            Template::Intrinsic(c) => c.eval(data, ctx)?,
        })
    }
}

pub(super) fn compile_template(v: &Value) -> Result<Template, String> {
    fn has_dynamic(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.iter().any(|(k, v)| k.ends_with(".$") || has_dynamic(v)),
            Value::Array(a) => a.iter().any(has_dynamic),
            _ => false,
        }
    }
    if !has_dynamic(v) {
        return Ok(Template::Value(v.clone()));
    }
    match v {
        Value::Object(m) => {
            let mut fields = Vec::with_capacity(m.len());
            for (k, v) in m {
                if let Some(name) = k.strip_suffix(".$") {
                    let s = v.as_str().ok_or_else(|| {
                        format!("the value of '{k}' must be a path or an intrinsic function string")
                    })?;
                    let t = if s.starts_with("States.") {
                        Template::Intrinsic(intrinsics::parse(s)?)
                    } else {
                        Template::Path(Path::parse(s).map_err(|e| format!("'{k}': {e}"))?)
                    };
                    fields.push((name.to_owned(), t));
                } else {
                    fields.push((k.clone(), compile_template(v)?));
                }
            }
            Ok(Template::Object(fields))
        }
        Value::Array(a) => Ok(Template::Array(
            a.iter().map(compile_template).collect::<Result<_, _>>()?,
        )),
        other => Ok(Template::Value(other.clone())),
    }
}
