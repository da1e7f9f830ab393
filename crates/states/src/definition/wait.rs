//! Wait: for a number of seconds or until a timestamp, each given literally or by a path.

use super::fields::Ctx;
use super::{Kind, WaitFor};
use crate::choice;
use crate::error::LoadError;

pub(super) const FIELDS: &[&str] = &[
    "Seconds",
    "SecondsPath",
    "Timestamp",
    "TimestampPath",
    "InputPath",
    "OutputPath",
    "Next",
    "End",
];

const MAX_SECONDS: u64 = 99_999_999;

pub(super) fn load(c: &Ctx) -> Result<Kind, LoadError> {
    let mut found = Vec::new();
    if let Some(n) = c.uint("Seconds", 0)? {
        // "A positive, integer value from 0 up to 99999999" (the Wait state's page in the
        // Step Functions developer guide).
        if n > MAX_SECONDS {
            return Err(c.err(
                "Seconds",
                format!("must be an integer from 0 to {MAX_SECONDS}"),
            ));
        }
        found.push(WaitFor::Seconds(n));
    }
    if let Some(p) = c.reference_path("SecondsPath")? {
        found.push(WaitFor::SecondsPath(p));
    }
    if let Some(s) = c.str("Timestamp")? {
        let t = choice::parse_timestamp(s)
            .ok_or_else(|| c.err("Timestamp", "must be an RFC 3339 timestamp"))?;
        found.push(WaitFor::Timestamp(t));
    }
    if let Some(p) = c.reference_path("TimestampPath")? {
        found.push(WaitFor::TimestampPath(p));
    }
    if found.len() != 1 {
        return Err(c.err(
            "Seconds",
            "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath",
        ));
    }
    Ok(Kind::Wait(found.remove(0)))
}
