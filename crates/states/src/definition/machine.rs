//! A whole machine (the definition, a Parallel branch or a Map processor) and the checks
//! across its states: StartAt, transition targets, reachability.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::fields::check_query_language;
use super::{load_state, Kind, Machine, State};
use crate::error::LoadError;

/// Loads a machine (top level, or a Map processor / Parallel branch when `prefix` is set).
pub(crate) fn load_machine(
    prefix: &str,
    v: &Value,
    is_processor: bool,
) -> Result<Machine, LoadError> {
    let obj = v
        .as_object()
        .ok_or_else(|| LoadError::new(prefix, "", "a state machine must be a JSON object"))?;
    for k in obj.keys() {
        let ok = match k.as_str() {
            "StartAt" | "States" | "Comment" | "QueryLanguage" => true,
            "ProcessorConfig" => is_processor,
            "TimeoutSeconds" | "Version" => prefix.is_empty(),
            _ => false,
        };
        if !ok {
            return Err(LoadError::new(
                prefix,
                k,
                "is not a field of a state machine definition here",
            ));
        }
    }
    check_query_language(prefix, obj)?;
    let start_at = obj
        .get("StartAt")
        .and_then(Value::as_str)
        .ok_or_else(|| LoadError::new(prefix, "StartAt", "missing or not a string"))?;
    let states_v = obj
        .get("States")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| LoadError::new(prefix, "States", "missing, empty or not an object"))?;
    let timeout_seconds = match obj.get("TimeoutSeconds") {
        None => None,
        Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
            LoadError::new(prefix, "TimeoutSeconds", "must be a positive integer")
        })?),
    };
    let mut states = HashMap::with_capacity(states_v.len());
    for (name, sv) in states_v {
        if name.is_empty() || name.chars().count() > 80 {
            return Err(LoadError::new(
                prefix,
                "States",
                format!("state name '{name}' must be 1 to 80 characters"),
            ));
        }
        let label = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        states.insert(name.clone(), load_state(&label, name, sv)?);
    }
    let m = Machine {
        start_at: start_at.to_owned(),
        states,
        timeout_seconds,
    };
    validate(prefix, &m)?;
    Ok(m)
}

fn targets(s: &State) -> Vec<(&'static str, &str)> {
    let mut t = Vec::new();
    if let Some(n) = &s.next {
        t.push(("Next", n.as_str()));
    }
    if let Kind::Choice { choices, default } = &s.kind {
        t.extend(choices.iter().map(|(_, n)| ("Choices", n.as_str())));
        if let Some(d) = default {
            t.push(("Default", d.as_str()));
        }
    }
    t.extend(s.catch.iter().map(|c| ("Catch", c.next.as_str())));
    t
}

fn validate(prefix: &str, m: &Machine) -> Result<(), LoadError> {
    let label = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        }
    };
    if !m.states.contains_key(&m.start_at) {
        return Err(LoadError::new(
            prefix,
            "StartAt",
            format!("'{}' is not a state here", m.start_at),
        ));
    }
    for s in m.states.values() {
        for (field, target) in targets(s) {
            if !m.states.contains_key(target) {
                return Err(LoadError::new(
                    &label(&s.name),
                    field,
                    format!("'{target}' is not a state here"),
                ));
            }
        }
    }
    // Every state must be reachable from StartAt.
    let mut seen: HashSet<&str> = HashSet::new();
    let mut todo = vec![m.start_at.as_str()];
    while let Some(n) = todo.pop() {
        if seen.insert(n) {
            if let Some(s) = m.states.get(n) {
                todo.extend(targets(s).into_iter().map(|(_, t)| t));
            }
        }
    }
    let mut unreachable: Vec<&String> = m
        .states
        .keys()
        .filter(|k| !seen.contains(k.as_str()))
        .collect();
    unreachable.sort();
    if let Some(name) = unreachable.first() {
        return Err(LoadError::new(
            &label(name),
            "",
            "the state is not reachable from StartAt",
        ));
    }
    Ok(())
}
