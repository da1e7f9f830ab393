//! Task: a Resource (a Lambda function ARN or an `arn:aws:states:::service:action`
//! integration, optionally `.waitForTaskToken`), its timeouts and heartbeats.

use serde_json::Value;

use super::fields::Ctx;
use super::{Integration, Kind, Num, TaskSpec};
use crate::error::LoadError;

pub(super) const FIELDS: &[&str] = &[
    "Resource",
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "Retry",
    "Catch",
    "TimeoutSeconds",
    "TimeoutSecondsPath",
    "HeartbeatSeconds",
    "HeartbeatSecondsPath",
    "Next",
    "End",
];

pub(super) fn load(c: &Ctx) -> Result<Kind, LoadError> {
    let resource = c
        .str("Resource")?
        .ok_or_else(|| c.err("Resource", "missing"))?;
    let (integration, wait_for_token) = classify_resource(c, resource)?;
    if integration == Integration::LambdaInvoke {
        let has_fn = c
            .obj
            .get("Parameters")
            .and_then(Value::as_object)
            .is_some_and(|p| p.contains_key("FunctionName") || p.contains_key("FunctionName.$"));
        if !has_fn {
            return Err(c.err(
                "Parameters",
                "lambda:invoke needs a 'FunctionName' parameter",
            ));
        }
    }
    let timeout = c.num_or_path("TimeoutSeconds", 1)?;
    let heartbeat = c.num_or_path("HeartbeatSeconds", 1)?;
    if let (Some(Num::Fixed(t)), Some(Num::Fixed(h))) = (&timeout, &heartbeat) {
        if h >= t {
            return Err(c.err("HeartbeatSeconds", "must be smaller than TimeoutSeconds"));
        }
    }
    Ok(Kind::Task(TaskSpec {
        resource: resource.to_owned(),
        integration,
        wait_for_token,
        timeout,
        heartbeat,
    }))
}

fn classify_resource(c: &Ctx, resource: &str) -> Result<(Integration, bool), LoadError> {
    if let Some(rest) = resource.strip_prefix("arn:aws:states:::") {
        let (action, wait) = match rest.strip_suffix(".waitForTaskToken") {
            Some(a) => (a, true),
            None => (rest, false),
        };
        if action.contains(".sync") {
            return Err(c.err(
                "Resource",
                format!(
                    "'{resource}': the .sync integration pattern is not supported by this engine"
                ),
            ));
        }
        if action == "lambda:invoke" {
            return Ok((Integration::LambdaInvoke, wait));
        }
        let valid = action.split_once(':').is_some_and(|(svc, act)| {
            !svc.is_empty() && !act.is_empty() && !act.contains([':', '.'])
        });
        if !valid {
            return Err(c.err("Resource", format!("'{resource}' is not a known resource")));
        }
        return Ok((Integration::Service, wait));
    }
    let parts: Vec<&str> = resource.split(':').collect();
    if parts.len() >= 7
        && parts[0] == "arn"
        && parts[2] == "lambda"
        && parts[5] == "function"
        && !parts[6].is_empty()
    {
        return Ok((Integration::LambdaArn, false));
    }
    if parts.len() >= 7 && parts[0] == "arn" && parts[2] == "states" && parts[5] == "activity" {
        return Err(c.err(
            "Resource",
            format!("'{resource}': activities are not supported by this engine"),
        ));
    }
    Err(c.err(
        "Resource",
        format!("'{resource}' is not a supported resource (a Lambda function ARN or arn:aws:states:::service:action)"),
    ))
}
