//! Intrinsic functions (`States.Format(...)` and friends), parsed at load time.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::error::StatesError;
use crate::paths::{ContextSource, Path};

/// Every intrinsic function of the JSONPath query language.
const FUNCTIONS: &[&str] = &[
    "Format",
    "StringToJson",
    "JsonToString",
    "Array",
    "ArrayPartition",
    "ArrayContains",
    "ArrayRange",
    "ArrayGetItem",
    "ArrayLength",
    "ArrayUnique",
    "Base64Encode",
    "Base64Decode",
    "Hash",
    "JsonMerge",
    "MathRandom",
    "MathAdd",
    "StringSplit",
    "UUID",
];

#[derive(Debug, Clone)]
enum Arg {
    /// A string literal as written between quotes (escapes still in place).
    Str(String),
    Literal(Value),
    Path(Path),
    Call(Box<Call>),
}

/// A parsed intrinsic function call.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    name: &'static str,
    args: Vec<Arg>,
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn err(&self, what: &str) -> String {
        format!("invalid intrinsic function '{}': {what}", self.text)
    }

    fn call(&mut self) -> Result<Call, String> {
        self.ws();
        let rest = &self.text[self.i..];
        let Some(after) = rest.strip_prefix("States.") else {
            return Err(self.err("expected 'States.<Function>('"));
        };
        let len = after
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        let fname = &after[..len];
        let name = FUNCTIONS
            .iter()
            .find(|f| **f == fname)
            .ok_or_else(|| self.err(&format!("unknown function 'States.{fname}'")))?;
        self.i += "States.".len() + len;
        self.ws();
        if self.s.get(self.i) != Some(&b'(') {
            return Err(self.err("expected '('"));
        }
        self.i += 1;
        let mut args = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b')') {
            self.i += 1;
            return Ok(Call { name, args });
        }
        loop {
            args.push(self.arg()?);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b')') => {
                    self.i += 1;
                    return Ok(Call { name, args });
                }
                _ => return Err(self.err("expected ',' or ')'")),
            }
        }
    }

    fn arg(&mut self) -> Result<Arg, String> {
        self.ws();
        let rest = &self.text[self.i..];
        match self.s.get(self.i) {
            Some(b'\'') => {
                let mut j = self.i + 1;
                loop {
                    match self.s.get(j) {
                        None => return Err(self.err("unterminated string")),
                        Some(b'\\') => j += 2,
                        Some(b'\'') => break,
                        Some(_) => j += 1,
                    }
                }
                let raw = self.text[self.i + 1..j].to_owned();
                self.i = j + 1;
                Ok(Arg::Str(raw))
            }
            Some(b'$') => {
                // A path runs to the next ',' or ')' outside brackets, parentheses and quotes.
                let mut depth = 0i32;
                let mut quote: Option<u8> = None;
                let mut j = self.i;
                while let Some(&c) = self.s.get(j) {
                    match (quote, c) {
                        (Some(q), c) if c == q => quote = None,
                        (Some(_), _) => {}
                        (None, b'\'' | b'"') => quote = Some(c),
                        (None, b'[' | b'(') => depth += 1,
                        (None, b']') => depth -= 1,
                        (None, b')') if depth > 0 => depth -= 1,
                        (None, b',' | b')') if depth == 0 => break,
                        _ => {}
                    }
                    j += 1;
                }
                let p = self.text[self.i..j].trim_end();
                self.i = j;
                Ok(Arg::Path(Path::parse(p).map_err(|e| self.err(&e))?))
            }
            _ if rest.starts_with("States.") => Ok(Arg::Call(Box::new(self.call()?))),
            _ => {
                let len = rest.find([',', ')']).unwrap_or(rest.len());
                let tok = rest[..len].trim();
                self.i += len;
                match tok {
                    "true" => Ok(Arg::Literal(Value::Bool(true))),
                    "false" => Ok(Arg::Literal(Value::Bool(false))),
                    "null" => Ok(Arg::Literal(Value::Null)),
                    _ => serde_json::from_str::<Number>(tok)
                        .map(|n| Arg::Literal(Value::Number(n)))
                        .map_err(|_| self.err(&format!("invalid argument '{tok}'"))),
                }
            }
        }
    }
}

/// Parses an intrinsic function call such as `States.Format('{}', $.name)`.
pub(crate) fn parse(text: &str) -> Result<Call, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    let call = p.call()?;
    p.ws();
    if p.i != text.len() {
        return Err(p.err("unexpected text after the closing ')'"));
    }
    Ok(call)
}

/// Decodes a string literal; `keep_braces` keeps `\{` and `\}` escaped for States.Format.
fn unescape(raw: &str, keep_braces: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('{' | '}')) if keep_braces => {
                    out.push('\\');
                    out.push(n);
                }
                Some(n) => out.push(n),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn bad(name: &str, why: impl std::fmt::Display) -> StatesError {
    StatesError::runtime(format!("Invalid arguments in States.{name}: {why}"))
}

fn num_i64(name: &str, v: &Value) -> Result<i64, StatesError> {
    match v.as_i64() {
        Some(n) => Ok(n),
        None => match v.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
            _ => Err(bad(name, format!("expected an integer, got {v}"))),
        },
    }
}

fn as_str<'v>(name: &str, v: &'v Value) -> Result<&'v str, StatesError> {
    v.as_str()
        .ok_or_else(|| bad(name, format!("expected a string, got {v}")))
}

fn as_arr<'v>(name: &str, v: &'v Value) -> Result<&'v Vec<Value>, StatesError> {
    v.as_array()
        .ok_or_else(|| bad(name, format!("expected an array, got {v}")))
}

fn arity(
    name: &str,
    args: &[Value],
    n: std::ops::RangeInclusive<usize>,
) -> Result<(), StatesError> {
    if n.contains(&args.len()) {
        Ok(())
    } else {
        Err(bad(
            name,
            format!("expected {} argument(s), got {}", n.start(), args.len()),
        ))
    }
}

/// Equality as JSON values, with numbers compared by value (1 == 1.0).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
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

fn format_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::from(f as i64)
    } else {
        Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

impl Call {
    /// Evaluates the call against the state's data and context.
    pub(crate) fn eval(&self, data: &Value, ctx: &dyn ContextSource) -> Result<Value, StatesError> {
        let name = self.name;
        // States.Format keeps its template's escaped braces until it substitutes.
        let mut args = Vec::with_capacity(self.args.len());
        for (i, a) in self.args.iter().enumerate() {
            args.push(match a {
                Arg::Str(raw) => Value::String(unescape(raw, name == "Format" && i == 0)),
                Arg::Literal(v) => v.clone(),
                Arg::Path(p) => p.resolve(data, ctx)?.into_owned(),
                Arg::Call(c) => c.eval(data, ctx)?,
            });
        }
        let a = &args;
        match name {
            "Format" => {
                if a.is_empty() {
                    return Err(bad(name, "expected a template"));
                }
                let template = as_str(name, &a[0])?;
                let mut out = String::new();
                let mut values = a[1..].iter();
                let mut chars = template.chars().peekable();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                out.push(n);
                            }
                        }
                        '{' if chars.peek() == Some(&'}') => {
                            chars.next();
                            let v = values
                                .next()
                                .ok_or_else(|| bad(name, "more '{}' than arguments"))?;
                            if v.is_object() || v.is_array() {
                                return Err(bad(
                                    name,
                                    "arguments must be strings, numbers, booleans or null",
                                ));
                            }
                            out.push_str(&format_value(v));
                        }
                        c => out.push(c),
                    }
                }
                if values.next().is_some() {
                    return Err(bad(name, "more arguments than '{}'"));
                }
                Ok(Value::String(out))
            }
            "StringToJson" => {
                arity(name, a, 1..=1)?;
                serde_json::from_str(as_str(name, &a[0])?).map_err(|e| bad(name, e))
            }
            "JsonToString" => {
                arity(name, a, 1..=1)?;
                Ok(Value::String(a[0].to_string()))
            }
            "Array" => Ok(Value::Array(args)),
            "ArrayPartition" => {
                arity(name, a, 2..=2)?;
                let arr = as_arr(name, &a[0])?;
                let size = num_i64(name, &a[1])?;
                let size = usize::try_from(size)
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| bad(name, "chunk size must be a positive integer"))?;
                Ok(Value::Array(
                    arr.chunks(size).map(|c| Value::Array(c.to_vec())).collect(),
                ))
            }
            "ArrayContains" => {
                arity(name, a, 2..=2)?;
                let arr = as_arr(name, &a[0])?;
                Ok(Value::Bool(arr.iter().any(|x| json_eq(x, &a[1]))))
            }
            "ArrayRange" => {
                arity(name, a, 3..=3)?;
                let (start, end, step) = (
                    num_i64(name, &a[0])?,
                    num_i64(name, &a[1])?,
                    num_i64(name, &a[2])?,
                );
                if step == 0 {
                    return Err(bad(name, "step must not be 0"));
                }
                let mut out = Vec::new();
                let mut x = start;
                while (step > 0 && x <= end) || (step < 0 && x >= end) {
                    out.push(Value::from(x));
                    if out.len() > 1000 {
                        return Err(bad(name, "the range has more than 1000 items"));
                    }
                    match x.checked_add(step) {
                        Some(n) => x = n,
                        None => break,
                    }
                }
                Ok(Value::Array(out))
            }
            "ArrayGetItem" => {
                arity(name, a, 2..=2)?;
                let arr = as_arr(name, &a[0])?;
                let idx = num_i64(name, &a[1])?;
                usize::try_from(idx)
                    .ok()
                    .and_then(|i| arr.get(i))
                    .cloned()
                    .ok_or_else(|| bad(name, format!("index {idx} is out of bounds")))
            }
            "ArrayLength" => {
                arity(name, a, 1..=1)?;
                Ok(Value::from(as_arr(name, &a[0])?.len()))
            }
            "ArrayUnique" => {
                arity(name, a, 1..=1)?;
                let mut out: Vec<Value> = Vec::new();
                for x in as_arr(name, &a[0])? {
                    if !out.iter().any(|y| json_eq(x, y)) {
                        out.push(x.clone());
                    }
                }
                Ok(Value::Array(out))
            }
            "Base64Encode" => {
                arity(name, a, 1..=1)?;
                let s = as_str(name, &a[0])?;
                if s.chars().count() > 10_000 {
                    return Err(bad(name, "input is longer than 10000 characters"));
                }
                Ok(Value::String(
                    base64::engine::general_purpose::STANDARD.encode(s),
                ))
            }
            "Base64Decode" => {
                arity(name, a, 1..=1)?;
                let s = as_str(name, &a[0])?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| bad(name, e))?;
                String::from_utf8(bytes)
                    .map(Value::String)
                    .map_err(|e| bad(name, e))
            }
            "Hash" => {
                arity(name, a, 2..=2)?;
                let data = match &a[0] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let bytes = data.as_bytes();
                let digest = match as_str(name, &a[1])? {
                    "MD5" => {
                        use md5::Digest;
                        hex::encode(md5::Md5::digest(bytes))
                    }
                    "SHA-1" => {
                        use sha1::Digest;
                        hex::encode(sha1::Sha1::digest(bytes))
                    }
                    "SHA-256" => {
                        use sha2::Digest;
                        hex::encode(sha2::Sha256::digest(bytes))
                    }
                    "SHA-384" => {
                        use sha2::Digest;
                        hex::encode(sha2::Sha384::digest(bytes))
                    }
                    "SHA-512" => {
                        use sha2::Digest;
                        hex::encode(sha2::Sha512::digest(bytes))
                    }
                    other => return Err(bad(name, format!("unsupported algorithm '{other}' (MD5, SHA-1, SHA-256, SHA-384, SHA-512)"))),
                };
                Ok(Value::String(digest))
            }
            "JsonMerge" => {
                arity(name, a, 3..=3)?;
                let (Value::Object(x), Value::Object(y)) = (&a[0], &a[1]) else {
                    return Err(bad(name, "the first two arguments must be objects"));
                };
                if a[2] != Value::Bool(false) {
                    return Err(bad(name, "only shallow merging (false) is supported"));
                }
                let mut out: Map<String, Value> = x.clone();
                for (k, v) in y {
                    out.insert(k.clone(), v.clone());
                }
                Ok(Value::Object(out))
            }
            "MathRandom" => {
                arity(name, a, 2..=3)?;
                let (start, end) = (num_i64(name, &a[0])?, num_i64(name, &a[1])?);
                if end < start {
                    return Err(bad(name, "end must not be smaller than start"));
                }
                let n = if let Some(seed) = a.get(2) {
                    use rand::{Rng, SeedableRng};
                    let seed = num_i64(name, seed)?;
                    rand::rngs::StdRng::seed_from_u64(seed as u64).random_range(start..=end)
                } else {
                    rand::random_range(start..=end)
                };
                Ok(Value::from(n))
            }
            "MathAdd" => {
                arity(name, a, 2..=2)?;
                match (a[0].as_i64(), a[1].as_i64()) {
                    (Some(x), Some(y)) => x
                        .checked_add(y)
                        .map(Value::from)
                        .ok_or_else(|| bad(name, "integer overflow")),
                    _ => match (a[0].as_f64(), a[1].as_f64()) {
                        (Some(x), Some(y)) => Ok(number(x + y)),
                        _ => Err(bad(name, "arguments must be numbers")),
                    },
                }
            }
            "StringSplit" => {
                arity(name, a, 2..=2)?;
                let s = as_str(name, &a[0])?;
                let delims: Vec<char> = as_str(name, &a[1])?.chars().collect();
                Ok(Value::Array(
                    s.split(|c| delims.contains(&c))
                        .filter(|p| !p.is_empty())
                        .map(|p| Value::String(p.to_owned()))
                        .collect(),
                ))
            }
            "UUID" => {
                arity(name, a, 0..=0)?;
                Ok(Value::String(uuid::Uuid::new_v4().to_string()))
            }
            other => Err(bad(other, "unknown function")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::borrow::Cow;

    struct NoCtx;
    impl ContextSource for NoCtx {
        fn field(&self, _: &str) -> Option<Cow<'_, Value>> {
            None
        }
        fn whole(&self) -> Value {
            json!({})
        }
    }

    fn ev(text: &str, data: Value) -> Result<Value, StatesError> {
        parse(text)
            .map_err(StatesError::runtime)?
            .eval(&data, &NoCtx)
    }

    #[test]
    fn format_and_escapes() {
        let d = json!({"name": "Ann", "n": 3, "b": true});
        assert_eq!(
            ev(
                "States.Format('Hello, {} has {} ({})', $.name, $.n, $.b)",
                d.clone()
            )
            .unwrap(),
            json!("Hello, Ann has 3 (true)")
        );
        assert_eq!(
            ev(r"States.Format('it\'s \{literal\} {}', 'x')", d.clone()).unwrap(),
            json!("it's {literal} x")
        );
        assert_eq!(
            ev("States.Format('{}')", d.clone()).unwrap_err().error,
            "States.Runtime"
        );
        assert!(ev("States.Format('x', 1)", d).is_err());
    }

    #[test]
    fn arrays() {
        let d = json!({"a": [1, 2, 2, 3, 4], "v": 2});
        assert_eq!(
            ev("States.ArrayContains($.a, $.v)", d.clone()).unwrap(),
            json!(true)
        );
        assert_eq!(
            ev("States.ArrayContains($.a, 9)", d.clone()).unwrap(),
            json!(false)
        );
        assert_eq!(ev("States.ArrayLength($.a)", d.clone()).unwrap(), json!(5));
        assert_eq!(
            ev("States.ArrayUnique($.a)", d.clone()).unwrap(),
            json!([1, 2, 3, 4])
        );
        assert_eq!(
            ev("States.ArrayGetItem($.a, 3)", d.clone()).unwrap(),
            json!(3)
        );
        assert_eq!(
            ev("States.ArrayPartition($.a, 2)", d.clone()).unwrap(),
            json!([[1, 2], [2, 3], [4]])
        );
        assert_eq!(
            ev("States.ArrayRange(1, 9, 3)", d.clone()).unwrap(),
            json!([1, 4, 7])
        );
        assert_eq!(
            ev(
                "States.Array('a', 1, true, null, $.v, States.ArrayLength($.a))",
                d.clone()
            )
            .unwrap(),
            json!(["a", 1, true, null, 2, 5])
        );
        assert!(ev("States.ArrayGetItem($.a, 9)", d.clone()).is_err());
        assert!(ev("States.ArrayRange(1, 5000, 1)", d).is_err());
    }

    #[test]
    fn strings_json_math_hash() {
        let d = json!({"s": "a,b+c", "j": "{\"x\":[1]}", "o": {"x": 1}});
        assert_eq!(
            ev("States.StringSplit($.s, ',+')", d.clone()).unwrap(),
            json!(["a", "b", "c"])
        );
        assert_eq!(
            ev("States.StringToJson($.j)", d.clone()).unwrap(),
            json!({"x": [1]})
        );
        assert_eq!(
            ev("States.JsonToString($.o)", d.clone()).unwrap(),
            json!("{\"x\":1}")
        );
        assert_eq!(ev("States.MathAdd(40, -2)", d.clone()).unwrap(), json!(38));
        assert_eq!(
            ev(
                "States.JsonMerge($.o, States.StringToJson('{\"y\":2}'), false)",
                d.clone()
            )
            .unwrap(),
            json!({"x": 1, "y": 2})
        );
        assert_eq!(
            ev("States.Base64Encode('hello')", d.clone()).unwrap(),
            json!("aGVsbG8=")
        );
        assert_eq!(
            ev("States.Base64Decode('aGVsbG8=')", d.clone()).unwrap(),
            json!("hello")
        );
        assert_eq!(
            ev("States.Hash('hello', 'SHA-256')", d.clone()).unwrap(),
            json!("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        );
        assert_eq!(
            ev("States.Hash('hello', 'MD5')", d.clone()).unwrap(),
            json!("5d41402abc4b2a76b9719d911017c592")
        );
        let r = ev("States.MathRandom(1, 10)", d.clone())
            .unwrap()
            .as_i64()
            .unwrap();
        assert!((1..=10).contains(&r));
        assert_eq!(
            ev("States.UUID()", d.clone())
                .unwrap()
                .as_str()
                .unwrap()
                .len(),
            36
        );
        let id = ev("States.UUID()", d.clone()).unwrap();
        let id = uuid::Uuid::parse_str(id.as_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 4);
        assert!(ev("States.JsonMerge($.o, $.o, true)", d).is_err());
    }

    #[test]
    fn parse_errors() {
        assert!(parse("States.Nope(1)").is_err());
        assert!(parse("States.Format('x'").is_err());
        assert!(parse("States.Format('x') extra").is_err());
        assert!(parse("States.ArrayLength($.a[?(@.x == 1)])").is_ok());
    }
}
