//! Pass: passes its input on, or a fixed Result, or its Parameters.

use super::fields::Ctx;
use super::Kind;
use crate::error::LoadError;

pub(super) const FIELDS: &[&str] = &[
    "InputPath",
    "OutputPath",
    "Parameters",
    "Result",
    "ResultPath",
    "Next",
    "End",
];

pub(super) fn load(c: &Ctx) -> Result<Kind, LoadError> {
    Ok(Kind::Pass {
        result: c.obj.get("Result").cloned(),
    })
}
