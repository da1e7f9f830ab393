//! Property tests of the manifest parser: it never panics, every error has a path, and a valid
//! manifest survives a round trip through its normalized form.

use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;
use proptest::sample::select;
use rm_core::error::Rejection;
use rm_core::manifest::{
    Manifest, OnFailure, PipelineSpec, SourceRevision, DEFAULT_MAX_CONCURRENCY,
    DEFAULT_TIMEOUT_MINUTES, REVISION_TYPES,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A regex strategy compiled once (a `&str` strategy compiles its regex for every value).
fn re(pattern: &str) -> BoxedStrategy<String> {
    proptest::string::string_regex(pattern).unwrap().boxed()
}

#[track_caller]
fn assert_errors_well_formed(result: &Result<Manifest, Rejection>) {
    if let Err(Rejection(errors)) = result {
        assert!(!errors.is_empty(), "a rejection without errors");
        for e in errors {
            assert!(e.path.starts_with('$'), "path without $: {e:?}");
            assert!(!e.message.is_empty(), "empty message: {e:?}");
        }
    }
}

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        re(".{0,20}").prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(Value::Array),
            btree_map(re(".{0,10}"), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON value shaped like a manifest: the right field names with values of any kind, so the
/// deeper checks run too.
fn manifest_like() -> impl Strategy<Value = Value> {
    let field_value = prop_oneof![
        any_json(),
        re("[A-Za-z0-9.@_ /-]{0,12}").prop_map(Value::String),
        (-3i64..600).prop_map(|n| json!(n)),
    ];
    let revision = btree_map(
        select(vec!["actionName", "revisionType", "revisionValue", "other"]),
        prop_oneof![
            select(REVISION_TYPES.to_vec()).prop_map(|s| json!(s)),
            field_value.clone(),
        ],
        0..4,
    )
    .prop_map(|m| json!(m));
    let pipeline_obj = btree_map(
        select(vec![
            "name",
            "wave",
            "variables",
            "sourceRevisions",
            "timeoutMinutes",
            "x",
        ]),
        prop_oneof![
            field_value.clone(),
            vec(revision, 0..3).prop_map(Value::Array),
            btree_map(re(".{0,6}"), field_value.clone(), 0..4).prop_map(|m| json!(m)),
        ],
        0..6,
    )
    .prop_map(|m| json!(m));
    let pipeline = prop_oneof![
        re("[A-Za-z0-9.@_ /-]{0,8}").prop_map(Value::String),
        pipeline_obj,
        any_json(),
    ];
    btree_map(
        select(vec![
            "releaseId",
            "description",
            "pipelines",
            "maxConcurrency",
            "onFailure",
            "extra",
        ]),
        prop_oneof![
            field_value,
            vec(pipeline, 0..6).prop_map(Value::Array),
            select(vec!["stop", "continue"]).prop_map(|s| json!(s)),
        ],
        0..6,
    )
    .prop_map(|m| json!(m))
}

/// What a generated valid manifest should normalize to, and its JSON text.
#[derive(Debug, Clone)]
struct Generated {
    text: String,
    expected: Manifest,
}

fn release_id() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        // A string id: (JSON text, id).
        prop_oneof![4 => re("[A-Za-z0-9._-]{1,12}"), 1 => re("[A-Za-z0-9._-]{75,80}")]
            .prop_map(|id: String| (json!(id).to_string(), id)),
        // A number, kept as written: trailing zeros, exponents, negatives.
        re("-?(0|[1-9][0-9]{0,10})(\\.[0-9]{1,8})?([eE]-?[0-9]{1,2})?")
            .prop_map(|n| (n.clone(), n)),
    ]
}

fn revisions() -> impl Strategy<Value = Vec<SourceRevision>> {
    let value = re("\\PC{1,40}");
    btree_set(re("[A-Za-z0-9.@_-]{1,20}"), 0..3).prop_flat_map(move |actions| {
        let n = actions.len();
        (
            Just(actions),
            vec(select(REVISION_TYPES.to_vec()), n),
            vec(value.clone(), n),
        )
            .prop_map(|(actions, types, values)| {
                actions
                    .into_iter()
                    .zip(types)
                    .zip(values)
                    .map(|((action_name, t), revision_value)| SourceRevision {
                        action_name,
                        revision_type: t.to_owned(),
                        revision_value,
                    })
                    .collect()
            })
    })
}

fn pipeline_details() -> impl Strategy<
    Value = (
        u32,
        Option<u32>,
        BTreeMap<String, String>,
        Vec<SourceRevision>,
        bool,
    ),
> {
    (
        prop_oneof![3 => 1u32..5, 1 => 1u32..=500],
        // At most 11 pipelines of 3,000 minutes, one at a time, stay within the 30-day worst
        // case every valid manifest keeps (the 10,080 bound is a unit test's).
        proptest::option::of(1u32..=3_000),
        btree_map(re("[A-Za-z0-9@_-]{1,30}"), re("\\PC{1,30}"), 0..5),
        revisions(),
        any::<bool>(),
    )
}

fn valid_manifest() -> impl Strategy<Value = Generated> {
    let details = pipeline_details().boxed();
    (
        release_id(),
        proptest::option::of(re("\\PC{0,60}")),
        proptest::option::of(1u32..=40),
        proptest::option::of(any::<bool>()),
        btree_set(
            prop_oneof![9 => re("[A-Za-z0-9.@_-]{1,12}"), 1 => re("[A-Za-z0-9.@_-]{95,100}")],
            1..12,
        ),
    )
        .prop_flat_map(move |(id, description, max_conc, on_failure, names)| {
            let n = names.len();
            (
                Just((id, description, max_conc, on_failure)),
                Just(names.into_iter().collect::<Vec<_>>()).prop_shuffle(),
                vec(details.clone(), n),
            )
        })
        .prop_map(
            |((id, description, max_conc, on_failure), names, details)| {
                let mut specs = Vec::new();
                let mut items = Vec::new();
                for (name, (wave, timeout, variables, source_revisions, short)) in
                    names.into_iter().zip(details)
                {
                    let is_default = wave == 1
                        && timeout.is_none()
                        && variables.is_empty()
                        && source_revisions.is_empty();
                    if is_default && short {
                        items.push(json!(name));
                    } else {
                        let mut o = Map::new();
                        o.insert("name".into(), json!(name));
                        if wave != 1 || short {
                            o.insert("wave".into(), json!(wave));
                        }
                        if let Some(t) = timeout {
                            o.insert("timeoutMinutes".into(), json!(t));
                        }
                        if !variables.is_empty() {
                            o.insert("variables".into(), json!(variables));
                        }
                        if !source_revisions.is_empty() {
                            o.insert("sourceRevisions".into(), json!(source_revisions));
                        }
                        items.push(Value::Object(o));
                    }
                    specs.push(PipelineSpec {
                        name,
                        wave,
                        variables,
                        source_revisions,
                        timeout_minutes: timeout.unwrap_or(DEFAULT_TIMEOUT_MINUTES),
                    });
                }
                let on_failure_value = on_failure.map(|c| if c { "continue" } else { "stop" });
                let mut top = Map::new();
                if let Some(d) = &description {
                    top.insert("description".into(), json!(d));
                }
                top.insert("pipelines".into(), Value::Array(items));
                if let Some(c) = max_conc {
                    top.insert("maxConcurrency".into(), json!(c));
                }
                if let Some(f) = on_failure_value {
                    top.insert("onFailure".into(), json!(f));
                }
                // The id goes in as raw text, so numbers keep exactly their digits.
                let rest = Value::Object(top).to_string();
                let text = format!("{{\"releaseId\": {}, {}", id.0, &rest[1..]);
                let expected = Manifest {
                    release_id: rm_core::ReleaseId::parse(&id.1).unwrap(),
                    description,
                    pipelines: specs,
                    max_concurrency: max_conc.unwrap_or(DEFAULT_MAX_CONCURRENCY),
                    on_failure: match on_failure_value {
                        Some("continue") => OnFailure::Continue,
                        _ => OnFailure::Stop,
                    },
                    approvals: Vec::new(),
                    approval_timeout_minutes: rm_core::manifest::DEFAULT_APPROVAL_TIMEOUT_MINUTES,
                    gates: None,
                    skip_unchanged: false,
                };
                Generated { text, expected }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        let result = Manifest::parse(&bytes);
        assert_errors_well_formed(&result);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let result = Manifest::parse(text.as_bytes());
        assert_errors_well_formed(&result);
    }

    #[test]
    fn arbitrary_json_never_panics(v in any_json()) {
        let result = Manifest::parse(v.to_string().as_bytes());
        assert_errors_well_formed(&result);
        prop_assert_eq!(Manifest::from_value(&v, None), result);
    }

    #[test]
    fn manifest_shaped_json_never_panics(v in manifest_like()) {
        let text = v.to_string();
        let result = Manifest::parse(text.as_bytes());
        assert_errors_well_formed(&result);
        // A BOM changes nothing.
        let mut with_bom = b"\xEF\xBB\xBF".to_vec();
        with_bom.extend_from_slice(text.as_bytes());
        prop_assert_eq!(Manifest::parse(&with_bom), result.clone());
        // Reading the text and validating a parsed Value agree exactly, errors included.
        prop_assert_eq!(Manifest::from_value(&v, None), result.clone());
        // A manifest that passes round-trips.
        if let Ok(m) = result {
            let again = Manifest::parse(&serde_json::to_vec(&m).unwrap()).unwrap();
            prop_assert_eq!(again, m);
        }
    }

}

proptest! {
    // Generating whole manifests costs more: fewer cases.
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_generated_valid_manifest_parses_to_what_it_says(g in valid_manifest()) {
        let m = match Manifest::parse(g.text.as_bytes()) {
            Ok(m) => m,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{}", g.text))),
        };
        prop_assert_eq!(&m, &g.expected);
        // Waves: ascending, each in manifest order, together every pipeline once.
        let waves = m.waves();
        prop_assert!(waves.windows(2).all(|w| w[0].number < w[1].number));
        let mut seen = 0;
        for w in &waves {
            prop_assert!(!w.pipelines.is_empty());
            prop_assert!(w.pipelines.iter().all(|p| p.wave == w.number));
            let order: Vec<usize> = w
                .pipelines
                .iter()
                .map(|p| m.pipelines.iter().position(|q| q.name == p.name).unwrap())
                .collect();
            prop_assert!(order.windows(2).all(|o| o[0] < o[1]));
            seen += w.pipelines.len();
        }
        prop_assert_eq!(seen, m.pipelines.len());
    }

    #[test]
    fn a_normalized_manifest_round_trips(g in valid_manifest()) {
        let m = Manifest::parse(g.text.as_bytes()).unwrap();
        let text = serde_json::to_string(&m).unwrap();
        let again = Manifest::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(&again, &m);
        // And serializing again gives the same text: normalization is a fixed point.
        prop_assert_eq!(serde_json::to_string(&again).unwrap(), text);
    }
}
