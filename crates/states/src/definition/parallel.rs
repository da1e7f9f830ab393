//! Parallel: branches, each a machine of its own, run at once on the same input.

use serde_json::Value;

use super::fields::Ctx;
use super::{load_machine, Kind};
use crate::error::LoadError;

pub(super) const FIELDS: &[&str] = &[
    "Branches",
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "Retry",
    "Catch",
    "Next",
    "End",
];

pub(super) fn load(c: &Ctx) -> Result<Kind, LoadError> {
    let list = c
        .obj
        .get("Branches")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| c.err("Branches", "must be a non-empty array"))?;
    let branches = list
        .iter()
        .enumerate()
        .map(|(i, b)| load_machine(&format!("{}/Branches[{i}]", c.label), b, false))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Kind::Parallel { branches })
}
