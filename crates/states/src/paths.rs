//! JSONPath as Step Functions applies it.
//!
//! * A *definite* path (only `.name`, `['name']` and `[index]` steps, a Jayway "reference
//!   path") yields the value itself, and is evaluated here without cloning.
//! * Any other path (wildcards, filters, slices, recursive descent, unions) is evaluated by
//!   `serde_json_path` (RFC 9535) and yields the list of matches, as AWS's Jayway JsonPath does.
//! * A definite path that matches nothing is `States.Runtime`.
//! * `$$` selects from the context object instead of the state's data.

use std::borrow::Cow;

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use crate::error::StatesError;

/// One step of a definite path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(i64),
}

#[derive(Debug, Clone)]
enum Kind {
    Definite(Vec<Seg>),
    Query(Box<JsonPath>),
}

/// A compiled path: data path (`$...`) or context path (`$$...`).
#[derive(Debug, Clone)]
pub(crate) struct Path {
    text: String,
    context: bool,
    kind: Kind,
}

/// Where a context path (`$$...`) is looked up. Implemented by the executor, which builds
/// only the part of the context object a path asks for.
pub(crate) trait ContextSource {
    /// The value of the top-level context field `name` (`Execution`, `State`, ...).
    fn field(&self, name: &str) -> Option<Cow<'_, Value>>;
    /// The whole context object, for indefinite context paths.
    fn whole(&self) -> Value;
    /// The value at a definite path (`segs` after `$$`). The default walks [`Self::field`];
    /// implementations may answer common paths without building objects.
    fn lookup(&self, segs: &[Seg]) -> Option<Cow<'_, Value>> {
        let (Seg::Key(first), rest) = segs.split_first()? else {
            return None;
        };
        match self.field(first)? {
            Cow::Borrowed(v) => walk(v, rest).map(Cow::Borrowed),
            Cow::Owned(v) => walk(&v, rest).map(|x| Cow::Owned(x.clone())),
        }
    }
}

fn name_char(c: char) -> bool {
    !matches!(
        c,
        '.' | '[' | ']' | '\'' | '"' | '(' | ')' | '*' | '?' | '@' | ',' | ':' | ' ' | '$'
    )
}

/// Parses the steps after the leading `$` of a reference path; `None` if it is not definite.
pub(crate) fn parse_definite(rest: &str) -> Option<Vec<Seg>> {
    let chars: Vec<char> = rest.chars().collect();
    let mut segs = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && name_char(chars[j]) {
                    j += 1;
                }
                if j == start {
                    return None;
                }
                segs.push(Seg::Key(chars[start..j].iter().collect()));
                i = j;
            }
            '[' => {
                let q = *chars.get(i + 1)?;
                if q == '\'' || q == '"' {
                    let mut j = i + 2;
                    let mut name = String::new();
                    loop {
                        let c = *chars.get(j)?;
                        if c == '\\' {
                            name.push(*chars.get(j + 1)?);
                            j += 2;
                            continue;
                        }
                        if c == q {
                            break;
                        }
                        name.push(c);
                        j += 1;
                    }
                    if chars.get(j + 1) != Some(&']') {
                        return None;
                    }
                    segs.push(Seg::Key(name));
                    i = j + 2;
                } else {
                    let mut j = i + 1;
                    let mut num = String::new();
                    while j < chars.len()
                        && (chars[j].is_ascii_digit() || (chars[j] == '-' && j == i + 1))
                    {
                        num.push(chars[j]);
                        j += 1;
                    }
                    if chars.get(j) != Some(&']') {
                        return None;
                    }
                    segs.push(Seg::Index(num.parse().ok()?));
                    i = j + 1;
                }
            }
            _ => return None,
        }
    }
    Some(segs)
}

fn step<'a>(value: &'a Value, seg: &Seg) -> Option<&'a Value> {
    match (seg, value) {
        (Seg::Key(k), Value::Object(m)) => m.get(k),
        (Seg::Index(i), Value::Array(a)) => {
            let idx = if *i < 0 { a.len() as i64 + *i } else { *i };
            usize::try_from(idx).ok().and_then(|i| a.get(i))
        }
        _ => None,
    }
}

pub(crate) fn walk<'a>(value: &'a Value, segs: &[Seg]) -> Option<&'a Value> {
    segs.iter().try_fold(value, step)
}

impl Path {
    /// Compiles `text`, which must start with `$` (data) or `$$` (context).
    pub(crate) fn parse(text: &str) -> Result<Path, String> {
        let (context, rest) = if let Some(rest) = text.strip_prefix("$$") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix('$') {
            (false, rest)
        } else {
            return Err(format!(
                "'{text}' is not a JSONPath: it must start with '$'"
            ));
        };
        let kind = match parse_definite(rest) {
            Some(segs) => Kind::Definite(segs),
            None => {
                let q = format!("${rest}");
                let jp = JsonPath::parse(&q)
                    .map_err(|e| format!("'{text}' is not a valid JSONPath: {e}"))?;
                Kind::Query(Box::new(jp))
            }
        };
        Ok(Path {
            text: text.to_owned(),
            context,
            kind,
        })
    }

    /// A reference path: definite, data (not context). Used by ResultPath.
    pub(crate) fn parse_reference(text: &str) -> Result<Vec<Seg>, String> {
        text.strip_prefix('$')
            .filter(|r| !r.starts_with('$'))
            .and_then(parse_definite)
            .ok_or_else(|| {
                format!("'{text}' is not a valid reference path (only '$', '.field', ['field'] and [index] steps)")
            })
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn is_context(&self) -> bool {
        self.context
    }

    fn not_found(&self) -> StatesError {
        StatesError::runtime(format!(
            "Invalid path '{}' : No results for path: {}",
            self.text, self.text
        ))
    }

    /// Evaluates the path against `data` (or the context object for `$$` paths).
    pub(crate) fn resolve<'a>(
        &self,
        data: &'a Value,
        ctx: &'a dyn ContextSource,
    ) -> Result<Cow<'a, Value>, StatesError> {
        match (&self.kind, self.context) {
            (Kind::Definite(segs), false) => walk(data, segs)
                .map(Cow::Borrowed)
                .ok_or_else(|| self.not_found()),
            (Kind::Definite(segs), true) => {
                if segs.is_empty() {
                    Ok(Cow::Owned(ctx.whole()))
                } else {
                    ctx.lookup(segs).ok_or_else(|| self.not_found())
                }
            }
            (Kind::Query(jp), false) => Ok(Cow::Owned(Value::Array(
                jp.query(data).all().into_iter().cloned().collect(),
            ))),
            (Kind::Query(jp), true) => {
                let whole = ctx.whole();
                Ok(Cow::Owned(Value::Array(
                    jp.query(&whole).all().into_iter().cloned().collect(),
                )))
            }
        }
    }

    /// Whether the path matches something (Choice's `IsPresent`).
    pub(crate) fn is_present(&self, data: &Value, ctx: &dyn ContextSource) -> bool {
        match &self.kind {
            Kind::Definite(_) => self.resolve(data, ctx).is_ok(),
            Kind::Query(_) => {
                matches!(self.resolve(data, ctx), Ok(v) if v.as_array().is_some_and(|a| !a.is_empty()))
            }
        }
    }
}

/// Writes `result` into `input` at the reference path `segs` (ResultPath), creating
/// missing objects on the way. An empty path replaces the input.
pub(crate) fn apply_result_path(
    mut input: Value,
    segs: &[Seg],
    result: Value,
    text: &str,
) -> Result<Value, StatesError> {
    if segs.is_empty() {
        return Ok(result);
    }
    let fail = || {
        StatesError::runtime(format!(
            "Invalid path '{text}': The ResultPath field cannot be applied: the state's input is not an object at this path"
        ))
    };
    let mut cur = &mut input;
    let (last, init) = segs.split_last().ok_or_else(fail)?;
    for seg in init {
        cur = match seg {
            Seg::Key(k) => {
                let m = cur.as_object_mut().ok_or_else(fail)?;
                m.entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()))
            }
            Seg::Index(i) => {
                let a = cur.as_array_mut().ok_or_else(fail)?;
                let idx = usize::try_from(*i).map_err(|_| fail())?;
                a.get_mut(idx).ok_or_else(fail)?
            }
        };
    }
    match last {
        Seg::Key(k) => {
            cur.as_object_mut()
                .ok_or_else(fail)?
                .insert(k.clone(), result);
        }
        Seg::Index(i) => {
            let a = cur.as_array_mut().ok_or_else(fail)?;
            let idx = usize::try_from(*i).map_err(|_| fail())?;
            *a.get_mut(idx).ok_or_else(fail)? = result;
        }
    }
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct NoCtx;
    impl ContextSource for NoCtx {
        fn field(&self, name: &str) -> Option<Cow<'_, Value>> {
            (name == "Execution").then(|| Cow::Owned(json!({"Name": "exec-1"})))
        }
        fn whole(&self) -> Value {
            json!({"Execution": {"Name": "exec-1"}})
        }
    }

    fn get(path: &str, data: &Value) -> Result<Value, StatesError> {
        Path::parse(path)
            .map_err(StatesError::runtime)?
            .resolve(data, &NoCtx)
            .map(Cow::into_owned)
    }

    #[test]
    fn definite_paths_yield_the_value_itself() {
        let d = json!({"list": [{"field": 1}, {"field": 2}], "a-b": {"c d": 3}});
        assert_eq!(get("$.list[0].field", &d).unwrap(), json!(1));
        assert_eq!(get("$.list[-1].field", &d).unwrap(), json!(2));
        assert_eq!(get("$['a-b']['c d']", &d).unwrap(), json!(3));
        assert_eq!(get("$.a-b", &d).unwrap(), json!({"c d": 3}));
        assert_eq!(get("$", &d).unwrap(), d);
    }

    #[test]
    fn indefinite_paths_yield_lists() {
        let d = json!({"list": [{"f": 1}, {"f": 2}, {"g": 3}]});
        assert_eq!(get("$.list[*].f", &d).unwrap(), json!([1, 2]));
        assert_eq!(get("$.list[?(@.f > 1)].f", &d).unwrap(), json!([2]));
        assert_eq!(get("$.list[0:1]", &d).unwrap(), json!([{"f": 1}]));
        assert_eq!(get("$..g", &d).unwrap(), json!([3]));
        assert_eq!(get("$.list[*].zzz", &d).unwrap(), json!([]));
    }

    #[test]
    fn missing_definite_path_is_runtime_error() {
        let d = json!({"a": 1});
        let e = get("$.b", &d).unwrap_err();
        assert_eq!(e.error, "States.Runtime");
        assert!(e.cause.contains("$.b"));
        assert!(get("$.a.b", &d).is_err());
    }

    #[test]
    fn context_paths() {
        let d = json!({});
        assert_eq!(get("$$.Execution.Name", &d).unwrap(), json!("exec-1"));
        assert!(get("$$.Nope", &d).is_err());
    }

    #[test]
    fn result_path_creates_objects() {
        let segs = Path::parse_reference("$.a.b").unwrap();
        let out = apply_result_path(json!({"x": 1}), &segs, json!(2), "$.a.b").unwrap();
        assert_eq!(out, json!({"x": 1, "a": {"b": 2}}));
        let out = apply_result_path(json!({"x": 1}), &[], json!(2), "$").unwrap();
        assert_eq!(out, json!(2));
        assert!(apply_result_path(json!(5), &segs, json!(2), "$.a.b").is_err());
        assert!(Path::parse_reference("$.a[*]").is_err());
        assert!(Path::parse_reference("$$.a").is_err());
    }
}
