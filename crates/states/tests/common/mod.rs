//! Shared by the integration tests: the conformance corpus and a scripted task handler.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use rm_states::{TaskFailure, TaskHandler, TaskTokens};
use serde_json::{json, Value};

/// One conformance case (tests/conformance/*.json).
#[derive(Debug, Clone)]
pub struct Case {
    pub file: PathBuf,
    pub name: String,
    pub definition: Value,
    pub input: Value,
    /// AWS's documented answer: `{"status", "output"?, "error"?}`.
    pub expected: Value,
    /// Why moto cannot run the case, if it cannot.
    pub moto_skip: Option<String>,
    /// What moto gives where it is known to differ from AWS.
    pub moto_expected: Option<Value>,
}

pub fn cases() -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let field = |k: &str| {
                v.get(k)
                    .cloned()
                    .unwrap_or_else(|| panic!("{}: missing '{k}'", file.display()))
            };
            Case {
                name: field("name").as_str().unwrap_or_default().to_owned(),
                definition: field("definition"),
                input: field("input"),
                expected: field("expected"),
                moto_skip: v
                    .get("moto")
                    .and_then(|m| m.get("skip_reason"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                moto_expected: v.get("moto_expected").cloned(),
                file,
            }
        })
        .collect()
}

/// JSON equality with numbers compared by value (`5` == `5.0`).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Checks an outcome against `{"status", "output"?, "error"?}`; `Err` describes the difference.
pub fn check(
    expected: &Value,
    status: &str,
    output: Option<&Value>,
    error: Option<&str>,
) -> Result<(), String> {
    let want_status = expected["status"].as_str().unwrap_or_default();
    if want_status != status {
        return Err(format!(
            "status: expected {want_status}, got {status} (output {output:?}, error {error:?})"
        ));
    }
    if let Some(want) = expected.get("output") {
        match output {
            Some(got) if json_eq(want, got) => {}
            other => return Err(format!("output: expected {want}, got {other:?}")),
        }
    }
    if let Some(want) = expected.get("error").and_then(Value::as_str) {
        if error != Some(want) {
            return Err(format!("error: expected {want}, got {error:?}"));
        }
    }
    Ok(())
}

/// The functions conformance and engine tests call, chosen by the last `:`-part of the
/// function name: `echo`, `fail`, `flaky`, `sleep`, `callback` (completes its task token
/// later, from another task), and any other name echoes its payload.
pub struct ScriptedHandler {
    pub tokens: TaskTokens,
    pub calls: RefCell<HashMap<String, u64>>,
}

impl ScriptedHandler {
    pub fn new(tokens: TaskTokens) -> Self {
        ScriptedHandler {
            tokens,
            calls: RefCell::new(HashMap::new()),
        }
    }
}

fn secs(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

#[async_trait::async_trait(?Send)]
impl TaskHandler for ScriptedHandler {
    async fn invoke(&self, function_name: &str, payload: Value) -> Result<Value, TaskFailure> {
        let short = function_name
            .rsplit(':')
            .next()
            .unwrap_or(function_name)
            .to_owned();
        let n = {
            let mut calls = self.calls.borrow_mut();
            let c = calls.entry(short.clone()).or_insert(0);
            *c += 1;
            *c
        };
        match short.as_str() {
            "fail" => Err(TaskFailure::new(
                payload
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                payload
                    .get("cause")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            )),
            "flaky" if n <= secs(&payload, "failures") => {
                Err(TaskFailure::new("Flaky", format!("call {n}")))
            }
            "sleep" => {
                tokio::time::sleep(Duration::from_secs(secs(&payload, "seconds"))).await;
                Ok(payload)
            }
            "callback" => {
                let tokens = self.tokens.clone();
                let token = payload["token"].as_str().unwrap_or_default().to_owned();
                let after = secs(&payload, "after");
                let every = secs(&payload, "heartbeatEvery");
                let fail = payload
                    .get("fail")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let output = payload.get("output").cloned().unwrap_or(json!({}));
                tokio::spawn(async move {
                    let start = tokio::time::Instant::now();
                    if every > 0 {
                        while start.elapsed() + Duration::from_secs(every)
                            < Duration::from_secs(after)
                        {
                            tokio::time::sleep(Duration::from_secs(every)).await;
                            let _ = tokens.send_heartbeat(&token);
                        }
                    }
                    tokio::time::sleep_until(start + Duration::from_secs(after)).await;
                    let _ = match fail {
                        Some(e) => tokens.send_failure(&token, &e, "the callback failed"),
                        None => tokens.send_success(&token, output),
                    };
                });
                Ok(json!({"accepted": true}))
            }
            _ => Ok(payload),
        }
    }
}

/// A current-thread runtime with paused (virtual) time, as the CLI runs the engine.
pub fn virtual_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread tokio runtime")
}
