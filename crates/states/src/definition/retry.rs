//! Retry and Catch, shared by Task, Parallel and Map.

use serde_json::{Map, Value};

use super::fields::{unsupported, Ctx};
use super::{Catcher, Retrier};
use crate::error::{names, LoadError};

fn error_list(
    c: &Ctx,
    field: &str,
    v: &Map<String, Value>,
    last: bool,
) -> Result<Vec<String>, LoadError> {
    let list = v
        .get("ErrorEquals")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            c.err(
                field,
                "'ErrorEquals' must be a non-empty array of error names",
            )
        })?;
    let errors = list
        .iter()
        .map(|e| {
            e.as_str()
                .map(str::to_owned)
                .ok_or_else(|| c.err(field, "'ErrorEquals' entries must be strings"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if errors.iter().any(|e| e == names::ALL) && (errors.len() > 1 || !last) {
        return Err(c.err(
            field,
            "'States.ALL' must appear alone and in the last entry",
        ));
    }
    Ok(errors)
}

pub(super) fn retriers(c: &Ctx) -> Result<Vec<Retrier>, LoadError> {
    let Some(v) = c.obj.get("Retry") else {
        return Ok(vec![]);
    };
    let list = v
        .as_array()
        .ok_or_else(|| c.err("Retry", "must be an array"))?;
    let mut out = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let m = r
            .as_object()
            .ok_or_else(|| c.err("Retry", "entries must be objects"))?;
        let rc = Ctx {
            label: c.label,
            obj: m,
        };
        for k in m.keys() {
            if ![
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            ]
            .contains(&k.as_str())
            {
                return Err(c.err("Retry", format!("unknown retrier field '{k}'")));
            }
        }
        let errors = error_list(c, "Retry", m, i + 1 == list.len())?;
        let interval = rc
            .uint("IntervalSeconds", 1)
            .map_err(|e| c.err("Retry", e.message))?
            .unwrap_or(1);
        let max_attempts = rc
            .uint("MaxAttempts", 0)
            .map_err(|e| c.err("Retry", e.message))?
            .unwrap_or(3);
        let backoff = match m.get("BackoffRate") {
            None => 2.0,
            Some(v) => v
                .as_f64()
                .filter(|f| *f >= 1.0)
                .ok_or_else(|| c.err("Retry", "'BackoffRate' must be a number >= 1.0"))?,
        };
        let max_delay = rc
            .uint("MaxDelaySeconds", 1)
            .map_err(|e| c.err("Retry", e.message))?;
        let jitter_full = match rc
            .str("JitterStrategy")
            .map_err(|e| c.err("Retry", e.message))?
        {
            None | Some("NONE") => false,
            Some("FULL") => true,
            Some(other) => {
                return Err(c.err(
                    "Retry",
                    format!("'JitterStrategy' must be FULL or NONE, not '{other}'"),
                ))
            }
        };
        out.push(Retrier {
            errors,
            interval_seconds: interval as f64,
            max_attempts: u32::try_from(max_attempts).unwrap_or(u32::MAX),
            backoff_rate: backoff,
            max_delay_seconds: max_delay.map(|d| d as f64),
            jitter_full,
        });
    }
    Ok(out)
}

pub(super) fn catchers(c: &Ctx) -> Result<Vec<Catcher>, LoadError> {
    let Some(v) = c.obj.get("Catch") else {
        return Ok(vec![]);
    };
    let list = v
        .as_array()
        .ok_or_else(|| c.err("Catch", "must be an array"))?;
    let mut out = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let m = r
            .as_object()
            .ok_or_else(|| c.err("Catch", "entries must be objects"))?;
        for k in m.keys() {
            if !["ErrorEquals", "Next", "ResultPath", "Comment"].contains(&k.as_str()) {
                let why = unsupported(k).unwrap_or("unknown catcher field");
                return Err(c.err("Catch", format!("'{k}': {why}")));
            }
        }
        let errors = error_list(c, "Catch", m, i + 1 == list.len())?;
        let next = m
            .get("Next")
            .and_then(Value::as_str)
            .ok_or_else(|| c.err("Catch", "each catcher needs 'Next'"))?
            .to_owned();
        let result_path = c.result_path("Catch", m.get("ResultPath"))?;
        out.push(Catcher {
            errors,
            result_path,
            next,
        });
    }
    Ok(out)
}
