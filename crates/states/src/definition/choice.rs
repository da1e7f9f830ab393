//! Choice: rules tried in order, each with its Next, and an optional Default.

use serde_json::Value;

use super::fields::Ctx;
use super::Kind;
use crate::choice;
use crate::error::LoadError;

pub(super) const FIELDS: &[&str] = &["Choices", "Default", "InputPath", "OutputPath"];

pub(super) fn load(c: &Ctx) -> Result<Kind, LoadError> {
    let list = c
        .obj
        .get("Choices")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| c.err("Choices", "must be a non-empty array"))?;
    let mut choices = Vec::new();
    for r in list {
        let rule = choice::parse_rule(c.label, r, true)?;
        let next = r
            .get("Next")
            .and_then(Value::as_str)
            .ok_or_else(|| c.err("Choices", "'Next' must be a string"))?;
        choices.push((rule, next.to_owned()));
    }
    Ok(Kind::Choice {
        choices,
        default: c.str("Default")?.map(str::to_owned),
    })
}
