//! The published JSON Schema (schema/release-manifest.schema.json) and the parser agree.
//!
//! A corpus of valid and invalid manifests goes through both. They must agree, except for the
//! rules JSON Schema cannot express, listed in [`Unexpressible`]: on those the schema accepts
//! what the parser rejects, never the other way round.

use jsonschema::Validator;
use proptest::prelude::*;
use proptest::sample::select;
use rm_core::manifest::Manifest;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::OnceLock;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schema_json() -> Value {
    let path = repo_root().join("schema/release-manifest.schema.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} must exist: {e}", path.display()));
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| jsonschema::draft202012::new(&schema_json()).expect("the schema compiles"))
}

/// What the schema says of a manifest's text (read as the parser reads it: BOM tolerated).
fn schema_errors(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let v: Value = serde_json::from_str(text).expect("corpus entries are JSON");
    validator()
        .iter_errors(&v)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// The rules JSON Schema cannot state. On each, the schema accepts and the parser rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unexpressible {
    /// Each pipeline may appear once, named by a string or an object (`uniqueItems` compares
    /// whole entries, so `"a"` and `{"name": "a"}` are distinct to it).
    DuplicatePipeline,
    /// Each source action may have one revision per pipeline.
    DuplicateSourceAction,
    /// A numeric releaseId is kept as written, so its text must be a valid id; a schema sees
    /// only the number's value.
    NumericIdText,
    /// The parser wants integers written as integers; JSON Schema's `integer` takes `2.0`.
    IntegerWrittenAsFloat,
    /// The 256 KiB limit is on the file, not on the JSON value.
    FileSize,
    /// `gates.windows.timezone` must name a time zone of the IANA database.
    UnknownTimeZone,
    /// An allow window's `from` and `to` must differ; a deny window's `to` must be after its
    /// `from`.
    WindowOrder,
    /// A deny window's bounds must be real dates (no 30 February).
    NotADate,
}

/// The corpus: (name, manifest text, does the parser accept it, the unexpressible rule it
/// breaks if any).
fn corpus() -> Vec<(&'static str, String, bool, Option<Unexpressible>)> {
    use Unexpressible::*;
    let s = |x: &str| x.to_owned();
    let names = |n: usize| -> String {
        let v: Vec<String> = (0..n).map(|i| format!("\"p{i}\"")).collect();
        v.join(",")
    };
    let vars = |n: usize| -> String {
        let v: Vec<String> = (0..n).map(|i| format!("\"V{i}\": \"x\"")).collect();
        format!("{{{}}}", v.join(","))
    };
    let revs = |n: usize| -> String {
        let v: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"actionName": "S{i}", "revisionType": "COMMIT_ID", "revisionValue": "x"}}"#
                )
            })
            .collect();
        format!("[{}]", v.join(","))
    };
    let seed =
        std::fs::read_to_string(repo_root().join("events/seed/original-release-manifest.json"))
            .expect("the seed manifest exists");
    let padded = {
        let base = r#"{"releaseId": "r1", "pipelines": ["a"]}"#;
        format!("{base}{}", " ".repeat(256 * 1024 + 1 - base.len()))
    };
    vec![
        // ---- valid
        ("seed file", seed, true, None),
        (
            "seed format",
            s(r#"{"releaseId": 5.15, "pipelines": ["a"]}"#),
            true,
            None,
        ),
        (
            "numeric id 5.10",
            s(r#"{"releaseId": 5.10, "pipelines": ["a"]}"#),
            true,
            None,
        ),
        (
            "numeric id 7",
            s(r#"{"releaseId": 7, "pipelines": ["a"]}"#),
            true,
            None,
        ),
        (
            "numeric id 1e3",
            s(r#"{"releaseId": 1e3, "pipelines": ["a"]}"#),
            true,
            None,
        ),
        (
            "numeric id -1",
            s(r#"{"releaseId": -1, "pipelines": ["a"]}"#),
            true,
            None,
        ),
        (
            "string id",
            s(r#"{"releaseId": "v1.2.3_rc-1", "pipelines": ["a"]}"#),
            true,
            None,
        ),
        (
            "id of 80",
            format!(
                r#"{{"releaseId": "{}", "pipelines": ["a"]}}"#,
                "i".repeat(80)
            ),
            true,
            None,
        ),
        (
            "BOM",
            s("\u{FEFF}{\"releaseId\": \"r1\", \"pipelines\": [\"a\"]}"),
            true,
            None,
        ),
        (
            "everything",
            s(
                r#"{"releaseId": "2024-10-01", "description": "Oct", "maxConcurrency": 40,
                "onFailure": "continue", "pipelines": ["a", {"name": "b", "wave": 500,
                "timeoutMinutes": 10080, "variables": {"A-b_1@": "v"}, "sourceRevisions": [
                {"actionName": "Src.1@x", "revisionType": "S3_OBJECT_KEY", "revisionValue": "k"}]}]}"#,
            ),
            true,
            None,
        ),
        (
            "null description",
            s(r#"{"releaseId": "r1", "description": null, "pipelines": ["a"]}"#),
            true,
            None,
        ),
        (
            "description of 1024 astral chars",
            format!(
                r#"{{"releaseId": "r1", "description": "{}", "pipelines": ["a"]}}"#,
                "😀".repeat(1024)
            ),
            true,
            None,
        ),
        (
            "pipeline name of 100",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["{}"]}}"#,
                "p".repeat(100)
            ),
            true,
            None,
        ),
        (
            "500 pipelines",
            format!(r#"{{"releaseId": "r1", "pipelines": [{}]}}"#, names(500)),
            true,
            None,
        ),
        (
            "50 variables",
            format!(
                r#"{{"releaseId": "r1", "pipelines": [{{"name": "a", "variables": {}}}]}}"#,
                vars(50)
            ),
            true,
            None,
        ),
        (
            "50 revisions",
            format!(
                r#"{{"releaseId": "r1", "pipelines": [{{"name": "a", "sourceRevisions": {}}}]}}"#,
                revs(50)
            ),
            true,
            None,
        ),
        (
            "empty variables",
            s(
                r#"{"releaseId": "r1", "pipelines": [{"name": "a", "variables": {}, "sourceRevisions": []}]}"#,
            ),
            true,
            None,
        ),
        (
            "each revision type",
            s(
                r#"{"releaseId": "r1", "pipelines": [{"name": "a", "sourceRevisions": [
            {"actionName": "A", "revisionType": "COMMIT_ID", "revisionValue": "x"},
            {"actionName": "B", "revisionType": "IMAGE_DIGEST", "revisionValue": "x"},
            {"actionName": "C", "revisionType": "S3_OBJECT_VERSION_ID", "revisionValue": "x"},
            {"actionName": "D", "revisionType": "S3_OBJECT_KEY", "revisionValue": "x"}]}]}"#,
            ),
            true,
            None,
        ),
        // ---- invalid, both agree
        ("top level array", s(r#"["a"]"#), false, None),
        ("top level string", s(r#""r1""#), false, None),
        ("top level null", s("null"), false, None),
        ("no releaseId", s(r#"{"pipelines": ["a"]}"#), false, None),
        ("no pipelines", s(r#"{"releaseId": "r1"}"#), false, None),
        (
            "empty pipelines",
            s(r#"{"releaseId": "r1", "pipelines": []}"#),
            false,
            None,
        ),
        (
            "501 pipelines",
            format!(r#"{{"releaseId": "r1", "pipelines": [{}]}}"#, names(501)),
            false,
            None,
        ),
        (
            "empty id",
            s(r#"{"releaseId": "", "pipelines": ["a"]}"#),
            false,
            None,
        ),
        (
            "id of 81",
            format!(
                r#"{{"releaseId": "{}", "pipelines": ["a"]}}"#,
                "i".repeat(81)
            ),
            false,
            None,
        ),
        (
            "id with space",
            s(r#"{"releaseId": "r 1", "pipelines": ["a"]}"#),
            false,
            None,
        ),
        (
            "id with slash",
            s(r#"{"releaseId": "r/1", "pipelines": ["a"]}"#),
            false,
            None,
        ),
        (
            "id with newline",
            s(r#"{"releaseId": "r1\n", "pipelines": ["a"]}"#),
            false,
            None,
        ),
        (
            "id boolean",
            s(r#"{"releaseId": true, "pipelines": ["a"]}"#),
            false,
            None,
        ),
        (
            "id null",
            s(r#"{"releaseId": null, "pipelines": ["a"]}"#),
            false,
            None,
        ),
        (
            "unknown top field",
            s(r#"{"releaseId": "r1", "pipelines": ["a"], "x": 1}"#),
            false,
            None,
        ),
        (
            "unknown pipeline field",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "x": 1}]}"#),
            false,
            None,
        ),
        (
            "unknown revision field",
            s(
                r#"{"releaseId": "r1", "pipelines": [{"name": "a", "sourceRevisions": [{"actionName": "S", "revisionType": "COMMIT_ID", "revisionValue": "x", "x": 1}]}]}"#,
            ),
            false,
            None,
        ),
        (
            "description number",
            s(r#"{"releaseId": "r1", "description": 1, "pipelines": ["a"]}"#),
            false,
            None,
        ),
        (
            "description 1025",
            format!(
                r#"{{"releaseId": "r1", "description": "{}", "pipelines": ["a"]}}"#,
                "d".repeat(1025)
            ),
            false,
            None,
        ),
        (
            "maxConcurrency 0",
            s(r#"{"releaseId": "r1", "maxConcurrency": 0, "pipelines": ["a"]}"#),
            false,
            None,
        ),
        (
            "maxConcurrency 41",
            s(r#"{"releaseId": "r1", "maxConcurrency": 41, "pipelines": ["a"]}"#),
            false,
            None,
        ),
        (
            "maxConcurrency string",
            s(r#"{"releaseId": "r1", "maxConcurrency": "10", "pipelines": ["a"]}"#),
            false,
            None,
        ),
        (
            "maxConcurrency 1.5",
            s(r#"{"releaseId": "r1", "maxConcurrency": 1.5, "pipelines": ["a"]}"#),
            false,
            None,
        ),
        (
            "onFailure abort",
            s(r#"{"releaseId": "r1", "onFailure": "abort", "pipelines": ["a"]}"#),
            false,
            None,
        ),
        (
            "onFailure null",
            s(r#"{"releaseId": "r1", "onFailure": null, "pipelines": ["a"]}"#),
            false,
            None,
        ),
        (
            "pipelines object",
            s(r#"{"releaseId": "r1", "pipelines": {"a": 1}}"#),
            false,
            None,
        ),
        (
            "pipeline number",
            s(r#"{"releaseId": "r1", "pipelines": [1]}"#),
            false,
            None,
        ),
        (
            "pipeline null",
            s(r#"{"releaseId": "r1", "pipelines": [null]}"#),
            false,
            None,
        ),
        (
            "pipeline name 101",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["{}"]}}"#,
                "p".repeat(101)
            ),
            false,
            None,
        ),
        (
            "pipeline name space",
            s(r#"{"releaseId": "r1", "pipelines": ["a b"]}"#),
            false,
            None,
        ),
        (
            "pipeline name slash",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a/b"}]}"#),
            false,
            None,
        ),
        (
            "pipeline name empty",
            s(r#"{"releaseId": "r1", "pipelines": [""]}"#),
            false,
            None,
        ),
        (
            "pipeline name non-ASCII",
            s(r#"{"releaseId": "r1", "pipelines": ["café"]}"#),
            false,
            None,
        ),
        (
            "pipeline without name",
            s(r#"{"releaseId": "r1", "pipelines": [{"wave": 1}]}"#),
            false,
            None,
        ),
        (
            "pipeline name number",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": 1}]}"#),
            false,
            None,
        ),
        (
            "wave 0",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "wave": 0}]}"#),
            false,
            None,
        ),
        (
            "wave 501",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "wave": 501}]}"#),
            false,
            None,
        ),
        (
            "wave 1.5",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "wave": 1.5}]}"#),
            false,
            None,
        ),
        (
            "wave string",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "wave": "2"}]}"#),
            false,
            None,
        ),
        (
            "wave null",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "wave": null}]}"#),
            false,
            None,
        ),
        (
            "timeout 0",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "timeoutMinutes": 0}]}"#),
            false,
            None,
        ),
        (
            "timeout 10081",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "timeoutMinutes": 10081}]}"#),
            false,
            None,
        ),
        (
            "51 variables",
            format!(
                r#"{{"releaseId": "r1", "pipelines": [{{"name": "a", "variables": {}}}]}}"#,
                vars(51)
            ),
            false,
            None,
        ),
        (
            "variables array",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "variables": []}]}"#),
            false,
            None,
        ),
        (
            "variable name space",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "variables": {"a b": "x"}}]}"#),
            false,
            None,
        ),
        (
            "variable name dot",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "variables": {"a.b": "x"}}]}"#),
            false,
            None,
        ),
        (
            "variable name empty",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "variables": {"": "x"}}]}"#),
            false,
            None,
        ),
        (
            "variable name 129",
            format!(
                r#"{{"releaseId": "r1", "pipelines": [{{"name": "a", "variables": {{"{}": "x"}}}}]}}"#,
                "v".repeat(129)
            ),
            false,
            None,
        ),
        (
            "variable value number",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "variables": {"A": 1}}]}"#),
            false,
            None,
        ),
        (
            "variable value empty",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "variables": {"A": ""}}]}"#),
            false,
            None,
        ),
        (
            "variable value 1001",
            format!(
                r#"{{"releaseId": "r1", "pipelines": [{{"name": "a", "variables": {{"A": "{}"}}}}]}}"#,
                "x".repeat(1001)
            ),
            false,
            None,
        ),
        (
            "51 revisions",
            format!(
                r#"{{"releaseId": "r1", "pipelines": [{{"name": "a", "sourceRevisions": {}}}]}}"#,
                revs(51)
            ),
            false,
            None,
        ),
        (
            "revisions object",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "sourceRevisions": {}}]}"#),
            false,
            None,
        ),
        (
            "revision string",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "sourceRevisions": ["abc"]}]}"#),
            false,
            None,
        ),
        (
            "revision missing fields",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "sourceRevisions": [{}]}]}"#),
            false,
            None,
        ),
        (
            "revision bad type",
            s(
                r#"{"releaseId": "r1", "pipelines": [{"name": "a", "sourceRevisions": [{"actionName": "S", "revisionType": "BRANCH", "revisionValue": "x"}]}]}"#,
            ),
            false,
            None,
        ),
        (
            "revision empty value",
            s(
                r#"{"releaseId": "r1", "pipelines": [{"name": "a", "sourceRevisions": [{"actionName": "S", "revisionType": "COMMIT_ID", "revisionValue": ""}]}]}"#,
            ),
            false,
            None,
        ),
        (
            "revision value 1501",
            format!(
                r#"{{"releaseId": "r1", "pipelines": [{{"name": "a", "sourceRevisions": [{{"actionName": "S", "revisionType": "COMMIT_ID", "revisionValue": "{}"}}]}}]}}"#,
                "x".repeat(1501)
            ),
            false,
            None,
        ),
        (
            "revision bad action name",
            s(
                r#"{"releaseId": "r1", "pipelines": [{"name": "a", "sourceRevisions": [{"actionName": "my source", "revisionType": "COMMIT_ID", "revisionValue": "x"}]}]}"#,
            ),
            false,
            None,
        ),
        // ---- what the schema cannot express: the schema accepts, the parser rejects
        (
            "duplicate strings",
            s(r#"{"releaseId": "r1", "pipelines": ["a", "a"]}"#),
            false,
            Some(DuplicatePipeline),
        ),
        (
            "duplicate string and object",
            s(r#"{"releaseId": "r1", "pipelines": ["a", {"name": "a", "wave": 2}]}"#),
            false,
            Some(DuplicatePipeline),
        ),
        (
            "duplicate source action",
            s(
                r#"{"releaseId": "r1", "pipelines": [{"name": "a", "sourceRevisions": [
            {"actionName": "S", "revisionType": "COMMIT_ID", "revisionValue": "x"},
            {"actionName": "S", "revisionType": "COMMIT_ID", "revisionValue": "y"}]}]}"#,
            ),
            false,
            Some(DuplicateSourceAction),
        ),
        (
            "numeric id 1e+3",
            s(r#"{"releaseId": 1e+3, "pipelines": ["a"]}"#),
            false,
            Some(NumericIdText),
        ),
        (
            "numeric id of 81 digits",
            format!(r#"{{"releaseId": {}, "pipelines": ["a"]}}"#, "1".repeat(81)),
            false,
            Some(NumericIdText),
        ),
        (
            "wave 2.0",
            s(r#"{"releaseId": "r1", "pipelines": [{"name": "a", "wave": 2.0}]}"#),
            false,
            Some(IntegerWrittenAsFloat),
        ),
        (
            "maxConcurrency 1e1",
            s(r#"{"releaseId": "r1", "maxConcurrency": 1e1, "pipelines": ["a"]}"#),
            false,
            Some(IntegerWrittenAsFloat),
        ),
        ("over 256 KiB", padded, false, Some(FileSize)),
        (
            "gates: alarms and windows",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"alarmNames": ["prod-api-5xx"], "alarmPrefixes": ["prod-"], "insufficientData": "pass", "failOpen": true, "health": {"enabled": true, "regions": ["us-east-1"], "services": ["EC2"]}, "windows": {"timezone": "Europe/Berlin", "allow": [{"days": ["Mon", "Tue"], "from": "22:00", "to": "06:00"}, {"from": "09:00", "to": "24:00"}], "deny": [{"from": "2026-12-20T00:00", "to": "2027-01-04T00:00", "reason": "freeze"}]}, "bakeMinutes": 1440, "maxWaitMinutes": 10080}"#
            ),
            true,
            None,
        ),
        (
            "gates: empty",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{}"#
            ),
            true,
            None,
        ),
        (
            "gates: a list",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"[]"#
            ),
            false,
            None,
        ),
        (
            "gates: waitMinutes",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"waitMinutes": 5}"#
            ),
            false,
            None,
        ),
        (
            "gates: executionId",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"executionId": "e-1"}"#
            ),
            false,
            None,
        ),
        (
            "gates: bakeMinutes 1441",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"bakeMinutes": 1441}"#
            ),
            false,
            None,
        ),
        (
            "gates: maxWaitMinutes 0",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"maxWaitMinutes": 0}"#
            ),
            false,
            None,
        ),
        (
            "gates: maxWaitMinutes 10081",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"maxWaitMinutes": 10081}"#
            ),
            false,
            None,
        ),
        (
            "gates: empty alarm name",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"alarmNames": [""]}"#
            ),
            false,
            None,
        ),
        (
            "gates: insufficientData ignore",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"insufficientData": "ignore"}"#
            ),
            false,
            None,
        ),
        (
            "gates: unknown field",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"alarms": ["x"]}"#
            ),
            false,
            None,
        ),
        (
            "gates: health unknown field",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"health": {"on": true}}"#
            ),
            false,
            None,
        ),
        (
            "gates: windows without timezone",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"windows": {"allow": []}}"#
            ),
            false,
            None,
        ),
        (
            "gates: day Monday",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"windows": {"timezone": "UTC", "allow": [{"days": ["Monday"], "from": "09:00", "to": "10:00"}]}}"#
            ),
            false,
            None,
        ),
        (
            "gates: day twice",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"windows": {"timezone": "UTC", "allow": [{"days": ["Mon", "Mon"], "from": "09:00", "to": "10:00"}]}}"#
            ),
            false,
            None,
        ),
        (
            "gates: from 9:00",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"windows": {"timezone": "UTC", "allow": [{"from": "9:00", "to": "10:00"}]}}"#
            ),
            false,
            None,
        ),
        (
            "gates: from 24:00",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"windows": {"timezone": "UTC", "allow": [{"from": "24:00", "to": "10:00"}]}}"#
            ),
            false,
            None,
        ),
        (
            "gates: to 24:01",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"windows": {"timezone": "UTC", "allow": [{"from": "09:00", "to": "24:01"}]}}"#
            ),
            false,
            None,
        ),
        (
            "gates: allow without to",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"windows": {"timezone": "UTC", "allow": [{"from": "09:00"}]}}"#
            ),
            false,
            None,
        ),
        (
            "gates: deny date only",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"windows": {"timezone": "UTC", "deny": [{"from": "2026-12-20", "to": "2027-01-04T00:00"}]}}"#
            ),
            false,
            None,
        ),
        (
            "gates: deny reason number",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"windows": {"timezone": "UTC", "deny": [{"from": "2026-12-20T00:00", "to": "2027-01-04T00:00", "reason": 1}]}}"#
            ),
            false,
            None,
        ),
        (
            "gates: unknown time zone",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"windows": {"timezone": "Mars/Olympus"}}"#
            ),
            false,
            Some(UnknownTimeZone),
        ),
        (
            "gates: empty allow window",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"windows": {"timezone": "UTC", "allow": [{"from": "09:00", "to": "09:00"}]}}"#
            ),
            false,
            Some(WindowOrder),
        ),
        (
            "gates: deny window backwards",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"windows": {"timezone": "UTC", "deny": [{"from": "2027-01-04T00:00", "to": "2026-12-20T00:00"}]}}"#
            ),
            false,
            Some(WindowOrder),
        ),
        (
            "gates: 30 February",
            format!(
                r#"{{"releaseId": "r1", "pipelines": ["a"], "gates": {}}}"#,
                r#"{"windows": {"timezone": "UTC", "deny": [{"from": "2026-02-30T00:00", "to": "2026-03-02T00:00"}]}}"#
            ),
            false,
            Some(NotADate),
        ),
    ]
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema() {
    let schema = schema_json();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    if let Err(e) = jsonschema::meta::validate(&schema) {
        panic!("the schema breaks the draft 2020-12 meta-schema: {e}");
    }
    // Editors complete from titles and descriptions: every property has them.
    fn walk(v: &Value, at: &str) {
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (name, p) in props {
                let at = format!("{at}.{name}");
                if p.get("$ref").is_none() {
                    assert!(p.get("title").is_some(), "{at} has no title");
                    assert!(p.get("description").is_some(), "{at} has no description");
                }
                walk(p, &at);
            }
        }
        if let Some(defs) = v.get("$defs").and_then(Value::as_object) {
            for (name, d) in defs {
                walk(d, &format!("#/$defs/{name}"));
            }
        }
    }
    walk(&schema, "$");
    // It says what it cannot express.
    let description = schema["description"].as_str().unwrap();
    for words in [
        "appear once",
        "actionName",
        "256 KiB",
        "kept exactly as written",
        "2.0",
        "IANA time zone",
        "real dates",
    ] {
        assert!(description.contains(words), "description lacks {words:?}");
    }
}

#[test]
fn the_schema_and_the_parser_agree_on_the_corpus() {
    let mut disagreements = Vec::new();
    for (name, text, parser_should_accept, unexpressible) in corpus() {
        let parsed = Manifest::parse(text.as_bytes());
        assert_eq!(
            parsed.is_ok(),
            parser_should_accept,
            "corpus entry {name:?}: parser said {parsed:?}"
        );
        let schema = schema_errors(&text);
        let schema_accepts = schema.is_empty();
        match unexpressible {
            None if schema_accepts != parsed.is_ok() => disagreements.push(format!(
                "{name}: schema {} ({schema:?}), parser {} ({parsed:?})",
                if schema_accepts { "accepts" } else { "rejects" },
                if parsed.is_ok() { "accepts" } else { "rejects" },
            )),
            Some(rule) => {
                // The documented gap: the schema lets it through, the parser catches it.
                assert!(
                    schema_accepts,
                    "{name} ({rule:?}): the schema now rejects it ({schema:?}); move it to the agreeing cases"
                );
                assert!(
                    parsed.is_err(),
                    "{name} ({rule:?}): the parser must reject it"
                );
            }
            None => {}
        }
    }
    assert!(
        disagreements.is_empty(),
        "schema and parser disagree:\n{}",
        disagreements.join("\n")
    );
}

#[test]
fn every_unexpressible_rule_is_in_the_corpus() {
    use Unexpressible::*;
    let listed: Vec<Unexpressible> = corpus().into_iter().filter_map(|c| c.3).collect();
    for rule in [
        DuplicatePipeline,
        DuplicateSourceAction,
        NumericIdText,
        IntegerWrittenAsFloat,
        FileSize,
        UnknownTimeZone,
        WindowOrder,
        NotADate,
    ] {
        assert!(listed.contains(&rule), "{rule:?} has no corpus entry");
    }
}

#[test]
fn the_schema_examples_are_valid_manifests() {
    let schema = schema_json();
    let examples = schema["examples"].as_array().expect("top-level examples");
    assert!(!examples.is_empty());
    for example in examples {
        let text = example.to_string();
        assert!(schema_errors(&text).is_empty(), "{text}");
        Manifest::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
    // The examples of the pipeline definition are pipelines a manifest accepts.
    for p in schema["$defs"]["pipeline"]["examples"].as_array().unwrap() {
        let text = json!({"releaseId": "r1", "pipelines": [p]}).to_string();
        assert!(schema_errors(&text).is_empty(), "{text}");
        Manifest::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
}

#[test]
fn the_sample_event_manifest_is_valid() {
    let path = repo_root().join("events/release-manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} must exist (the sample manifest of events/): {e}",
            path.display()
        )
    });
    let errors = schema_errors(&text);
    assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    Manifest::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

// ---------------------------------------------------------------------------------------------
// Agreement on generated manifests: a valid base with random edits, none of them in an
// unexpressible class (names stay unique, numbers are written as integers).

/// One edit of a manifest, each either harmless or breaking one expressible rule.
fn edit() -> impl Strategy<Value = (usize, &'static str, Value)> {
    let at = 0usize..3;
    let top = select(vec![
        ("releaseId", json!("r-1")),
        ("releaseId", json!("")),
        ("releaseId", json!("bad id")),
        ("releaseId", json!("x".repeat(81))),
        ("releaseId", json!(7)),
        ("releaseId", json!(null)),
        ("description", json!("d")),
        ("description", json!(null)),
        ("description", json!(3)),
        ("maxConcurrency", json!(1)),
        ("maxConcurrency", json!(40)),
        ("maxConcurrency", json!(0)),
        ("maxConcurrency", json!(41)),
        ("maxConcurrency", json!("5")),
        ("onFailure", json!("continue")),
        ("onFailure", json!("abort")),
        ("unknown", json!(1)),
        ("pipelines", json!([])),
        ("pipelines", json!("a")),
        (
            "gates",
            json!({"alarmPrefixes": ["prod-"], "bakeMinutes": 15}),
        ),
        (
            "gates",
            json!({"windows": {"timezone": "UTC", "allow": [{"from": "22:00", "to": "06:00"}]}}),
        ),
        ("gates", json!({"bakeMinutes": 1441})),
        ("gates", json!({"waitMinutes": 5})),
        (
            "gates",
            json!({"windows": {"timezone": "UTC", "allow": [{"days": ["Sun"], "from": "9:00", "to": "10:00"}]}}),
        ),
        ("gates", json!(null)),
    ]);
    let pipeline = select(vec![
        ("wave", json!(1)),
        ("wave", json!(500)),
        ("wave", json!(0)),
        ("wave", json!(501)),
        ("wave", json!(1.5)),
        ("wave", json!("2")),
        ("timeoutMinutes", json!(10080)),
        ("timeoutMinutes", json!(10081)),
        ("timeoutMinutes", json!(0)),
        ("variables", json!({"A": "1"})),
        ("variables", json!({"A": 1})),
        ("variables", json!({"a b": "1"})),
        ("variables", json!({"A": ""})),
        ("variables", json!([])),
        ("sourceRevisions", json!([])),
        (
            "sourceRevisions",
            json!([{"actionName": "S", "revisionType": "COMMIT_ID", "revisionValue": "x"}]),
        ),
        (
            "sourceRevisions",
            json!([{"actionName": "S", "revisionType": "BRANCH", "revisionValue": "x"}]),
        ),
        (
            "sourceRevisions",
            json!([{"actionName": "S", "revisionType": "COMMIT_ID"}]),
        ),
        (
            "sourceRevisions",
            json!([{"actionName": "S", "revisionType": "COMMIT_ID", "revisionValue": "x", "y": 1}]),
        ),
        ("sourceRevisions", json!(["x"])),
        ("name", json!("")),
        ("name", json!("with space")),
        ("name", json!("p".repeat(101))),
        ("name", json!(5)),
        ("extra", json!(true)),
        ("__string_form", json!(null)),
        ("__bad_entry", json!(null)),
    ]);
    prop_oneof![
        (Just(usize::MAX), top).prop_map(|(i, (k, v))| (i, k, v)),
        (at, pipeline).prop_map(|(i, (k, v))| (i, k, v)),
    ]
}

fn apply(m: &mut Value, (at, key, value): &(usize, &'static str, Value)) {
    if *at == usize::MAX {
        m[*key] = value.clone();
        return;
    }
    let Some(items) = m.get_mut("pipelines").and_then(Value::as_array_mut) else {
        return;
    };
    let Some(item) = items.get_mut(*at) else {
        return;
    };
    match *key {
        "__string_form" => {
            if let Some(name) = item.get("name").cloned() {
                *item = name;
            }
        }
        "__bad_entry" => *item = json!(42),
        _ => {
            if item.is_string() {
                *item = json!({"name": item.clone()});
            }
            if let Some(o) = item.as_object_mut() {
                o.insert((*key).to_owned(), value.clone());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_schema_and_the_parser_agree_on_edited_manifests(edits in proptest::collection::vec(edit(), 0..5)) {
        let mut m = json!({
            "releaseId": "r1",
            "pipelines": ["p0", {"name": "p1", "wave": 2}, {"name": "p2", "variables": {"K": "v"}}],
        });
        for e in &edits {
            apply(&mut m, e);
        }
        let text = m.to_string();
        let parsed = Manifest::parse(text.as_bytes());
        let schema = schema_errors(&text);
        prop_assert_eq!(
            schema.is_empty(),
            parsed.is_ok(),
            "{}\nschema: {:?}\nparser: {:?}",
            text,
            schema,
            parsed
        );
    }
}
