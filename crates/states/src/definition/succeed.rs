//! Succeed: ends the machine (or the branch, or the iteration) successfully.

use super::fields::Ctx;
use super::Kind;
use crate::error::LoadError;

pub(super) const FIELDS: &[&str] = &["InputPath", "OutputPath"];

pub(super) fn load(_c: &Ctx) -> Result<Kind, LoadError> {
    Ok(Kind::Succeed)
}
