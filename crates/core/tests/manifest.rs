//! The manifest rules of ARCHITECTURE.md §3, one test per rule or bad-input class.
//!
//! Every rejection is checked for the exact path(s) it names and for a message that tells a
//! user what is wrong and what would be right.

use rm_core::error::{Rejection, ValidationError};
use rm_core::manifest::{
    Manifest, OnFailure, PipelineSpec, DEFAULT_MAX_CONCURRENCY, DEFAULT_TIMEOUT_MINUTES,
    MAX_MANIFEST_BYTES, MAX_PIPELINES,
};
use serde_json::{json, Value};
use std::path::PathBuf;

// ---------------------------------------------------------------------------------------------
// Helpers

fn parse(text: &str) -> Manifest {
    match Manifest::parse(text.as_bytes()) {
        Ok(m) => m,
        Err(e) => panic!("expected {text:?} to be valid, got {e}"),
    }
}

fn parse_value(v: &Value) -> Manifest {
    parse(&v.to_string())
}

fn errors_bytes(bytes: &[u8]) -> Vec<ValidationError> {
    match Manifest::parse(bytes) {
        Ok(m) => panic!(
            "expected {:?} to be rejected, got {m:?}",
            String::from_utf8_lossy(bytes)
        ),
        Err(Rejection(errors)) => {
            assert!(!errors.is_empty(), "a rejection must carry its errors");
            errors
        }
    }
}

fn errors(text: &str) -> Vec<ValidationError> {
    errors_bytes(text.as_bytes())
}

fn errors_value(v: &Value) -> Vec<ValidationError> {
    errors(&v.to_string())
}

/// Asserts exactly one error, at `path`, whose message contains every one of `words`.
#[track_caller]
fn assert_one(errors: &[ValidationError], path: &str, words: &[&str]) {
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error at {path}, got {errors:#?}"
    );
    assert_error(&errors[0], path, words);
}

#[track_caller]
fn assert_error(e: &ValidationError, path: &str, words: &[&str]) {
    assert_eq!(e.path, path, "wrong path in {e:?}");
    for w in words {
        assert!(
            e.message.contains(w),
            "message {:?} at {} should mention {w:?}",
            e.message,
            e.path
        );
    }
}

fn paths(errors: &[ValidationError]) -> Vec<&str> {
    errors.iter().map(|e| e.path.as_str()).collect()
}

/// A valid manifest with one pipeline object whose fields are `fields` (merged over a name).
fn with_pipeline(fields: Value) -> Value {
    let mut p = json!({"name": "app"});
    p.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    json!({"releaseId": "r1", "pipelines": [p]})
}

/// A valid manifest with top-level `fields` merged in.
fn with_top(fields: Value) -> Value {
    let mut m = json!({"releaseId": "r1", "pipelines": ["app"]});
    m.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    m
}

fn revision(action: &str, kind: &str, value: &str) -> Value {
    json!({"actionName": action, "revisionType": kind, "revisionValue": value})
}

fn shared_seed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/seed/original-release-manifest.json")
}

// ---------------------------------------------------------------------------------------------
// The seed's format and release ids

#[test]
fn the_seed_manifest_file_is_accepted() {
    let path = shared_seed();
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("the seed manifest {} must exist: {e}", path.display()));
    let m = Manifest::parse(&bytes).unwrap_or_else(|e| panic!("seed rejected: {e}"));
    assert_eq!(m.release_id.as_str(), "5.15");
    assert_eq!(
        m.pipelines,
        vec![PipelineSpec::new(
            "pipeline-for-stepfunctions-pipeline-repo-3",
            1
        )]
    );
    assert_eq!(m.max_concurrency, DEFAULT_MAX_CONCURRENCY);
    assert_eq!(m.on_failure, OnFailure::Stop);
    assert_eq!(m.description, None);
}

#[test]
fn the_seed_format_is_accepted() {
    let m = parse(r#"{"releaseId": 5.15, "pipelines": ["a"]}"#);
    assert_eq!(m.release_id.as_str(), "5.15");
    assert_eq!(m.pipelines, vec![PipelineSpec::new("a", 1)]);
}

#[test]
fn a_numeric_release_id_keeps_its_text_exactly() {
    for (written, kept) in [
        ("5.10", "5.10"),
        ("5.1", "5.1"),
        ("5.15", "5.15"),
        ("7", "7"),
        ("0", "0"),
        ("0.0", "0.0"),
        ("2024.10", "2024.10"),
        ("1.000", "1.000"),
        // Past f64's precision: still the digits as written.
        ("12345678901234567890123", "12345678901234567890123"),
        ("0.30000000000000000000001", "0.30000000000000000000001"),
        // An exponent is kept as written too: its text is letters, digits and '.' or '-'.
        ("1e3", "1e3"),
        ("1E3", "1E3"),
        ("1.5e-3", "1.5e-3"),
        // A negative number's text is a valid id ('-' and digits), like the string "-1".
        ("-1", "-1"),
        ("-0.50", "-0.50"),
    ] {
        let m = parse(&format!(
            r#"{{"releaseId": {written}, "pipelines": ["a"]}}"#
        ));
        assert_eq!(m.release_id.as_str(), kept, "releaseId {written}");
        // The text survives even with whitespace and other fields around it.
        let m = parse(&format!(
            "{{\n  \"pipelines\": [\"a\"],\n  \"releaseId\" :\t{written}\n}}"
        ));
        assert_eq!(m.release_id.as_str(), kept, "releaseId {written}");
    }
}

#[test]
fn a_numeric_release_id_whose_text_breaks_the_id_rule_is_rejected() {
    // `1e+3` is a JSON number, but '+' is not allowed in an id: rejected, never rewritten.
    let e = errors(r#"{"releaseId": 1e+3, "pipelines": ["a"]}"#);
    assert_one(&e, "$.releaseId", &["'+'", "letters, digits"]);
    // 81 digits: too long, even though it is a number.
    let long = "1".repeat(81);
    let e = errors(&format!(r#"{{"releaseId": {long}, "pipelines": ["a"]}}"#));
    assert_one(&e, "$.releaseId", &["81 characters", "at most 80"]);
    // 80 digits is fine and kept.
    let ok = "9".repeat(80);
    let m = parse(&format!(r#"{{"releaseId": {ok}, "pipelines": ["a"]}}"#));
    assert_eq!(m.release_id.as_str(), ok);
}

#[test]
fn a_repeated_key_is_an_error_at_its_path() {
    // JSON readers disagree on which of two values wins; a second "pipelines" must not hide
    // from a reviewer, so any repeated key is rejected where it is (issue 10 item 8).
    let e =
        errors(r#"{"releaseId": "r1", "pipelines": ["a", {"name": "b", "wave": 2, "name": "c"}]}"#);
    assert_one(&e, "$.pipelines[1].name", &["duplicate key"]);

    let e = errors(r#"{"releaseId": "r1", "pipelines": ["a"], "pipelines": ["b", "c"]}"#);
    assert_one(&e, "$.pipelines", &["duplicate key"]);

    let e = errors(r#"{"releaseId": "first", "pipelines": ["a"], "releaseId": 5.10}"#);
    assert_one(&e, "$.releaseId", &["duplicate key"]);

    // Once per repetition; escaped keys are the same key; deep and odd keys get their path.
    let e = errors(
        r#"{"releaseId": "r1", "pipelines": [{"name": "a", "wave": 0, "w\u0061ve": 2, "wave": 3}], "x y": [{"k": 1, "k": 2}]}"#,
    );
    assert_eq!(
        paths(&e),
        [
            "$.pipelines[0].wave",
            "$.pipelines[0].wave",
            "$['x y'][0].k",
            "$['x y']"
        ],
        "{e:#?}"
    );
    assert!(e[3].message.contains("unknown field"), "{e:#?}");
}

#[test]
fn repeated_keys_are_found_in_large_objects_too() {
    // Objects over 16 members find keys through a map: the same errors as a scan.
    let vars: Vec<String> = (0..30).map(|i| format!("\"V{i}\": \"{i}\"")).collect();
    let text = format!(
        r#"{{"releaseId": "r1", "pipelines": [{{"name": "a", "variables": {{{}, "V3": "new", "V29": "x"}}}}]}}"#,
        vars.join(","),
    );
    let e = errors(&text);
    assert_eq!(
        paths(&e),
        [
            "$.pipelines[0].variables.V3",
            "$.pipelines[0].variables.V29"
        ]
    );
    // 26 variables written twice: 26 duplicate keys, and not "52 variables, over the limit".
    let text = format!(
        r#"{{"releaseId": "r1", "pipelines": [{{"name": "a", "variables": {{{}, {}}}}}]}}"#,
        vars[..26].join(","),
        vars[..26].join(",")
    );
    let e = errors(&text);
    assert_eq!(e.len(), 26, "{e:#?}");
    assert!(e.iter().all(|e| e.message.contains("duplicate key")));
}

#[test]
fn repeated_keys_are_reported_with_the_other_problems() {
    let e = errors(
        r#"{"releaseId": "bad id!", "pipelines": [{"name": "a", "name": "b", "wave": -1}], "onFailure": "stop", "onFailure": "maybe"}"#,
    );
    let p = paths(&e);
    for expected in [
        "$.pipelines[0].name",
        "$.onFailure",
        "$.releaseId",
        "$.pipelines[0].wave",
    ] {
        assert!(p.contains(&expected), "{expected} missing in {e:#?}");
    }
    assert!(e
        .iter()
        .any(|e| e.path == "$.onFailure" && e.message.contains("duplicate key")));
    assert!(e
        .iter()
        .any(|e| e.path == "$.onFailure" && e.message.contains("\"stop\" or \"continue\"")));
}

#[test]
fn a_manifest_without_repeated_keys_reads_as_serde_json_reads_it() {
    let vars: Vec<String> = (0..30).map(|i| format!("\"V{i}\": \"{i}\"")).collect();
    for text in [
        r#"{"releaseId": "r1", "pipelines": [{"name": "a", "wave": 2}]}"#.to_owned(),
        format!(
            r#"{{"releaseId": "r1", "pipelines": [{{"name": "a", "variables": {{{}}}}}]}}"#,
            vars.join(",")
        ),
    ] {
        let from_value = Manifest::from_value(&serde_json::from_str(&text).unwrap(), None);
        assert_eq!(Manifest::parse(text.as_bytes()), from_value, "{text}");
    }
}

#[test]
fn escaped_strings_and_keys_are_read() {
    let m = parse(
        r#"{"release\u0049d": "r\u0031", "pipelines": [{"n\u0061me": "a\u002Db", "variables": {"K\u0045Y": "line\nbreak \"quoted\" \u00e9 \ud83d\ude00"}}]}"#,
    );
    assert_eq!(m.release_id.as_str(), "r1");
    assert_eq!(m.pipelines[0].name, "a-b");
    assert_eq!(
        m.pipelines[0].variables["KEY"],
        "line\nbreak \"quoted\" é 😀"
    );
    // A numeric id under an escaped key keeps its text too.
    let m = parse(r#"{"releas\u0065Id": 5.10, "pipelines": ["a"]}"#);
    assert_eq!(m.release_id.as_str(), "5.10");
}

#[test]
fn a_number_too_large_for_json_is_reported_as_not_json() {
    let e = errors(r#"{"releaseId": 1e400, "pipelines": ["a"]}"#);
    assert_one(
        &e,
        "$",
        &["not valid JSON", "out of range", "line 1 column"],
    );
}

#[test]
fn a_numeric_release_id_from_an_already_parsed_value_uses_the_given_text() {
    // Inline inputs (the state machine, the API) hand over a Value and the id's raw text.
    let v: Value = serde_json::from_str(r#"{"releaseId": 5.10, "pipelines": ["a"]}"#).unwrap();
    let m = Manifest::from_value(&v, Some("5.10")).unwrap();
    assert_eq!(m.release_id.as_str(), "5.10");
    // Without the text, the number's own rendering is all there is.
    let m = Manifest::from_value(&v, None).unwrap();
    assert_eq!(m.release_id.as_str(), "5.1");
    let v = json!({"releaseId": 7, "pipelines": ["a"]});
    assert_eq!(
        Manifest::from_value(&v, None).unwrap().release_id.as_str(),
        "7"
    );
}

#[test]
fn string_release_ids_are_kept() {
    for id in [
        "r1",
        "2024-10-01",
        "v1.2.3_rc-1",
        "A",
        "5.10",
        "-",
        "..",
        "_x_",
    ] {
        let m = parse_value(&json!({"releaseId": id, "pipelines": ["a"]}));
        assert_eq!(m.release_id.as_str(), id);
    }
}

#[test]
fn a_release_id_of_80_characters_is_accepted_and_81_rejected() {
    let id80 = "a".repeat(80);
    assert_eq!(
        parse_value(&json!({"releaseId": id80, "pipelines": ["a"]}))
            .release_id
            .as_str(),
        id80
    );
    let id81 = "a".repeat(81);
    let e = errors_value(&json!({"releaseId": id81, "pipelines": ["a"]}));
    assert_one(&e, "$.releaseId", &["81 characters", "at most 80"]);
}

#[test]
fn a_release_id_with_a_bad_character_is_rejected() {
    for (id, bad) in [
        ("rel 1", "' '"),
        ("rel/1", "'/'"),
        ("rel+1", "'+'"),
        ("rel:1", "':'"),
        ("relé", "'é'"),
        ("rel@1", "'@'"),
        ("rel\n", "'\\n'"),
    ] {
        let e = errors_value(&json!({"releaseId": id, "pipelines": ["a"]}));
        assert_one(
            &e,
            "$.releaseId",
            &[bad, "only letters, digits, '.', '_' and '-'"],
        );
    }
}

#[test]
fn an_empty_or_missing_release_id_is_rejected() {
    let e = errors(r#"{"releaseId": "", "pipelines": ["a"]}"#);
    assert_one(&e, "$.releaseId", &["must not be empty"]);
    let e = errors(r#"{"pipelines": ["a"]}"#);
    assert_one(&e, "$.releaseId", &["is required", "string or number"]);
}

#[test]
fn a_release_id_of_the_wrong_type_is_rejected() {
    for (v, found) in [
        (json!(true), "a boolean"),
        (Value::Null, "null"),
        (json!([1]), "an array"),
        (json!({"id": 1}), "an object"),
    ] {
        let e = errors_value(&json!({"releaseId": v, "pipelines": ["a"]}));
        assert_one(&e, "$.releaseId", &["expected a string or a number", found]);
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input classes: the file itself

#[test]
fn not_json_is_rejected_with_its_position() {
    let e = errors("{\n  \"releaseId\": \"r1\"\n  \"pipelines\": [\"a\"]\n}");
    assert_one(&e, "$", &["not valid JSON", "line 3 column 3"]);
    let e = errors("releaseId: r1");
    assert_one(&e, "$", &["not valid JSON", "line 1 column 1"]);
    let e = errors(r#"{"releaseId": "r1", "pipelines": ["a"],}"#);
    assert_one(&e, "$", &["not valid JSON", "line 1 column"]);
    // Truncated file.
    let e = errors(r#"{"releaseId": "r1", "pipelines": ["#);
    assert_one(&e, "$", &["not valid JSON", "EOF", "line 1 column"]);
    // Two documents.
    let e = errors(r#"{"releaseId": "r1", "pipelines": ["a"]} {}"#);
    assert_one(&e, "$", &["not valid JSON", "trailing characters"]);
}

#[test]
fn an_empty_file_is_rejected() {
    let e = errors("");
    assert_one(&e, "$", &["empty", "releaseId and pipelines"]);
}

#[test]
fn a_whitespace_only_file_is_rejected_as_empty() {
    for text in [" ", "\n", "\r\n\t  \n", "\u{FEFF}", "\u{FEFF}  \n"] {
        let e = errors(text);
        assert_one(&e, "$", &["empty"]);
    }
}

#[test]
fn a_top_level_value_that_is_not_an_object_is_rejected() {
    for (text, found) in [
        ("[]", "an array"),
        (r#"["a"]"#, "an array"),
        (r#""r1""#, "a string"),
        ("5.15", "a number"),
        ("true", "a boolean"),
        ("null", "null"),
    ] {
        let e = errors(text);
        assert_one(
            &e,
            "$",
            &["expected a JSON object with releaseId and pipelines", found],
        );
    }
}

#[test]
fn a_file_over_256_kib_is_rejected() {
    // Valid JSON, padded with whitespace: the size alone decides.
    let base = r#"{"releaseId": "r1", "pipelines": ["a"]}"#;
    let exact = format!("{base}{}", " ".repeat(MAX_MANIFEST_BYTES - base.len()));
    assert_eq!(exact.len(), 256 * 1024);
    parse(&exact);
    let over = format!("{exact} ");
    let e = errors(&over);
    assert_one(&e, "$", &["262145 bytes", "at most 262144 bytes (256 KiB)"]);
    // The size check comes first: a huge file of garbage is not even read as JSON.
    let e = errors_bytes(&vec![b'x'; 1024 * 1024]);
    assert_one(&e, "$", &["1048576 bytes", "256 KiB"]);
}

#[test]
fn a_utf8_byte_order_mark_is_tolerated() {
    let m = parse("\u{FEFF}{\"releaseId\": 5.10, \"pipelines\": [\"a\"]}");
    assert_eq!(m.release_id.as_str(), "5.10");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(br#"{"releaseId": "r1", "pipelines": ["a"]}"#);
    assert_eq!(Manifest::parse(&bytes).unwrap().release_id.as_str(), "r1");
    // Only one, and only at the start.
    let e = errors("\u{FEFF}\u{FEFF}{\"releaseId\": \"r1\", \"pipelines\": [\"a\"]}");
    assert_one(&e, "$", &["not valid JSON"]);
}

#[test]
fn invalid_utf8_is_rejected() {
    let e = errors_bytes(b"{\"releaseId\": \"r\xff1\", \"pipelines\": [\"a\"]}");
    assert_one(&e, "$", &["not UTF-8", "index 16"]);
    // A Latin-1 file (é as one byte).
    let e = errors_bytes(
        b"{\"releaseId\": \"r1\", \"description\": \"caf\xe9\", \"pipelines\": [\"a\"]}",
    );
    assert_one(&e, "$", &["not UTF-8"]);
    // UTF-16 (what some editors save) is not UTF-8 either.
    let utf16: Vec<u8> = "{\"releaseId\": \"r1\", \"pipelines\": [\"a\"]}"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let mut with_bom = vec![0xFF, 0xFE];
    with_bom.extend_from_slice(&utf16);
    let e = errors_bytes(&with_bom);
    assert_one(&e, "$", &["not UTF-8"]);
}

#[test]
fn deeply_nested_json_is_rejected_without_a_crash() {
    let text = format!(
        r#"{{"releaseId": "r1", "pipelines": ["a"], "description": {}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let e = errors(&text);
    assert_one(&e, "$", &["not valid JSON", "recursion limit"]);
}

// ---------------------------------------------------------------------------------------------
// Wrong types, unknown fields

#[test]
fn top_level_fields_of_the_wrong_type_are_rejected() {
    let cases = [
        (
            json!({"description": 5}),
            "$.description",
            vec!["expected a string", "a number"],
        ),
        (
            json!({"maxConcurrency": "10"}),
            "$.maxConcurrency",
            vec!["expected an integer from 1 to 40", "\"10\""],
        ),
        (
            json!({"onFailure": 1}),
            "$.onFailure",
            vec!["expected \"stop\" or \"continue\"", "1"],
        ),
        (
            json!({"onFailure": null}),
            "$.onFailure",
            vec!["expected \"stop\" or \"continue\"", "null"],
        ),
        (
            json!({"pipelines": {"a": 1}}),
            "$.pipelines",
            vec!["expected a list of pipelines", "an object"],
        ),
        (
            json!({"pipelines": "a"}),
            "$.pipelines",
            vec!["expected a list of pipelines", "a string"],
        ),
        (
            json!({"pipelines": null}),
            "$.pipelines",
            vec!["expected a list of pipelines", "null"],
        ),
    ];
    for (fields, path, words) in cases {
        let e = errors_value(&with_top(fields.clone()));
        assert_one(&e, path, &words);
    }
}

#[test]
fn pipeline_entries_of_the_wrong_type_are_rejected() {
    for (v, found) in [
        (json!(5), "a number"),
        (Value::Null, "null"),
        (json!(["a"]), "an array"),
        (json!(true), "a boolean"),
    ] {
        let e = errors_value(&json!({"releaseId": "r1", "pipelines": ["ok", v]}));
        assert_one(
            &e,
            "$.pipelines[1]",
            &["expected a pipeline name or an object with \"name\"", found],
        );
    }
}

#[test]
fn pipeline_fields_of_the_wrong_type_are_rejected() {
    let cases = [
        (
            json!({"name": 5}),
            "$.pipelines[0].name",
            vec!["expected a string", "a number"],
        ),
        (
            json!({"name": null}),
            "$.pipelines[0].name",
            vec!["expected a string", "null"],
        ),
        (
            json!({"wave": "2"}),
            "$.pipelines[0].wave",
            vec!["expected an integer from 1 to 500", "\"2\""],
        ),
        (
            json!({"timeoutMinutes": "60"}),
            "$.pipelines[0].timeoutMinutes",
            vec!["expected an integer from 1 to 10080", "\"60\""],
        ),
        (
            json!({"variables": ["A", "b"]}),
            "$.pipelines[0].variables",
            vec![
                "expected an object of variable names to string values",
                "an array",
            ],
        ),
        (
            json!({"sourceRevisions": {"actionName": "Source"}}),
            "$.pipelines[0].sourceRevisions",
            vec![
                "expected a list of {actionName, revisionType, revisionValue}",
                "an object",
            ],
        ),
        (
            json!({"sourceRevisions": ["abc123"]}),
            "$.pipelines[0].sourceRevisions[0]",
            vec![
                "expected an object {actionName, revisionType, revisionValue}",
                "a string",
            ],
        ),
        (
            json!({"sourceRevisions": [{"actionName": 1, "revisionType": "COMMIT_ID", "revisionValue": "x"}]}),
            "$.pipelines[0].sourceRevisions[0].actionName",
            vec!["expected a string", "a number"],
        ),
        (
            json!({"sourceRevisions": [{"actionName": "Source", "revisionType": ["COMMIT_ID"], "revisionValue": "x"}]}),
            "$.pipelines[0].sourceRevisions[0].revisionType",
            vec!["expected a string", "an array"],
        ),
        (
            json!({"sourceRevisions": [{"actionName": "Source", "revisionType": "COMMIT_ID", "revisionValue": 123}]}),
            "$.pipelines[0].sourceRevisions[0].revisionValue",
            vec!["expected a string", "a number"],
        ),
    ];
    for (fields, path, words) in cases {
        let e = errors_value(&with_pipeline(fields.clone()));
        assert_one(&e, path, &words);
    }
}

#[test]
fn a_pipeline_object_without_a_name_is_rejected() {
    let e = errors_value(&json!({"releaseId": "r1", "pipelines": [{"wave": 2}]}));
    assert_one(&e, "$.pipelines[0].name", &["is required"]);
}

#[test]
fn missing_or_empty_pipelines_are_rejected() {
    let e = errors(r#"{"releaseId": "r1"}"#);
    assert_one(&e, "$.pipelines", &["is required", "non-empty list"]);
    let e = errors(r#"{"releaseId": "r1", "pipelines": []}"#);
    assert_one(&e, "$.pipelines", &["at least one pipeline"]);
}

#[test]
fn unknown_top_level_fields_are_rejected() {
    let e = errors_value(&with_top(json!({"pipeline": ["b"], "dryRun": true})));
    assert_eq!(paths(&e), ["$.pipeline", "$.dryRun"]);
    for err in &e {
        assert_error(
            err,
            &err.path,
            &[
                "unknown field",
                "releaseId, description, pipelines, maxConcurrency, onFailure",
            ],
        );
    }
}

#[test]
fn unknown_fields_in_a_pipeline_object_are_rejected() {
    let e = errors_value(&with_pipeline(json!({"stage": "prod"})));
    assert_one(
        &e,
        "$.pipelines[0].stage",
        &[
            "unknown field",
            "name, wave, variables, sourceRevisions, timeoutMinutes",
        ],
    );
    // A typo of a known field is unknown too, and named so the user sees it.
    let e = errors_value(&with_pipeline(json!({"Wave": 2})));
    assert_one(&e, "$.pipelines[0].Wave", &["unknown field"]);
}

#[test]
fn unknown_fields_in_a_source_revision_are_rejected() {
    let mut rev = revision("Source", "COMMIT_ID", "abc");
    rev["branch"] = json!("main");
    let e = errors_value(&with_pipeline(json!({"sourceRevisions": [rev]})));
    assert_one(
        &e,
        "$.pipelines[0].sourceRevisions[0].branch",
        &["unknown field", "actionName, revisionType, revisionValue"],
    );
}

#[test]
fn a_field_name_that_is_not_an_identifier_gets_a_bracketed_path() {
    let e = errors_value(&with_top(json!({"max concurrency": 3})));
    assert_one(&e, "$['max concurrency']", &["unknown field"]);
    let e = errors_value(&with_pipeline(json!({"it's": 1})));
    assert_one(&e, r"$.pipelines[0]['it\'s']", &["unknown field"]);
}

// ---------------------------------------------------------------------------------------------
// Pipelines: count, names, duplicates

fn names(n: usize) -> Vec<Value> {
    (0..n).map(|i| json!(format!("p{i}"))).collect()
}

#[test]
fn five_hundred_pipelines_are_accepted_and_501_rejected() {
    let m = parse_value(&json!({"releaseId": "r1", "pipelines": names(MAX_PIPELINES)}));
    assert_eq!(m.pipelines.len(), 500);
    let e = errors_value(&json!({"releaseId": "r1", "pipelines": names(501)}));
    assert_one(&e, "$.pipelines", &["501 pipelines", "at most 500"]);
}

#[test]
fn pipeline_names_follow_codepipeline_rules() {
    let ok100 = "p".repeat(100);
    for name in ["a", "A.b@c_d-e", "0", ok100.as_str(), "my-pipeline"] {
        let m = parse_value(&json!({"releaseId": "r1", "pipelines": [name]}));
        assert_eq!(m.pipelines[0].name, name);
        let m = parse_value(&json!({"releaseId": "r1", "pipelines": [{"name": name}]}));
        assert_eq!(m.pipelines[0].name, name);
    }
}

#[test]
fn bad_pipeline_names_are_rejected_in_both_forms() {
    let long = "p".repeat(101);
    let cases = [
        (long.as_str(), vec!["101 characters", "at most 100"]),
        (
            "my pipeline",
            vec!["' '", "letters, digits, '.', '@', '_' and '-'"],
        ),
        ("team/app", vec!["'/'", "letters, digits"]),
        ("app:prod", vec!["':'", "letters, digits"]),
        ("", vec!["must not be empty"]),
    ];
    for (name, words) in cases {
        // The short form.
        let e = errors_value(&json!({"releaseId": "r1", "pipelines": ["ok", name]}));
        assert_one(&e, "$.pipelines[1].name", &words);
        // The object form.
        let e = errors_value(
            &json!({"releaseId": "r1", "pipelines": ["ok", {"name": name, "wave": 2}]}),
        );
        assert_one(&e, "$.pipelines[1].name", &words);
    }
}

#[test]
fn a_long_non_ascii_pipeline_name_counts_characters_not_bytes() {
    let name = "é".repeat(101);
    let e = errors_value(&json!({"releaseId": "r1", "pipelines": [name]}));
    assert_one(
        &e,
        "$.pipelines[0].name",
        &["101 characters", "at most 100"],
    );
    let name = "é".repeat(60);
    let e = errors_value(&json!({"releaseId": "r1", "pipelines": [name]}));
    assert_one(&e, "$.pipelines[0].name", &["'é'", "letters, digits"]);
}

#[test]
fn duplicate_pipelines_are_rejected_in_any_mix_of_forms() {
    // String and string.
    let e = errors(r#"{"releaseId": "r1", "pipelines": ["a", "b", "a"]}"#);
    assert_one(
        &e,
        "$.pipelines[2].name",
        &["duplicate pipeline \"a\"", "may appear once"],
    );
    // String then object.
    let e = errors(r#"{"releaseId": "r1", "pipelines": ["a", {"name": "a", "wave": 2}]}"#);
    assert_one(&e, "$.pipelines[1].name", &["duplicate pipeline \"a\""]);
    // Object then string.
    let e = errors(r#"{"releaseId": "r1", "pipelines": [{"name": "a"}, "b", "a"]}"#);
    assert_one(&e, "$.pipelines[2].name", &["duplicate pipeline \"a\""]);
    // Three times: each repeat is reported.
    let e = errors(r#"{"releaseId": "r1", "pipelines": ["a", {"name": "a"}, "a"]}"#);
    assert_eq!(paths(&e), ["$.pipelines[1].name", "$.pipelines[2].name"]);
    // Names are case-sensitive, as in CodePipeline.
    parse(r#"{"releaseId": "r1", "pipelines": ["a", "A"]}"#);
}

// ---------------------------------------------------------------------------------------------
// Waves, concurrency, onFailure, timeouts, description

#[test]
fn a_wave_is_an_integer_of_at_least_1() {
    for (wave, shown) in [
        (json!(0), "0"),
        (json!(-1), "-1"),
        (json!(1.5), "1.5"),
        (json!("2"), "\"2\""),
        (json!(501), "501"),
        (Value::Null, "null"),
        (json!(true), "true"),
    ] {
        let e = errors_value(&with_pipeline(json!({"wave": wave})));
        assert_one(
            &e,
            "$.pipelines[0].wave",
            &["expected an integer from 1 to 500", shown],
        );
    }
    for wave in [1, 2, 500] {
        let m = parse_value(&with_pipeline(json!({"wave": wave})));
        assert_eq!(m.pipelines[0].wave, wave);
    }
}

#[test]
fn an_integer_written_with_a_fraction_or_exponent_is_rejected() {
    // The parser reads integers strictly (a JSON Schema validator would take 2.0).
    let e = errors(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "wave": 2.0}]}"#);
    assert_one(&e, "$.pipelines[0].wave", &["expected an integer", "2.0"]);
    let e = errors(r#"{"releaseId": "r1", "pipelines": ["a"], "maxConcurrency": 1e1}"#);
    assert_one(&e, "$.maxConcurrency", &["expected an integer"]);
}

#[test]
fn max_concurrency_is_1_to_40() {
    for (v, shown) in [
        (json!(0), "0"),
        (json!(41), "41"),
        (json!("10"), "\"10\""),
        (json!(-5), "-5"),
        (json!(10.5), "10.5"),
    ] {
        let e = errors_value(&with_top(json!({"maxConcurrency": v})));
        assert_one(
            &e,
            "$.maxConcurrency",
            &["expected an integer from 1 to 40", shown],
        );
    }
    for n in [1, 10, 40] {
        assert_eq!(
            parse_value(&with_top(json!({"maxConcurrency": n}))).max_concurrency,
            n
        );
    }
}

#[test]
fn on_failure_is_stop_or_continue() {
    for v in ["abort", "STOP", "Continue", ""] {
        let e = errors_value(&with_top(json!({"onFailure": v})));
        assert_one(
            &e,
            "$.onFailure",
            &["expected \"stop\" or \"continue\"", &format!("\"{v}\"")],
        );
    }
    assert_eq!(
        parse_value(&with_top(json!({"onFailure": "stop"}))).on_failure,
        OnFailure::Stop
    );
    assert_eq!(
        parse_value(&with_top(json!({"onFailure": "continue"}))).on_failure,
        OnFailure::Continue
    );
}

#[test]
fn timeout_minutes_is_1_to_7_days() {
    for v in [json!(0), json!(10081), json!(-1), json!(1.5)] {
        let e = errors_value(&with_pipeline(json!({"timeoutMinutes": v})));
        assert_one(
            &e,
            "$.pipelines[0].timeoutMinutes",
            &["expected an integer from 1 to 10080"],
        );
    }
    let m = parse_value(&with_pipeline(json!({"timeoutMinutes": 10080})));
    assert_eq!(m.pipelines[0].timeout_minutes, 10080);
    assert_eq!(m.pipelines[0].timeout_seconds(), 10080 * 60);
}

#[test]
fn a_description_is_an_optional_string_of_at_most_1024_characters() {
    let ok = "é".repeat(1024);
    assert_eq!(
        parse_value(&with_top(json!({"description": ok}))).description,
        Some(ok)
    );
    assert_eq!(
        parse_value(&with_top(json!({"description": null}))).description,
        None
    );
    let e = errors_value(&with_top(json!({"description": "x".repeat(1025)})));
    assert_one(
        &e,
        "$.description",
        &["too long", "at most 1024 characters"],
    );
}

// ---------------------------------------------------------------------------------------------
// Variables and source revisions

fn variables(n: usize) -> Value {
    Value::Object(
        (0..n)
            .map(|i| (format!("VAR_{i}"), json!(format!("v{i}"))))
            .collect(),
    )
}

#[test]
fn fifty_variables_are_accepted_and_51_rejected() {
    let m = parse_value(&with_pipeline(json!({"variables": variables(50)})));
    assert_eq!(m.pipelines[0].variables.len(), 50);
    assert_eq!(m.pipelines[0].variables["VAR_7"], "v7");
    let e = errors_value(&with_pipeline(json!({"variables": variables(51)})));
    assert_one(
        &e,
        "$.pipelines[0].variables",
        &["51 variables", "at most 50"],
    );
}

#[test]
fn a_bad_variable_name_is_rejected() {
    let long = "v".repeat(129);
    for (name, path) in [
        ("my var", "$.pipelines[0].variables['my var']"),
        ("a.b", "$.pipelines[0].variables['a.b']"),
        ("a/b", "$.pipelines[0].variables['a/b']"),
        ("", "$.pipelines[0].variables['']"),
        (long.as_str(), &*format!("$.pipelines[0].variables.{long}")),
    ] {
        let e = errors_value(&with_pipeline(json!({"variables": {name: "x"}})));
        assert_one(
            &e,
            path,
            &["a variable name is 1 to 128 letters, digits, '@', '_' or '-'"],
        );
    }
    // The allowed characters, and 128 of them.
    let ok = format!("A-b_1@{}", "x".repeat(122));
    let m = parse_value(&with_pipeline(json!({"variables": {ok.clone(): "x"}})));
    assert_eq!(m.pipelines[0].variables[&ok], "x");
}

#[test]
fn a_variable_value_is_a_non_empty_string_of_at_most_1000_characters() {
    for (v, words) in [
        (json!(5), vec!["expected a string value", "a number"]),
        (json!(true), vec!["expected a string value", "a boolean"]),
        (Value::Null, vec!["expected a string value", "null"]),
        (
            json!({"x": 1}),
            vec!["expected a string value", "an object"],
        ),
        (json!(""), vec!["1 to 1000 characters"]),
        (json!("x".repeat(1001)), vec!["1 to 1000 characters"]),
    ] {
        let e = errors_value(&with_pipeline(json!({"variables": {"ENV": v}})));
        assert_one(&e, "$.pipelines[0].variables.ENV", &words);
    }
    let m = parse_value(&with_pipeline(
        json!({"variables": {"ENV": "é".repeat(1000)}}),
    ));
    assert_eq!(m.pipelines[0].variables["ENV"].chars().count(), 1000);
}

#[test]
fn source_revisions_are_kept_in_order() {
    let m = parse_value(&with_pipeline(json!({"sourceRevisions": [
        revision("Source", "COMMIT_ID", "9f1c2ab"),
        revision("Image", "IMAGE_DIGEST", "sha256:abc"),
        revision("Bucket", "S3_OBJECT_VERSION_ID", "3sL4kqtJlcpXroDTDmJ"),
        revision("Key", "S3_OBJECT_KEY", "app/build.zip"),
    ]})));
    let revs = &m.pipelines[0].source_revisions;
    assert_eq!(revs.len(), 4);
    assert_eq!(revs[0].action_name, "Source");
    assert_eq!(revs[1].revision_type, "IMAGE_DIGEST");
    assert_eq!(revs[3].revision_value, "app/build.zip");
}

#[test]
fn a_bad_revision_type_is_rejected() {
    for t in ["BRANCH", "commit_id", ""] {
        let e = errors_value(&with_pipeline(
            json!({"sourceRevisions": [revision("Source", t, "abc")]}),
        ));
        let words: Vec<&str> = if t.is_empty() {
            vec!["must not be empty"]
        } else {
            vec![
                t,
                "is not one of COMMIT_ID, IMAGE_DIGEST, S3_OBJECT_VERSION_ID, S3_OBJECT_KEY",
            ]
        };
        assert_one(&e, "$.pipelines[0].sourceRevisions[0].revisionType", &words);
    }
}

#[test]
fn missing_revision_fields_are_each_reported() {
    let e = errors_value(&with_pipeline(json!({"sourceRevisions": [{}]})));
    assert_eq!(
        paths(&e),
        [
            "$.pipelines[0].sourceRevisions[0].actionName",
            "$.pipelines[0].sourceRevisions[0].revisionType",
            "$.pipelines[0].sourceRevisions[0].revisionValue",
        ]
    );
    for err in &e {
        assert_error(err, &err.path, &["is required"]);
    }
    let e = errors_value(&with_pipeline(
        json!({"sourceRevisions": [{"actionName": "Source", "revisionType": "COMMIT_ID"}]}),
    ));
    assert_one(
        &e,
        "$.pipelines[0].sourceRevisions[0].revisionValue",
        &["is required"],
    );
}

#[test]
fn revision_limits_are_enforced() {
    // A bad action name.
    let e = errors_value(&with_pipeline(
        json!({"sourceRevisions": [revision("my source", "COMMIT_ID", "abc")]}),
    ));
    assert_one(
        &e,
        "$.pipelines[0].sourceRevisions[0].actionName",
        &["' '", "an action name may only use"],
    );
    // The same action twice.
    let e = errors_value(&with_pipeline(json!({"sourceRevisions": [
        revision("Source", "COMMIT_ID", "abc"),
        revision("Source", "COMMIT_ID", "def"),
    ]})));
    assert_one(
        &e,
        "$.pipelines[0].sourceRevisions[1].actionName",
        &["duplicate action \"Source\""],
    );
    // A value over 1500 characters.
    let e = errors_value(&with_pipeline(
        json!({"sourceRevisions": [revision("Source", "COMMIT_ID", &"a".repeat(1501))]}),
    ));
    assert_one(
        &e,
        "$.pipelines[0].sourceRevisions[0].revisionValue",
        &["at most 1500 characters"],
    );
    // More than 50 revisions.
    let revs: Vec<Value> = (0..51)
        .map(|i| revision(&format!("S{i}"), "COMMIT_ID", "abc"))
        .collect();
    let e = errors_value(&with_pipeline(json!({"sourceRevisions": revs})));
    assert_one(
        &e,
        "$.pipelines[0].sourceRevisions",
        &["51 entries", "at most 50"],
    );
}

// ---------------------------------------------------------------------------------------------
// Every problem at once

#[test]
fn every_problem_is_reported_at_once() {
    let e = errors_value(&json!({
        "releaseId": "release 1",
        "maxConcurrency": 0,
        "pipelines": [
            "ok",
            {"name": "ok", "wave": 0},
            "bad/name",
        ],
        "onFailure": "abort",
    }));
    let mut got = paths(&e);
    got.sort_unstable();
    assert_eq!(
        got,
        [
            "$.maxConcurrency",
            "$.onFailure",
            "$.pipelines[1].name",
            "$.pipelines[1].wave",
            "$.pipelines[2].name",
            "$.releaseId",
        ],
        "{e:#?}"
    );
}

#[test]
fn five_problems_give_five_errors_with_five_paths() {
    let e = errors_value(&json!({
        "releaseId": "",
        "maxConcurrency": 41,
        "extra": true,
        "pipelines": [
            {"name": "a", "timeoutMinutes": 0},
            {"name": "b", "variables": {"X": 1}},
        ],
    }));
    assert_eq!(e.len(), 5, "{e:#?}");
    let mut got = paths(&e);
    got.sort_unstable();
    assert_eq!(
        got,
        [
            "$.extra",
            "$.maxConcurrency",
            "$.pipelines[0].timeoutMinutes",
            "$.pipelines[1].variables.X",
            "$.releaseId",
        ]
    );
    // The rejection reads as one sentence listing each.
    let text = Rejection(e).to_string();
    assert!(
        text.starts_with("the manifest is invalid (5 problems): "),
        "{text}"
    );
    assert!(text.contains("$.pipelines[1].variables.X: expected a string value"));
}

#[test]
fn problems_in_many_pipelines_are_all_reported() {
    let pipelines: Vec<Value> = (0..20)
        .map(|i| json!({"name": format!("p {i}"), "wave": 0}))
        .collect();
    let e = errors_value(&json!({"releaseId": "r1", "pipelines": pipelines}));
    assert_eq!(e.len(), 40);
    assert!(e.iter().any(|e| e.path == "$.pipelines[19].wave"));
    assert!(e.iter().any(|e| e.path == "$.pipelines[19].name"));
}

// ---------------------------------------------------------------------------------------------
// Normalization

#[test]
fn defaults_are_filled_in() {
    let m = parse(r#"{"releaseId": "r1", "pipelines": ["a", {"name": "b"}]}"#);
    assert_eq!(m.max_concurrency, 10);
    assert_eq!(m.on_failure, OnFailure::Stop);
    assert_eq!(m.description, None);
    for p in &m.pipelines {
        assert_eq!(p.wave, 1);
        assert_eq!(p.timeout_minutes, DEFAULT_TIMEOUT_MINUTES);
        assert_eq!(p.timeout_minutes, 120);
        assert!(p.variables.is_empty());
        assert!(p.source_revisions.is_empty());
    }
    // The string and object forms normalize the same.
    assert_eq!(m.pipelines[0], PipelineSpec::new("a", 1));
    assert_eq!(m.pipelines[1], PipelineSpec::new("b", 1));
}

#[test]
fn the_normalized_manifest_serializes_in_the_manifest_format() {
    let m = parse(
        r#"{"releaseId": 5.10, "pipelines": ["a", {"name": "b", "wave": 2, "variables": {"K": "v"}}]}"#,
    );
    assert_eq!(
        serde_json::to_value(&m).unwrap(),
        json!({
            "releaseId": "5.10",
            "pipelines": [
                {"name": "a", "wave": 1, "timeoutMinutes": 120},
                {"name": "b", "wave": 2, "variables": {"K": "v"}, "timeoutMinutes": 120},
            ],
            "maxConcurrency": 10,
            "onFailure": "stop",
        })
    );
    // ... and parses again to the same manifest.
    let again = Manifest::parse(&serde_json::to_vec(&m).unwrap()).unwrap();
    assert_eq!(again, m);
}

#[test]
fn waves_are_ascending_with_manifest_order_inside() {
    let m = parse(
        r#"{"releaseId": "r1", "pipelines": [
            {"name": "c", "wave": 3},
            "a",
            {"name": "x", "wave": 2},
            {"name": "b", "wave": 1},
            {"name": "z", "wave": 3},
            {"name": "y", "wave": 2},
            {"name": "far", "wave": 100}
        ]}"#,
    );
    let waves: Vec<(u32, Vec<&str>)> = m
        .waves()
        .iter()
        .map(|w| {
            (
                w.number,
                w.pipelines.iter().map(|p| p.name.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        waves,
        [
            (1, vec!["a", "b"]),
            (2, vec!["x", "y"]),
            (3, vec!["c", "z"]),
            (100, vec!["far"]),
        ]
    );
    assert_eq!(m.pipeline("y").unwrap().wave, 2);
    assert!(m.pipeline("nope").is_none());
}

#[test]
fn a_single_wave_holds_every_pipeline_in_order() {
    let m = parse_value(&json!({"releaseId": "r1", "pipelines": names(500)}));
    let waves = m.waves();
    assert_eq!(waves.len(), 1);
    assert_eq!(waves[0].number, 1);
    assert_eq!(waves[0].pipelines.len(), 500);
    assert_eq!(waves[0].pipelines[499].name, "p499");
}

#[test]
fn a_full_manifest_is_read_field_by_field() {
    let m = parse(
        r#"{
          "releaseId": "2024-10-01",
          "description": "October release",
          "maxConcurrency": 5,
          "onFailure": "continue",
          "pipelines": [
            "edge",
            {
              "name": "api",
              "wave": 2,
              "timeoutMinutes": 45,
              "variables": {"ENV": "prod", "TAG": "v1.2.3"},
              "sourceRevisions": [
                {"actionName": "Source", "revisionType": "COMMIT_ID", "revisionValue": "9f1c2ab"}
              ]
            }
          ]
        }"#,
    );
    assert_eq!(m.release_id.as_str(), "2024-10-01");
    assert_eq!(m.description.as_deref(), Some("October release"));
    assert_eq!(m.max_concurrency, 5);
    assert_eq!(m.on_failure, OnFailure::Continue);
    let api = m.pipeline("api").unwrap();
    assert_eq!(api.wave, 2);
    assert_eq!(api.timeout_minutes, 45);
    assert_eq!(api.variables.len(), 2);
    assert_eq!(api.variables["TAG"], "v1.2.3");
    assert_eq!(api.source_revisions[0].revision_value, "9f1c2ab");
}

/// Issue 9: the execution has a fixed TimeoutSeconds of 30 days, so a manifest whose worst
/// case (every pipeline running to its timeout, wave after wave, maxConcurrency at a time,
/// then the stop wait) exceeds it is rejected, naming the worst case.
#[test]
fn a_release_whose_worst_case_exceeds_30_days_is_rejected() {
    let week =
        |wave: u32| json!({"name": format!("p{wave}"), "wave": wave, "timeoutMinutes": 10080});
    // Four one-week waves and the stop wait: 28 days 10 min, accepted.
    let four: Vec<_> = (1..=4).map(week).collect();
    let m = parse_value(&json!({"releaseId": "r1", "pipelines": four}));
    assert_eq!(m.worst_case_minutes(), 4 * 10080 + 10);
    // Five: 35 days, rejected.
    let five: Vec<_> = (1..=5).map(week).collect();
    let e = errors_value(&json!({"releaseId": "r1", "pipelines": five}));
    assert_one(
        &e,
        "$.pipelines",
        &["35 days 0 h 10 min", "30 days", "timeoutMinutes"],
    );
    // One wave of five one-week pipelines, two at a time: three rounds, 21 days, accepted;
    // one at a time: five rounds, rejected.
    let one_wave: Vec<_> = (0..5)
        .map(|i| json!({"name": format!("q{i}"), "timeoutMinutes": 10080}))
        .collect();
    let two = parse_value(&json!({"releaseId": "r1", "pipelines": one_wave, "maxConcurrency": 2}));
    assert_eq!(two.worst_case_minutes(), 3 * 10080 + 10);
    let e = errors_value(&json!({"releaseId": "r1", "pipelines": one_wave, "maxConcurrency": 1}));
    assert_one(&e, "$.pipelines", &["35 days", "1 at a time"]);
}
