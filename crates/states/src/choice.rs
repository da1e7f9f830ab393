//! Choice rules: parsing at load time and evaluation.

use std::cmp::Ordering;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::{LoadError, StatesError};
use crate::paths::{ContextSource, Path};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeTest {
    Null,
    Present,
    Numeric,
    String,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Literal(Value),
    Path(Path),
}

#[derive(Debug, Clone)]
pub(crate) enum Test {
    Compare(Family, Cmp, Operand),
    Matches(String),
    Is(TypeTest, bool),
}

/// A boolean expression of a Choice rule.
#[derive(Debug, Clone)]
pub(crate) enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Test { variable: Path, test: Test },
}

fn comparison(op: &str) -> Option<(Family, Cmp, bool)> {
    let (op, is_path) = match op.strip_suffix("Path") {
        Some(base) => (base, true),
        None => (op, false),
    };
    let (family, rest) = [
        ("String", Family::String),
        ("Numeric", Family::Numeric),
        ("Boolean", Family::Boolean),
        ("Timestamp", Family::Timestamp),
    ]
    .iter()
    .find_map(|(p, f)| op.strip_prefix(p).map(|r| (*f, r)))?;
    let cmp = match rest {
        "Equals" => Cmp::Eq,
        "LessThan" => Cmp::Lt,
        "GreaterThan" => Cmp::Gt,
        "LessThanEquals" => Cmp::Le,
        "GreaterThanEquals" => Cmp::Ge,
        _ => return None,
    };
    if family == Family::Boolean && cmp != Cmp::Eq {
        return None;
    }
    Some((family, cmp, is_path))
}

fn type_test(op: &str) -> Option<TypeTest> {
    Some(match op {
        "IsNull" => TypeTest::Null,
        "IsPresent" => TypeTest::Present,
        "IsNumeric" => TypeTest::Numeric,
        "IsString" => TypeTest::String,
        "IsBoolean" => TypeTest::Boolean,
        "IsTimestamp" => TypeTest::Timestamp,
        _ => return None,
    })
}

pub(crate) fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Parses one rule. `top` rules carry `Next`; nested ones must not.
pub(crate) fn parse_rule(state: &str, v: &Value, top: bool) -> Result<Rule, LoadError> {
    let field = "Choices";
    let obj: &Map<String, Value> = v
        .as_object()
        .ok_or_else(|| LoadError::new(state, field, "a choice rule must be an object"))?;
    let mut rule: Option<Rule> = None;
    let mut variable: Option<Path> = None;
    let mut test: Option<Test> = None;
    let set_rule = |rule: &mut Option<Rule>, r: Rule, k: &str| {
        if rule.is_some() {
            return Err(LoadError::new(
                state,
                field,
                format!("a choice rule has more than one of And/Or/Not ('{k}')"),
            ));
        }
        *rule = Some(r);
        Ok(())
    };
    for (k, val) in obj {
        match k.as_str() {
            "Next" if top => {}
            "Comment" => {}
            "Variable" => {
                let s = val
                    .as_str()
                    .ok_or_else(|| LoadError::new(state, field, "'Variable' must be a string"))?;
                variable = Some(Path::parse(s).map_err(|e| LoadError::new(state, field, e))?);
            }
            "And" | "Or" => {
                let list = val.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
                    LoadError::new(state, field, format!("'{k}' must be a non-empty array"))
                })?;
                let rules = list
                    .iter()
                    .map(|r| parse_rule(state, r, false))
                    .collect::<Result<Vec<_>, _>>()?;
                set_rule(
                    &mut rule,
                    if k == "And" {
                        Rule::And(rules)
                    } else {
                        Rule::Or(rules)
                    },
                    k,
                )?;
            }
            "Not" => {
                let r = parse_rule(state, val, false)?;
                set_rule(&mut rule, Rule::Not(Box::new(r)), k)?;
            }
            op => {
                let t = if let Some((family, cmp, is_path)) = comparison(op) {
                    let operand = if is_path {
                        let s = val.as_str().ok_or_else(|| {
                            LoadError::new(state, field, format!("'{op}' must be a path string"))
                        })?;
                        Operand::Path(Path::parse(s).map_err(|e| LoadError::new(state, field, e))?)
                    } else {
                        let ok = match family {
                            Family::String => val.is_string(),
                            Family::Numeric => val.is_number(),
                            Family::Boolean => val.is_boolean(),
                            Family::Timestamp => val.as_str().and_then(parse_timestamp).is_some(),
                        };
                        if !ok {
                            return Err(LoadError::new(
                                state,
                                field,
                                format!("'{op}' has an operand of the wrong type: {val}"),
                            ));
                        }
                        Operand::Literal(val.clone())
                    };
                    Test::Compare(family, cmp, operand)
                } else if op == "StringMatches" {
                    let s = val.as_str().ok_or_else(|| {
                        LoadError::new(state, field, "'StringMatches' must be a string")
                    })?;
                    Test::Matches(s.to_owned())
                } else if let Some(tt) = type_test(op) {
                    let b = val.as_bool().ok_or_else(|| {
                        LoadError::new(state, field, format!("'{op}' must be true or false"))
                    })?;
                    Test::Is(tt, b)
                } else if op == "Next" {
                    return Err(LoadError::new(
                        state,
                        field,
                        "a nested choice rule must not have 'Next'",
                    ));
                } else {
                    return Err(LoadError::new(
                        state,
                        field,
                        format!("unknown choice rule field '{op}'"),
                    ));
                };
                if test.is_some() {
                    return Err(LoadError::new(
                        state,
                        field,
                        format!("a choice rule has more than one comparison operator ('{op}')"),
                    ));
                }
                test = Some(t);
            }
        }
    }
    if top && !obj.contains_key("Next") {
        return Err(LoadError::new(
            state,
            field,
            "a choice rule must have 'Next'",
        ));
    }
    match (rule, variable, test) {
        (Some(r), None, None) => Ok(r),
        (None, Some(variable), Some(test)) => Ok(Rule::Test { variable, test }),
        (None, Some(_), None) => Err(LoadError::new(
            state,
            field,
            "a choice rule with 'Variable' needs a comparison operator",
        )),
        (None, None, Some(_)) => Err(LoadError::new(
            state,
            field,
            "a comparison needs 'Variable'",
        )),
        _ => Err(LoadError::new(
            state,
            field,
            "a choice rule must be either And/Or/Not or a Variable with one comparison",
        )),
    }
}

fn string_matches(s: &str, pattern: &str) -> bool {
    // Tokens: literal chars and '*' wildcards; '\*' and '\\' are literals.
    enum Tok {
        Lit(char),
        Star,
    }
    let mut toks = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => toks.push(Tok::Lit(it.next().unwrap_or('\\'))),
            '*' => toks.push(Tok::Star),
            c => toks.push(Tok::Lit(c)),
        }
    }
    let s: Vec<char> = s.chars().collect();
    // Classic wildcard matching with backtracking on the last star.
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match toks.get(j) {
            Some(Tok::Lit(c)) if *c == s[i] => {
                i += 1;
                j += 1;
            }
            Some(Tok::Star) => {
                star = Some((j, i));
                j += 1;
            }
            _ => match star {
                Some((sj, si)) => {
                    j = sj + 1;
                    i = si + 1;
                    star = Some((sj, si + 1));
                }
                None => return false,
            },
        }
    }
    toks[j..].iter().all(|t| matches!(t, Tok::Star))
}

fn compare(family: Family, a: &Value, b: &Value) -> Option<Ordering> {
    match family {
        Family::String => Some(a.as_str()?.cmp(b.as_str()?)),
        Family::Numeric => a.as_f64()?.partial_cmp(&b.as_f64()?),
        Family::Boolean => (a.as_bool()? == b.as_bool()?).then_some(Ordering::Equal),
        Family::Timestamp => {
            Some(parse_timestamp(a.as_str()?)?.cmp(&parse_timestamp(b.as_str()?)?))
        }
    }
}

impl Rule {
    /// Evaluates the rule. A `Variable` (or `...Path` operand) that does not resolve is
    /// `States.Runtime`, except for `IsPresent`.
    pub(crate) fn eval(&self, data: &Value, ctx: &dyn ContextSource) -> Result<bool, StatesError> {
        match self {
            Rule::And(rules) => {
                for r in rules {
                    if !r.eval(data, ctx)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Rule::Or(rules) => {
                for r in rules {
                    if r.eval(data, ctx)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Rule::Not(r) => Ok(!r.eval(data, ctx)?),
            Rule::Test { variable, test } => {
                if let Test::Is(TypeTest::Present, expected) = test {
                    return Ok(variable.is_present(data, ctx) == *expected);
                }
                let value = variable.resolve(data, ctx).map_err(|_| {
                    StatesError::runtime(format!(
                        "Invalid path '{}': The choice state's condition path references an invalid value.",
                        variable.text()
                    ))
                })?;
                let value = value.as_ref();
                Ok(match test {
                    Test::Is(tt, expected) => {
                        let is = match tt {
                            TypeTest::Null => value.is_null(),
                            TypeTest::Present => true,
                            TypeTest::Numeric => value.is_number(),
                            TypeTest::String => value.is_string(),
                            TypeTest::Boolean => value.is_boolean(),
                            TypeTest::Timestamp => {
                                value.as_str().and_then(parse_timestamp).is_some()
                            }
                        };
                        is == *expected
                    }
                    Test::Matches(p) => value.as_str().is_some_and(|s| string_matches(s, p)),
                    Test::Compare(family, cmp, operand) => {
                        let other = match operand {
                            Operand::Literal(v) => std::borrow::Cow::Borrowed(v),
                            Operand::Path(p) => p.resolve(data, ctx).map_err(|_| {
                                StatesError::runtime(format!(
                                    "Invalid path '{}': The choice state's condition path references an invalid value.",
                                    p.text()
                                ))
                            })?,
                        };
                        match compare(*family, value, &other) {
                            None => false,
                            Some(o) => match cmp {
                                Cmp::Eq => o == Ordering::Equal,
                                Cmp::Lt => o == Ordering::Less,
                                Cmp::Gt => o == Ordering::Greater,
                                Cmp::Le => o != Ordering::Greater,
                                Cmp::Ge => o != Ordering::Less,
                            },
                        }
                    }
                })
            }
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

    fn check(rule: Value, data: Value) -> Result<bool, StatesError> {
        parse_rule("S", &rule, false).unwrap().eval(&data, &NoCtx)
    }

    #[test]
    fn operators() {
        let d = json!({"s": "abc", "n": 5, "b": true, "t": "2024-01-01T00:00:00Z", "t2": "2024-06-01T00:00:00+02:00", "z": null, "m": 5.0});
        assert!(check(json!({"Variable": "$.s", "StringEquals": "abc"}), d.clone()).unwrap());
        assert!(check(
            json!({"Variable": "$.s", "StringLessThan": "abd"}),
            d.clone()
        )
        .unwrap());
        assert!(check(
            json!({"Variable": "$.s", "StringGreaterThanEquals": "abc"}),
            d.clone()
        )
        .unwrap());
        assert!(check(
            json!({"Variable": "$.n", "NumericGreaterThan": 4}),
            d.clone()
        )
        .unwrap());
        assert!(check(
            json!({"Variable": "$.n", "NumericEqualsPath": "$.m"}),
            d.clone()
        )
        .unwrap());
        assert!(check(
            json!({"Variable": "$.n", "NumericLessThanEquals": 5.0}),
            d.clone()
        )
        .unwrap());
        assert!(!check(json!({"Variable": "$.s", "NumericEquals": 5}), d.clone()).unwrap());
        assert!(check(json!({"Variable": "$.b", "BooleanEquals": true}), d.clone()).unwrap());
        assert!(check(
            json!({"Variable": "$.t", "TimestampLessThanPath": "$.t2"}),
            d.clone()
        )
        .unwrap());
        assert!(check(
            json!({"Variable": "$.t", "TimestampEquals": "2024-01-01T01:00:00+01:00"}),
            d.clone()
        )
        .unwrap());
        assert!(check(json!({"Variable": "$.z", "IsNull": true}), d.clone()).unwrap());
        assert!(check(json!({"Variable": "$.nope", "IsPresent": false}), d.clone()).unwrap());
        assert!(check(json!({"Variable": "$.t", "IsTimestamp": true}), d.clone()).unwrap());
        assert!(check(json!({"Variable": "$.s", "IsString": true}), d.clone()).unwrap());
        assert!(check(json!({"Variable": "$.n", "IsNumeric": true}), d.clone()).unwrap());
        assert!(check(json!({"Variable": "$.b", "IsBoolean": true}), d.clone()).unwrap());
        assert!(check(json!({"And": [{"Variable": "$.n", "NumericEquals": 5}, {"Not": {"Variable": "$.s", "StringEquals": "x"}}]}), d.clone()).unwrap());
        assert!(check(json!({"Or": [{"Variable": "$.n", "NumericEquals": 1}, {"Variable": "$.b", "BooleanEquals": true}]}), d.clone()).unwrap());
        assert_eq!(
            check(json!({"Variable": "$.nope", "StringEquals": "x"}), d)
                .unwrap_err()
                .error,
            "States.Runtime"
        );
    }

    #[test]
    fn wildcards() {
        assert!(string_matches("log-2024.txt", "log-*.txt"));
        assert!(string_matches("anything", "*"));
        assert!(string_matches("a*b", r"a\*b"));
        assert!(!string_matches("axb", r"a\*b"));
        assert!(string_matches("abcbc", "*bc"));
        assert!(!string_matches("abc", "ab"));
        assert!(string_matches("", "*"));
    }

    #[test]
    fn load_errors() {
        assert!(parse_rule("S", &json!({"Variable": "$.a", "StringEquals": 1}), false).is_err());
        assert!(parse_rule("S", &json!({"Variable": "$.a", "Foo": 1}), false).is_err());
        assert!(parse_rule("S", &json!({"Variable": "$.a", "StringEquals": "x"}), true).is_err());
        assert!(parse_rule(
            "S",
            &json!({"Variable": "$.a", "BooleanLessThan": true}),
            false
        )
        .is_err());
    }
}
