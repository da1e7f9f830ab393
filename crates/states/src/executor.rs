//! Running an execution: states, input/output processing, Retry/Catch, Map and Parallel,
//! tasks and task tokens, all on `tokio::time` so that a paused runtime runs it in virtual time.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use crate::definition::{
    Catcher, Integration, Kind, Machine, MapSpec, Num, PathSel, ResultPath, Retrier, State,
    TaskSpec, WaitFor,
};
use crate::error::{names, StatesError};
use crate::history::{rfc3339_millis, HistoryEvent};
use crate::paths::{apply_result_path, walk, ContextSource, Seg};
use crate::tokens::{TaskTokens, TokenMsg};
use crate::{TaskFailure, TaskHandler};

/// Step Functions' hard quota on the events of one execution's history: "If the execution
/// history reaches this quota, the execution will fail" (Step Functions developer guide,
/// "Step Functions service quotas", quotas related to state machine executions, at
/// docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html). The execution then
/// fails with `States.Runtime`, cause [`HISTORY_FULL_CAUSE`], as AWS reports it.
pub const MAX_HISTORY_EVENTS: usize = 25_000;
pub(crate) const HISTORY_FULL_CAUSE: &str =
    "The execution reached the maximum number of history events (25000).";

/// Step Functions' default task timeout (99999999 seconds).
const DEFAULT_TASK_TIMEOUT: u64 = 99_999_999;
const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";

/// Everything one execution shares between its states, iterations and branches.
pub(crate) struct Run<'h> {
    pub handler: &'h dyn TaskHandler,
    pub tokens: TaskTokens,
    pub t0: Instant,
    pub start_time: OffsetDateTime,
    /// `$$.Execution`.
    pub execution: Value,
    /// `$$.StateMachine`.
    pub state_machine: Value,
    pub history: RefCell<Vec<HistoryEvent>>,
    pub progress: Option<UnboundedSender<HistoryEvent>>,
    pub transitions: Cell<u64>,
    /// Set when an event was refused because the history reached its quota.
    pub history_full: Cell<bool>,
    /// Whether history events carry inputs, outputs and parameters.
    pub record_data: bool,
}

pub(crate) fn execution_arn(state_machine: &str, name: &str) -> String {
    format!("arn:aws:states:{REGION}:{ACCOUNT}:execution:{state_machine}:{name}")
}

pub(crate) fn state_machine_arn(state_machine: &str) -> String {
    format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{state_machine}")
}

/// The context object as one state sees it.
struct StateCtx<'a> {
    run: &'a Run<'a>,
    name: &'a str,
    entered: OffsetDateTime,
    retry_count: u32,
    token: Option<&'a str>,
    item: Option<(usize, &'a Value)>,
}

impl ContextSource for StateCtx<'_> {
    fn field(&self, name: &str) -> Option<Cow<'_, Value>> {
        match name {
            "Execution" => Some(Cow::Borrowed(&self.run.execution)),
            "StateMachine" => Some(Cow::Borrowed(&self.run.state_machine)),
            "State" => Some(Cow::Owned(obj! {
                "EnteredTime": rfc3339_millis(self.entered),
                "Name": self.name,
                "RetryCount": self.retry_count,
            })),
            "Task" => self.token.map(|t| Cow::Owned(obj! { "Token": t })),
            "Map" => self
                .item
                .map(|(i, v)| Cow::Owned(obj! { "Item": obj! { "Index": i, "Value": v.clone() } })),
            _ => None,
        }
    }

    fn lookup(&self, segs: &[Seg]) -> Option<Cow<'_, Value>> {
        let key = |i: usize| match segs.get(i) {
            Some(Seg::Key(k)) => Some(k.as_str()),
            _ => None,
        };
        // The paths definitions use most, answered without building context objects.
        match (key(0)?, key(1), key(2)) {
            ("Map", Some("Item"), Some("Value")) => {
                let (_, v) = self.item?;
                walk(v, &segs[3..]).map(Cow::Borrowed)
            }
            ("Map", Some("Item"), Some("Index")) if segs.len() == 3 => {
                self.item.map(|(i, _)| Cow::Owned(Value::from(i)))
            }
            ("Task", Some("Token"), None) if segs.len() == 2 => {
                self.token.map(|t| Cow::Owned(Value::from(t)))
            }
            ("State", Some("Name"), None) if segs.len() == 2 => {
                Some(Cow::Owned(Value::from(self.name)))
            }
            ("Execution" | "StateMachine", _, _) => {
                let root = if key(0)? == "Execution" {
                    &self.run.execution
                } else {
                    &self.run.state_machine
                };
                walk(root, &segs[1..]).map(Cow::Borrowed)
            }
            (first, _, _) => {
                let v = self.field(first)?.into_owned();
                walk(&v, &segs[1..]).map(|x| Cow::Owned(x.clone()))
            }
        }
    }

    fn whole(&self) -> Value {
        let mut m = Map::new();
        for k in ["Execution", "StateMachine", "State", "Task", "Map"] {
            if let Some(v) = self.field(k) {
                m.insert(k.to_owned(), v.into_owned());
            }
        }
        Value::Object(m)
    }
}

/// The wait before retry number `attempt` (0-based) of retrier `r`, `unit` in [0, 1] being
/// the random draw for FULL jitter.
pub(crate) fn retry_delay(r: &Retrier, attempt: u32, unit: f64) -> Duration {
    let exp = i32::try_from(attempt).unwrap_or(i32::MAX);
    let mut secs = r.interval_seconds * r.backoff_rate.powi(exp);
    if let Some(max) = r.max_delay_seconds {
        secs = secs.min(max);
    }
    if !secs.is_finite() {
        secs = r.max_delay_seconds.unwrap_or(DEFAULT_TASK_TIMEOUT as f64);
    }
    if r.jitter_full {
        secs *= unit.clamp(0.0, 1.0);
    }
    Duration::from_secs_f64(secs.clamp(0.0, DEFAULT_TASK_TIMEOUT as f64))
}

/// Whether an `ErrorEquals` list matches an error name, with AWS's wildcards.
pub(crate) fn error_matches(list: &[String], error: &str) -> bool {
    list.iter().any(|e| {
        e == error
            || e == names::ALL
            || (e == names::TASK_FAILED && error != names::TIMEOUT)
            || (e == names::TIMEOUT && error == names::HEARTBEAT_TIMEOUT)
    })
}

fn select_path<'v>(
    sel: &PathSel,
    data: &'v Value,
    ctx: &'v dyn ContextSource,
) -> Result<Cow<'v, Value>, StatesError> {
    match sel {
        PathSel::Whole => Ok(Cow::Borrowed(data)),
        PathSel::Null => Ok(Cow::Owned(Value::Object(Map::new()))),
        PathSel::Path(p) => p.resolve(data, ctx),
    }
}

/// InputPath on an owned input: `$` moves it instead of cloning.
fn input_path_owned(
    sel: &PathSel,
    data: Value,
    ctx: &dyn ContextSource,
) -> Result<Value, StatesError> {
    output_path(sel, data, ctx)
}

fn output_path(sel: &PathSel, data: Value, ctx: &dyn ContextSource) -> Result<Value, StatesError> {
    match sel {
        PathSel::Whole => Ok(data),
        PathSel::Null => Ok(Value::Object(Map::new())),
        PathSel::Path(p) => Ok(p.resolve(&data, ctx)?.into_owned()),
    }
}

fn result_path(rp: &ResultPath, raw: Value, result: Value) -> Result<Value, StatesError> {
    match rp {
        ResultPath::Whole => Ok(result),
        ResultPath::Discard => Ok(raw),
        ResultPath::At(segs, text) => apply_result_path(raw, segs, result, text),
    }
}

fn resolve_num(
    num: &Option<Num>,
    data: &Value,
    ctx: &dyn ContextSource,
    field: &str,
) -> Result<Option<u64>, StatesError> {
    match num {
        None => Ok(None),
        Some(Num::Fixed(n)) => Ok(Some(*n)),
        Some(Num::Path(p)) => {
            let v = p.resolve(data, ctx)?;
            v.as_u64().map(Some).ok_or_else(|| {
                StatesError::runtime(format!(
                    "The {field} path '{}' must point to a non-negative integer, got {v}",
                    p.text()
                ))
            })
        }
    }
}

fn failure_error(f: TaskFailure) -> StatesError {
    let error = if f.error.is_empty() {
        names::TASK_FAILED.to_owned()
    } else {
        f.error
    };
    StatesError::new(error, f.cause)
}

fn lambda_wrapper(payload: Value) -> Value {
    let request_id = uuid::Uuid::new_v4().to_string();
    obj! {
        "ExecutedVersion": "$LATEST",
        "Payload": payload,
        "SdkHttpMetadata": json!({
            "AllHttpHeaders": {
                "X-Amz-Executed-Version": ["$LATEST"],
                "x-amzn-RequestId": [request_id],
                "Content-Type": ["application/json"],
            },
            "HttpHeaders": {
                "X-Amz-Executed-Version": "$LATEST",
                "x-amzn-RequestId": request_id,
                "Content-Type": "application/json",
            },
            "HttpStatusCode": 200,
        }),
        "SdkResponseMetadata": obj! { "RequestId": request_id },
        "StatusCode": 200,
    }
}

/// `from + secs`, or about thirty years ahead when that overflows.
fn deadline_after(from: Instant, secs: u64) -> Instant {
    from.checked_add(Duration::from_secs(secs))
        .unwrap_or_else(|| from + Duration::from_secs(86_400 * 365 * 30))
}

/// A running Map iteration: its index, its last history event and its result.
type IterationFuture<'a> = LocalBoxFuture<'a, (usize, u64, Result<Value, StatesError>)>;

/// The details of a failed or timed-out task event.
fn error_details(e: &StatesError) -> Value {
    obj! { "error": e.error.as_str(), "cause": e.cause.as_str() }
}

/// How a task attempt ended when it did not succeed.
enum TaskEnd {
    Failed(StatesError),
    TimedOut(StatesError),
}

impl TaskEnd {
    fn into_error(self) -> StatesError {
        match self {
            TaskEnd::Failed(e) | TaskEnd::TimedOut(e) => e,
        }
    }
}

impl<'h> Run<'h> {
    pub(crate) fn now(&self) -> OffsetDateTime {
        let elapsed = Instant::now().saturating_duration_since(self.t0);
        time::Duration::try_from(elapsed)
            .ok()
            .and_then(|d| self.start_time.checked_add(d))
            .unwrap_or(self.start_time)
    }

    /// A copy of `v` for a history event, or `null` when the host asked for a lean history.
    pub(crate) fn data_of(&self, v: &Value) -> Value {
        self.data(v)
    }

    fn data(&self, v: &Value) -> Value {
        if self.record_data {
            v.clone()
        } else {
            Value::Null
        }
    }

    /// Appends an event after `*cursor` and moves the cursor to it. When the history is one
    /// event short of its quota (the last is kept for the execution's closing event), the
    /// event is dropped and [`Run::check_history`] fails the execution from then on.
    pub(crate) fn record(&self, cursor: &mut u64, ty: &str, details: Value) -> u64 {
        if self.history.borrow().len() + 1 >= MAX_HISTORY_EVENTS {
            self.history_full.set(true);
            return *cursor;
        }
        self.record_closing(cursor, ty, details)
    }

    /// Appends the execution's closing event, which the history quota leaves room for.
    pub(crate) fn record_closing(&self, cursor: &mut u64, ty: &str, details: Value) -> u64 {
        let mut h = self.history.borrow_mut();
        let id = h.len() as u64 + 1;
        let ev = HistoryEvent {
            id,
            previous_event_id: *cursor,
            timestamp: self.now(),
            r#type: ty.to_owned(),
            details,
        };
        if let Some(tx) = &self.progress {
            // A host that stopped listening does not stop the execution.
            let _ = tx.send(ev.clone());
        }
        h.push(ev);
        *cursor = id;
        id
    }

    /// `States.Runtime` once the history has reached its quota; no Retry or Catch applies.
    fn check_history(&self) -> Result<(), StatesError> {
        if self.history_full.get() {
            Err(StatesError::runtime(HISTORY_FULL_CAUSE))
        } else {
            Ok(())
        }
    }

    /// Runs a machine from its StartAt to a terminal state.
    pub(crate) fn run_machine<'a>(
        &'a self,
        m: &'a Machine,
        input: Value,
        cursor: &'a mut u64,
    ) -> LocalBoxFuture<'a, Result<Value, StatesError>> {
        Box::pin(async move {
            let mut name: &str = &m.start_at;
            let mut input = input;
            loop {
                let state = m.states.get(name).ok_or_else(|| {
                    StatesError::runtime(format!("state '{name}' does not exist"))
                })?;
                self.transitions.set(self.transitions.get() + 1);
                let entered = self.now();
                let (entered_type, exited_type) = state.event_types();
                self.record(
                    cursor,
                    entered_type,
                    obj! { "name": state.name.as_str(), "input": self.data(&input) },
                );
                self.check_history()?;
                let ran = self.run_state(state, input, entered, cursor).await;
                self.check_history()?;
                let (output, next) = ran?;
                self.record(
                    cursor,
                    exited_type,
                    obj! { "name": state.name.as_str(), "output": self.data(&output) },
                );
                self.check_history()?;
                match next {
                    Some(n) => {
                        name = n;
                        input = output;
                    }
                    None => return Ok(output),
                }
            }
        })
    }

    async fn run_state<'a>(
        &'a self,
        s: &'a State,
        raw: Value,
        entered: OffsetDateTime,
        cursor: &mut u64,
    ) -> Result<(Value, Option<&'a str>), StatesError> {
        let ctx = StateCtx {
            run: self,
            name: &s.name,
            entered,
            retry_count: 0,
            token: None,
            item: None,
        };
        let next = s.next.as_deref();
        match &s.kind {
            Kind::Pass { result: None }
                if s.parameters.is_none() && matches!(s.result_path, ResultPath::Whole) =>
            {
                let eff = input_path_owned(&s.input_path, raw, &ctx)?;
                Ok((output_path(&s.output_path, eff, &ctx)?, next))
            }
            Kind::Pass { result } => {
                let eff = select_path(&s.input_path, &raw, &ctx)?;
                let res = match (result, &s.parameters) {
                    (Some(r), _) => r.clone(),
                    (None, Some(t)) => t.eval(&eff, &ctx)?,
                    (None, None) => eff.into_owned(),
                };
                let out = result_path(&s.result_path, raw, res)?;
                Ok((output_path(&s.output_path, out, &ctx)?, next))
            }
            Kind::Choice { choices, default } => {
                let eff = input_path_owned(&s.input_path, raw, &ctx)?;
                let mut target = None;
                for (rule, n) in choices {
                    if rule.eval(&eff, &ctx)? {
                        target = Some(n.as_str());
                        break;
                    }
                }
                let target = target.or(default.as_deref()).ok_or_else(|| {
                    StatesError::new(
                        names::NO_CHOICE_MATCHED,
                        format!(
                            "No Choice Rule matched and no Default in state '{}'",
                            s.name
                        ),
                    )
                })?;
                Ok((output_path(&s.output_path, eff, &ctx)?, Some(target)))
            }
            Kind::Wait(w) => {
                let eff = input_path_owned(&s.input_path, raw, &ctx)?;
                let dur = match w {
                    WaitFor::Seconds(n) => Duration::from_secs(*n),
                    WaitFor::SecondsPath(p) => {
                        let v = p.resolve(&eff, &ctx)?;
                        Duration::from_secs(v.as_u64().ok_or_else(|| {
                            StatesError::runtime(format!("The SecondsPath '{}' must point to a non-negative integer, got {v}", p.text()))
                        })?)
                    }
                    WaitFor::Timestamp(t) => self.until(*t),
                    WaitFor::TimestampPath(p) => {
                        let v = p.resolve(&eff, &ctx)?;
                        let t = v.as_str().and_then(crate::choice::parse_timestamp).ok_or_else(|| {
                            StatesError::runtime(format!("The TimestampPath '{}' must point to an RFC 3339 timestamp, got {v}", p.text()))
                        })?;
                        self.until(t)
                    }
                };
                tokio::time::sleep(dur).await;
                Ok((output_path(&s.output_path, eff, &ctx)?, next))
            }
            Kind::Succeed => {
                let eff = input_path_owned(&s.input_path, raw, &ctx)?;
                Ok((output_path(&s.output_path, eff, &ctx)?, None))
            }
            Kind::Fail { error, cause } => {
                let error = match error {
                    Some(e) => e.eval(&raw, &ctx)?,
                    None => String::new(),
                };
                let cause = match cause {
                    Some(c) => c.eval(&raw, &ctx)?,
                    None => String::new(),
                };
                Err(StatesError::new(error, cause))
            }
            Kind::Task(_) | Kind::Parallel { .. } | Kind::Map(_) => {
                self.run_with_retry(s, raw, entered, cursor).await
            }
        }
    }

    fn until(&self, t: OffsetDateTime) -> Duration {
        let d = t - self.now();
        if d.is_positive() {
            Duration::try_from(d).unwrap_or(Duration::ZERO)
        } else {
            Duration::ZERO
        }
    }

    /// Task, Parallel and Map: attempts under Retry, then Catch.
    async fn run_with_retry<'a>(
        &'a self,
        s: &'a State,
        raw: Value,
        entered: OffsetDateTime,
        cursor: &mut u64,
    ) -> Result<(Value, Option<&'a str>), StatesError> {
        let mut counts = vec![0u32; s.retry.len()];
        let mut retry_count = 0u32;
        let outcome = loop {
            let ctx = StateCtx {
                run: self,
                name: &s.name,
                entered,
                retry_count,
                token: None,
                item: None,
            };
            let eff = select_path(&s.input_path, &raw, &ctx)?;
            let attempt = match &s.kind {
                Kind::Task(spec) => Box::pin(self.run_task(s, spec, &eff, &ctx, cursor)).await,
                Kind::Parallel { branches } => {
                    Box::pin(self.run_parallel(s, branches, &eff, &ctx, cursor)).await
                }
                Kind::Map(spec) => Box::pin(self.run_map(s, spec, &eff, &ctx, cursor)).await,
                _ => Err(StatesError::runtime("internal: not a retriable state")),
            };
            // A Retry must not spin on a history that can take no more events.
            self.check_history()?;
            let err = match attempt {
                Ok(result) => {
                    let result = match &s.result_selector {
                        Some(t) => t.eval(&result, &ctx)?,
                        None => result,
                    };
                    break Ok(result);
                }
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => e,
            };
            if let Some(i) = s
                .retry
                .iter()
                .position(|r| error_matches(&r.errors, &err.error))
            {
                let r = &s.retry[i];
                if counts[i] < r.max_attempts {
                    let delay = retry_delay(r, counts[i], rand::random::<f64>());
                    counts[i] += 1;
                    retry_count += 1;
                    tokio::time::sleep(delay).await;
                    continue;
                }
            }
            break Err(err);
        };
        let ctx = StateCtx {
            run: self,
            name: &s.name,
            entered,
            retry_count,
            token: None,
            item: None,
        };
        match outcome {
            Ok(result) => {
                let out = result_path(&s.result_path, raw, result)?;
                Ok((output_path(&s.output_path, out, &ctx)?, s.next.as_deref()))
            }
            Err(err) => match s
                .catch
                .iter()
                .find(|c: &&Catcher| error_matches(&c.errors, &err.error))
            {
                Some(c) => {
                    let out = result_path(
                        &c.result_path,
                        raw,
                        obj! { "Error": err.error, "Cause": err.cause },
                    )?;
                    Ok((out, Some(c.next.as_str())))
                }
                None => Err(err),
            },
        }
    }

    async fn run_task(
        &self,
        s: &State,
        spec: &TaskSpec,
        eff: &Value,
        ctx: &StateCtx<'_>,
        cursor: &mut u64,
    ) -> Result<Value, StatesError> {
        let timeout = resolve_num(&spec.timeout, eff, ctx, "TimeoutSecondsPath")?
            .unwrap_or(DEFAULT_TASK_TIMEOUT);
        let heartbeat = resolve_num(&spec.heartbeat, eff, ctx, "HeartbeatSecondsPath")?;
        let wait = spec.wait_for_token.then(|| self.tokens.issue());
        let ctx = StateCtx {
            run: ctx.run,
            name: ctx.name,
            entered: ctx.entered,
            retry_count: ctx.retry_count,
            token: wait.as_ref().map(|w| w.token.as_str()),
            item: None,
        };
        let params = match &s.parameters {
            Some(t) => Cow::Owned(t.eval(eff, &ctx)?),
            None => Cow::Borrowed(eff),
        };
        let lambda_arn = spec.integration == Integration::LambdaArn;
        let (resource_type, resource) = match spec.resource.strip_prefix("arn:aws:states:::") {
            Some(rest) => rest.split_once(':').unwrap_or((rest, "")),
            None => ("lambda", spec.resource.as_str()),
        };
        let (function_name, payload) = match spec.integration {
            Integration::LambdaInvoke => {
                let f = params
                    .get("FunctionName")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        StatesError::runtime(format!(
                            "The FunctionName parameter of state '{}' must be a string",
                            s.name
                        ))
                    })?;
                (
                    f.to_owned(),
                    params
                        .get("Payload")
                        .cloned()
                        .unwrap_or_else(|| Value::Object(Map::new())),
                )
            }
            Integration::LambdaArn | Integration::Service => {
                (spec.resource.clone(), params.as_ref().clone())
            }
        };
        let mut timeout_details = Map::new();
        timeout_details.insert("timeoutInSeconds".into(), Value::from(timeout));
        if let Some(h) = heartbeat {
            timeout_details.insert("heartbeatInSeconds".into(), Value::from(h));
        }
        if lambda_arn {
            let mut d = obj! { "resource": spec.resource.as_str(), "input": self.data(&payload) };
            if let Some(o) = d.as_object_mut() {
                o.extend(timeout_details);
            }
            self.record(cursor, "LambdaFunctionScheduled", d);
            self.record(cursor, "LambdaFunctionStarted", Value::Null);
        } else {
            let mut d = obj! { "resourceType": resource_type, "resource": resource, "region": REGION, "parameters": if self.record_data { params.into_owned() } else { Value::Null } };
            if let Some(o) = d.as_object_mut() {
                o.extend(timeout_details);
            }
            self.record(cursor, "TaskScheduled", d);
            self.record(
                cursor,
                "TaskStarted",
                obj! { "resourceType": resource_type, "resource": resource },
            );
        }

        let handler = self.handler;
        let work = async {
            let result = handler
                .invoke(&function_name, payload)
                .await
                .map_err(|f| TaskEnd::Failed(failure_error(f)))?;
            let Some(mut wait) = wait else {
                return Ok(result);
            };
            // AWS records the integration's answer, then waits for the token.
            self.record(
                cursor,
                "TaskSubmitted",
                obj! { "resourceType": resource_type, "resource": resource, "output": self.data(&result) },
            );
            let started = Instant::now();
            let mut hb_deadline = heartbeat.map(|h| deadline_after(started, h));
            loop {
                let msg = match hb_deadline {
                    Some(d) => match tokio::time::timeout_at(d, wait.rx.recv()).await {
                        Ok(m) => m,
                        Err(_) => {
                            return Err(TaskEnd::TimedOut(StatesError::new(
                                names::HEARTBEAT_TIMEOUT,
                                "",
                            )));
                        }
                    },
                    None => wait.rx.recv().await,
                };
                match msg {
                    Some(TokenMsg::Success(v)) => return Ok(v),
                    Some(TokenMsg::Failure { error, cause }) => {
                        return Err(TaskEnd::Failed(failure_error(TaskFailure { error, cause })))
                    }
                    Some(TokenMsg::Heartbeat) => {
                        hb_deadline = heartbeat.map(|h| deadline_after(Instant::now(), h));
                    }
                    None => {
                        return Err(TaskEnd::Failed(StatesError::new(
                            names::TASK_FAILED,
                            "the task token was closed",
                        )))
                    }
                }
            }
        };
        // Step Functions' default timeout (over three years) needs no timer.
        let ended = if timeout >= DEFAULT_TASK_TIMEOUT {
            work.await
        } else {
            match tokio::time::timeout(Duration::from_secs(timeout), work).await {
                Ok(r) => r,
                Err(_) => Err(TaskEnd::TimedOut(StatesError::new(names::TIMEOUT, ""))),
            }
        };
        let ended = ended.map(|result| {
            if spec.integration == Integration::LambdaInvoke && !spec.wait_for_token {
                lambda_wrapper(result)
            } else {
                result
            }
        });

        // One closing event: {LambdaFunction,Task}{Succeeded,Failed,TimedOut}.
        let (outcome, details) = match &ended {
            Ok(output) => ("Succeeded", obj! { "output": self.data(output) }),
            Err(TaskEnd::Failed(e)) => ("Failed", error_details(e)),
            Err(TaskEnd::TimedOut(e)) => ("TimedOut", error_details(e)),
        };
        if lambda_arn {
            self.record(cursor, &format!("LambdaFunction{outcome}"), details);
        } else {
            let mut d = obj! { "resourceType": resource_type, "resource": resource };
            if let (Some(o), Value::Object(rest)) = (d.as_object_mut(), details) {
                o.extend(rest);
            }
            self.record(cursor, &format!("Task{outcome}"), d);
        }
        ended.map_err(TaskEnd::into_error)
    }

    async fn run_parallel(
        &self,
        s: &State,
        branches: &[Machine],
        eff: &Value,
        ctx: &StateCtx<'_>,
        cursor: &mut u64,
    ) -> Result<Value, StatesError> {
        let input = match &s.parameters {
            Some(t) => t.eval(eff, ctx)?,
            None => eff.clone(),
        };
        let started = self.record(cursor, "ParallelStateStarted", Value::Null);
        let mut pending: FuturesUnordered<LocalBoxFuture<'_, (usize, Result<Value, StatesError>)>> =
            FuturesUnordered::new();
        for (i, b) in branches.iter().enumerate() {
            let input = input.clone();
            pending.push(Box::pin(async move {
                let mut c = started;
                (i, self.run_machine(b, input, &mut c).await)
            }));
        }
        let mut results: Vec<Value> = vec![Value::Null; branches.len()];
        while let Some((i, r)) = pending.next().await {
            match r {
                Ok(v) => {
                    if let Some(slot) = results.get_mut(i) {
                        *slot = v;
                    }
                }
                Err(e) => {
                    // Step Functions stops the other branches when one fails.
                    drop(pending);
                    self.record(
                        cursor,
                        "ParallelStateFailed",
                        obj! { "error": e.error.as_str(), "cause": e.cause.as_str() },
                    );
                    return Err(e);
                }
            }
        }
        self.record(cursor, "ParallelStateSucceeded", Value::Null);
        Ok(Value::Array(results))
    }

    async fn run_map(
        &self,
        s: &State,
        spec: &MapSpec,
        eff: &Value,
        ctx: &StateCtx<'_>,
        cursor: &mut u64,
    ) -> Result<Value, StatesError> {
        let items = match &spec.items_path {
            Some(p) => p.resolve(eff, ctx)?,
            None => Cow::Borrowed(eff),
        };
        let items = items.as_array().ok_or_else(|| {
            StatesError::runtime(format!(
                "Map state '{}': the ItemsPath must point to a JSON array, got {items}",
                s.name
            ))
        })?;
        let max = match &spec.max_concurrency {
            Num::Fixed(n) => *n,
            Num::Path(p) => {
                let v = p.resolve(eff, ctx)?;
                v.as_u64().ok_or_else(|| {
                    StatesError::runtime(format!(
                        "The MaxConcurrencyPath '{}' must point to a non-negative integer, got {v}",
                        p.text()
                    ))
                })?
            }
        };
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        let n = items.len();
        let map_started = self.record(cursor, "MapStateStarted", obj! { "length": n });
        let mut results: Vec<Value> = vec![Value::Null; n];
        let mut running: BTreeSet<usize> = BTreeSet::new();
        let mut pending: FuturesUnordered<IterationFuture<'_>> = FuturesUnordered::new();
        let mut next_index = 0usize;
        let mut last = map_started;
        loop {
            while next_index < n && (max == 0 || pending.len() < max) {
                let index = next_index;
                next_index += 1;
                let item = &items[index];
                let input = match &spec.item_selector {
                    Some(t) => {
                        let ictx = StateCtx {
                            run: self,
                            name: ctx.name,
                            entered: ctx.entered,
                            retry_count: ctx.retry_count,
                            token: None,
                            item: Some((index, item)),
                        };
                        match t.eval(eff, &ictx) {
                            Ok(v) => v,
                            Err(e) => {
                                drop(pending);
                                self.abort_iterations(s, &running, &mut last);
                                self.record(&mut last, "MapStateFailed", Value::Null);
                                *cursor = last;
                                return Err(e);
                            }
                        }
                    }
                    None => item.clone(),
                };
                let mut c = map_started;
                let started_id = self.record(
                    &mut c,
                    "MapIterationStarted",
                    obj! { "name": s.name.as_str(), "index": index },
                );
                running.insert(index);
                let machine = &spec.processor;
                pending.push(Box::pin(async move {
                    let mut c = started_id;
                    let r = self.run_machine(machine, input, &mut c).await;
                    (index, c, r)
                }));
            }
            let Some((index, c, r)) = pending.next().await else {
                break;
            };
            running.remove(&index);
            let mut c = c;
            match r {
                Ok(v) => {
                    last = self.record(
                        &mut c,
                        "MapIterationSucceeded",
                        obj! { "name": s.name.as_str(), "index": index },
                    );
                    if let Some(slot) = results.get_mut(index) {
                        *slot = v;
                    }
                }
                Err(e) => {
                    last = self.record(
                        &mut c,
                        "MapIterationFailed",
                        obj! { "name": s.name.as_str(), "index": index },
                    );
                    // Step Functions aborts the iterations still running when one fails.
                    drop(pending);
                    self.abort_iterations(s, &running, &mut last);
                    self.record(&mut last, "MapStateFailed", Value::Null);
                    *cursor = last;
                    return Err(e);
                }
            }
        }
        self.record(&mut last, "MapStateSucceeded", Value::Null);
        *cursor = last;
        Ok(Value::Array(results))
    }

    fn abort_iterations(&self, s: &State, running: &BTreeSet<usize>, last: &mut u64) {
        for index in running {
            self.record(
                last,
                "MapIterationAborted",
                obj! { "name": s.name.as_str(), "index": *index },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retrier(interval: f64, rate: f64, max_delay: Option<f64>, jitter: bool) -> Retrier {
        Retrier {
            errors: vec![names::ALL.to_owned()],
            interval_seconds: interval,
            max_attempts: 10,
            backoff_rate: rate,
            max_delay_seconds: max_delay,
            jitter_full: jitter,
        }
    }

    #[test]
    fn backoff_math() {
        let r = retrier(2.0, 3.0, None, false);
        assert_eq!(retry_delay(&r, 0, 0.5), Duration::from_secs(2));
        assert_eq!(retry_delay(&r, 1, 0.5), Duration::from_secs(6));
        assert_eq!(retry_delay(&r, 2, 0.5), Duration::from_secs(18));
        let r = retrier(2.0, 3.0, Some(10.0), false);
        assert_eq!(retry_delay(&r, 5, 0.5), Duration::from_secs(10));
        let r = retrier(1.0, 2.0, None, false);
        assert_eq!(
            retry_delay(&r, 1000, 0.5),
            Duration::from_secs(DEFAULT_TASK_TIMEOUT)
        );
    }

    #[test]
    fn jitter_bounds() {
        let r = retrier(4.0, 2.0, Some(20.0), true);
        for attempt in 0..8 {
            let full = retry_delay(&retrier(4.0, 2.0, Some(20.0), false), attempt, 1.0);
            for _ in 0..200 {
                let d = retry_delay(&r, attempt, rand::random::<f64>());
                assert!(d <= full, "{d:?} > {full:?}");
            }
            assert_eq!(retry_delay(&r, attempt, 0.0), Duration::ZERO);
            assert_eq!(retry_delay(&r, attempt, 1.0), full);
        }
    }

    #[test]
    fn error_matching() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(error_matches(&l(&["States.ALL"]), "Anything"));
        assert!(error_matches(&l(&["States.TaskFailed"]), "Lambda.Unknown"));
        assert!(!error_matches(&l(&["States.TaskFailed"]), "States.Timeout"));
        assert!(error_matches(
            &l(&["States.Timeout"]),
            "States.HeartbeatTimeout"
        ));
        assert!(error_matches(&l(&["A", "B"]), "B"));
        assert!(!error_matches(&l(&["A"]), "B"));
    }
}
