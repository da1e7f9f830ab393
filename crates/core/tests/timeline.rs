//! `rm_core::view::timeline::render`: the release JSON as an SVG Gantt chart. The SVG must
//! parse as XML, have one bar per run with the run's status class, and render with resvg to a
//! PNG, text drawn from the font the repository ships (tests/fonts), never a system font; a
//! small release is compared with a golden image (`UPDATE_GOLDEN=1` writes it).

use proptest::prelude::*;
use resvg::{tiny_skia, usvg};
use rm_core::view::timeline::render;
use roxmltree::{Document, Node};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn fixture(name: &str) -> Value {
    let path = tests_dir().join("fixtures/timeline").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn svg(release: &Value) -> String {
    render(release).unwrap_or_else(|e| panic!("{e}"))
}

fn parse(svg: &str) -> Document<'_> {
    Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}\n{svg}"))
}

fn classes<'a>(n: &Node<'a, '_>) -> Vec<&'a str> {
    n.attribute("class")
        .map(|c| c.split_whitespace().collect())
        .unwrap_or_default()
}

fn with_class<'a, 'i>(doc: &'a Document<'i>, class: &str) -> Vec<Node<'a, 'i>> {
    doc.descendants()
        .filter(|n| classes(n).contains(&class))
        .collect()
}

fn text_of(n: &Node) -> String {
    n.children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .collect()
}

fn texts(doc: &Document, class: &str) -> Vec<String> {
    with_class(doc, class).iter().map(text_of).collect()
}

fn num(n: &Node, attribute: &str) -> f64 {
    n.attribute(attribute)
        .unwrap_or_else(|| panic!("no {attribute}"))
        .parse()
        .unwrap()
}

/// Each run's bar: (pipeline, attempt, status), from `data-*` and the `status-*` class.
fn bars(doc: &Document) -> Vec<(String, u32, String)> {
    with_class(doc, "bar")
        .iter()
        .map(|n| {
            assert_eq!(n.tag_name().name(), "rect");
            let status: Vec<&str> = classes(n)
                .into_iter()
                .filter_map(|c| c.strip_prefix("status-"))
                .collect();
            assert_eq!(status.len(), 1, "one status class: {n:?}");
            let title = n.children().find(|c| c.has_tag_name("title"));
            assert!(title.is_some(), "a bar has its tooltip: {n:?}");
            (
                n.attribute("data-pipeline").unwrap().to_owned(),
                n.attribute("data-attempt").unwrap().parse().unwrap(),
                status[0].to_owned(),
            )
        })
        .collect()
}

/// The runs of the release JSON, worked out here from each pipeline's `history[]`: one per
/// pipeline and attempt that has an entry other than NotStarted, with its last status.
fn runs_of(release: &Value) -> Vec<(String, u32, String)> {
    let mut runs = Vec::new();
    for p in release["pipelines"].as_array().unwrap() {
        let mut by_attempt: BTreeMap<u64, String> = BTreeMap::new();
        for h in p["history"].as_array().unwrap() {
            let status = h["status"].as_str().unwrap();
            if status != "NotStarted" {
                by_attempt.insert(h["attempt"].as_u64().unwrap_or(1), status.to_owned());
            }
        }
        for (attempt, status) in by_attempt {
            runs.push((
                p["name"].as_str().unwrap().to_owned(),
                attempt as u32,
                status,
            ));
        }
    }
    runs
}

fn run(name: &str, attempt: u32, status: &str) -> (String, u32, String) {
    (name.to_owned(), attempt, status.to_owned())
}

#[test]
fn a_two_wave_release_has_a_bar_per_pipeline_in_its_wave_band() {
    let release = fixture("two-waves.json");
    let svg = svg(&release);
    let doc = parse(&svg);
    assert_eq!(bars(&doc), runs_of(&release));
    assert_eq!(bars(&doc).len(), 4);
    assert!(bars(&doc).iter().all(|b| b.2 == "Succeeded"));
    assert_eq!(
        texts(&doc, "title"),
        ["Release 2026.03.1 — SUCCEEDED — attempt 1"]
    );
    assert_eq!(
        texts(&doc, "wave-label"),
        ["Wave 1 — Succeeded", "Wave 2 — Succeeded"]
    );
    assert_eq!(
        texts(&doc, "pipeline-label"),
        [
            "ledger-worker",
            "payments-db-migrate",
            "checkout-web",
            "payments-api"
        ]
    );
    // Each bar lies in its wave's band, and wave 2's bars start where wave 1's end.
    let bands = with_class(&doc, "band");
    let band = |wave: &str| {
        let b = bands
            .iter()
            .find(|b| b.attribute("data-wave") == Some(wave))
            .unwrap();
        (num(b, "y"), num(b, "y") + num(b, "height"))
    };
    for bar in with_class(&doc, "bar") {
        let name = bar.attribute("data-pipeline").unwrap();
        let wave = if name.starts_with("ledger") || name.starts_with("payments-db") {
            "1"
        } else {
            "2"
        };
        let (top, bottom) = band(wave);
        assert!(
            top <= num(&bar, "y") && num(&bar, "y") + num(&bar, "height") <= bottom,
            "{name} in wave {wave}"
        );
    }
    let x = |name: &str| {
        let bar = with_class(&doc, "bar")
            .into_iter()
            .find(|b| b.attribute("data-pipeline") == Some(name))
            .unwrap();
        (num(&bar, "x"), num(&bar, "x") + num(&bar, "width"))
    };
    assert!((x("ledger-worker").1 - x("checkout-web").0).abs() < 0.01);
    // The legend names the one status that appears.
    let swatches: Vec<&str> = with_class(&doc, "swatch")
        .iter()
        .filter_map(|s| s.attribute("data-status"))
        .collect();
    assert_eq!(swatches, ["Succeeded"]);
}

#[test]
fn a_failed_then_retried_release_has_a_bar_per_attempt() {
    let release = fixture("retried.json");
    let svg = svg(&release);
    let doc = parse(&svg);
    assert_eq!(
        bars(&doc),
        [
            run("a", 1, "Succeeded"),
            run("b", 1, "Failed"),
            run("b", 2, "Succeeded"),
            run("c", 1, "Stopped"),
            run("c", 2, "Succeeded"),
            run("d", 2, "Succeeded"),
        ]
    );
    assert_eq!(bars(&doc), runs_of(&release));
    assert_eq!(
        texts(&doc, "title"),
        ["Release r-retry — SUCCEEDED — attempt 2"]
    );
    // The retry's request, a dashed line labelled with its attempt, between b's two bars.
    let boundary = with_class(&doc, "attempt-boundary");
    assert_eq!(boundary.len(), 1);
    assert_eq!(boundary[0].attribute("data-attempt"), Some("2"));
    assert_eq!(texts(&doc, "attempt-label"), ["attempt 2"]);
    let line_x = num(&boundary[0], "x1");
    let b: Vec<Node> = with_class(&doc, "bar")
        .into_iter()
        .filter(|n| n.attribute("data-pipeline") == Some("b"))
        .collect();
    assert!(num(&b[0], "x") + num(&b[0], "width") <= line_x && line_x <= num(&b[1], "x"));
    let mut legend: Vec<&str> = with_class(&doc, "swatch")
        .iter()
        .filter_map(|s| s.attribute("data-status"))
        .collect();
    legend.sort();
    assert_eq!(legend, ["Failed", "Stopped", "Succeeded"]);
}

#[test]
fn a_failed_release_has_its_cause_in_the_title_and_no_bar_for_what_never_started() {
    let release = fixture("failed.json");
    let doc_text = svg(&release);
    let doc = parse(&doc_text);
    assert_eq!(
        texts(&doc, "title"),
        ["Release r-retry — FAILED — attempt 1"]
    );
    assert_eq!(
        texts(&doc, "cause"),
        ["pipelines that did not succeed: b (Failed), c (Stopped)"]
    );
    assert_eq!(
        bars(&doc),
        [
            run("a", 1, "Succeeded"),
            run("b", 1, "Failed"),
            run("c", 1, "Stopped")
        ]
    );
    assert_eq!(texts(&doc, "not-started"), ["not started"]);
    assert_eq!(
        texts(&doc, "wave-label"),
        ["Wave 1 — Failed", "Wave 2 — Pending"]
    );
}

#[test]
fn waits_are_shaded_spans_with_their_reasons() {
    for kind in ["approval", "gate", "bake", "halt"] {
        let release = fixture(&format!("{kind}.json"));
        let svg = svg(&release);
        let doc = parse(&svg);
        let expected: Vec<&Value> = release["waits"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["kind"] == kind)
            .collect();
        assert!(!expected.is_empty(), "{kind}: the fixture has one");
        let spans = with_class(&doc, &format!("wait-{kind}"));
        assert_eq!(spans.len(), expected.len(), "{kind}");
        for (span, wait) in spans.iter().zip(&expected) {
            assert!(classes(span).contains(&"wait"), "{kind}");
            let tooltip = text_of(&span.children().find(|c| c.has_tag_name("title")).unwrap());
            for reason in wait["reasons"].as_array().unwrap() {
                assert!(
                    tooltip.contains(reason.as_str().unwrap()),
                    "{kind}: {tooltip}"
                );
            }
            // A wave's wait covers its band; a halt covers every band.
            let (top, bottom) = (num(span, "y"), num(span, "y") + num(span, "height"));
            let bands = with_class(&doc, "band");
            let covered: Vec<&str> = bands
                .iter()
                .filter(|b| top <= num(b, "y") && num(b, "y") + num(b, "height") <= bottom)
                .filter_map(|b| b.attribute("data-wave"))
                .collect();
            if kind == "halt" {
                assert_eq!(covered, ["1", "2"], "{kind}");
            } else {
                let wave = wait["wave"].to_string();
                assert_eq!(covered, [wave.as_str()], "{kind}");
            }
            assert!(num(span, "width") > 10.0, "{kind}: {svg}");
        }
        let legend: Vec<&str> = with_class(&doc, "swatch")
            .iter()
            .filter_map(|s| s.attribute("data-wait"))
            .collect();
        assert_eq!(legend, [kind]);
        assert!(
            texts(&doc, "wait-label")
                .iter()
                .any(|l| l.starts_with(&format!("{kind}: "))),
            "{kind}: the reason on the chart"
        );
        assert_eq!(bars(&doc), runs_of(&release), "{kind}");
    }
}

#[test]
fn a_skipped_run_is_a_thin_mark_with_its_own_colour() {
    let release = fixture("skipped.json");
    let svg = svg(&release);
    let doc = parse(&svg);
    assert_eq!(bars(&doc), runs_of(&release));
    let skipped: Vec<Node> = with_class(&doc, "status-Skipped");
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].attribute("data-pipeline"), Some("ledger-worker"));
    assert!(num(&skipped[0], "width") <= 4.0);
    let succeeded = with_class(&doc, "status-Succeeded");
    assert_ne!(skipped[0].attribute("fill"), succeeded[0].attribute("fill"));
    let tooltip = text_of(
        &skipped[0]
            .children()
            .find(|c| c.has_tag_name("title"))
            .unwrap(),
    );
    assert!(
        tooltip.contains("0f0e0d0c-0b0a-4009-8008-000000000007"),
        "{tooltip}"
    );
    assert!(with_class(&doc, "swatch")
        .iter()
        .any(|s| s.attribute("data-status") == Some("Skipped")));
}

/// `n` pipelines in `waves` waves, all succeeded but one failed then retried per wave.
fn big_release(n: usize, waves: u32) -> Value {
    let t = |s: u64| {
        format!(
            "2026-12-01T{:02}:{:02}:{:02}Z",
            8 + s / 3600,
            s / 60 % 60,
            s % 60
        )
    };
    let per_wave = n / waves as usize;
    let wave_of = |i: usize| (i / per_wave) as u32 + 1;
    let pipelines: Vec<Value> = (0..n)
        .map(|i| {
            let w = wave_of(i) as u64;
            let start = (w - 1) * 900 + (i as u64 % 7) * 20;
            let end = start + 300 + (i as u64 % 11) * 30;
            let mut history = vec![
                json!({"status": "InProgress", "at": t(start), "attempt": 1, "executionId": format!("e-{i}-1")}),
            ];
            if i % per_wave == 3 {
                history.push(json!({"status": "Failed", "at": t(end), "attempt": 1, "executionId": format!("e-{i}-1")}));
                history.push(json!({"status": "InProgress", "at": t(end + 60), "attempt": 2, "executionId": format!("e-{i}-2")}));
                history.push(json!({"status": "Succeeded", "at": t(end + 300), "attempt": 2, "executionId": format!("e-{i}-2")}));
            } else {
                history.push(json!({"status": "Succeeded", "at": t(end), "attempt": 1, "executionId": format!("e-{i}-1")}));
            }
            json!({"name": format!("service-{i:03}-deploy"), "wave": w, "status": "Succeeded",
                   "attempt": 1, "history": history})
        })
        .collect();
    let waves: Vec<Value> = (1..=waves as u64)
        .map(|w| json!({"wave": w, "status": "Succeeded", "startedAt": t((w - 1) * 900), "endedAt": t(w * 900)}))
        .collect();
    let end = t(waves.len() as u64 * 900);
    json!({"releaseId": "big-500", "status": "SUCCEEDED", "attempt": 1,
           "requestedAt": t(0), "endedAt": end, "waves": waves, "waits": [],
           "attempts": [{"attempt": 1, "requestedAt": t(0), "status": "SUCCEEDED"}],
           "pipelines": pipelines})
}

#[test]
fn five_hundred_pipelines_stay_on_one_page_with_every_wave_labelled() {
    let release = big_release(500, 10);
    let svg = svg(&release);
    let doc = parse(&svg);
    let root = doc.root_element();
    let height = num(&root, "height");
    assert!(height <= 2000.0, "{height} px");
    assert_eq!(num(&root, "width"), 1200.0);
    assert_eq!(bars(&doc), runs_of(&release));
    assert_eq!(bars(&doc).len(), 510);
    let labels = texts(&doc, "wave-label");
    let expected: Vec<String> = (1..=10).map(|w| format!("Wave {w} — Succeeded")).collect();
    assert_eq!(labels, expected);
    // Rows too thin for a name: none is written, each band says how many it holds.
    assert!(texts(&doc, "pipeline-label").is_empty());
    assert_eq!(texts(&doc, "wave-count"), vec!["50 pipelines"; 10]);
    // Every bar keeps a height of its own, inside the page.
    for bar in with_class(&doc, "bar") {
        assert!(num(&bar, "height") >= 1.0);
        assert!(num(&bar, "y") + num(&bar, "height") <= height);
    }
}

#[test]
fn a_run_still_under_way_reaches_the_latest_time_of_a_running_release() {
    let mut release = fixture("small.json");
    release["status"] = json!("RUNNING");
    release["endedAt"] = Value::Null;
    release["cause"] = Value::Null;
    release["waves"][1]["status"] = json!("Running");
    release["waves"][1]["endedAt"] = Value::Null;
    release["attempts"][1]["endedAt"] = Value::Null;
    release["attempts"][1]["status"] = json!("RUNNING");
    let payments = &mut release["pipelines"][5];
    assert_eq!(payments["name"], "payments-api");
    payments["history"].as_array_mut().unwrap().pop();
    payments["status"] = json!("InProgress");
    payments["endedAt"] = Value::Null;
    let svg = svg(&release);
    let doc = parse(&svg);
    assert_eq!(bars(&doc), runs_of(&release));
    let open: Vec<Node> = with_class(&doc, "bar")
        .into_iter()
        .filter(|b| b.attribute("data-open") == Some("true"))
        .collect();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].attribute("data-pipeline"), Some("payments-api"));
    assert!(classes(&open[0]).contains(&"status-InProgress"));
    // The latest time in the JSON: checkout-web's success.
    assert_eq!(open[0].attribute("data-end"), Some("2026-12-01T08:23:00Z"));
    assert!(texts(&doc, "cause").is_empty());
    assert!(
        texts(&doc, "facts")[0].contains("as of 2026-12-01 08:23:00 UTC"),
        "{:?}",
        texts(&doc, "facts")
    );
}

#[test]
fn a_plan_is_titled_as_a_plan_and_drawn_the_same_way() {
    let mut release = fixture("two-waves.json");
    release["planned"] = json!(true);
    let svg = svg(&release);
    let doc = parse(&svg);
    assert_eq!(
        texts(&doc, "title"),
        ["Plan of release 2026.03.1 — predicted SUCCEEDED in 6 min"]
    );
    assert_eq!(bars(&doc), runs_of(&release));
}

#[test]
fn odd_or_missing_fields_draw_what_they_can() {
    assert!(render(&json!({"status": "RUNNING"})).is_err());
    assert!(render(&json!("not a release")).is_err());
    // Nothing but an id: a titled, empty chart.
    let bare = svg(&json!({"releaseId": "bare"}));
    let doc = parse(&bare);
    assert_eq!(texts(&doc, "title"), ["Release bare — UNKNOWN"]);
    assert!(bars(&doc).is_empty());
    // Fields of the wrong shape are drawn as absent.
    let odd = json!({"releaseId": 7, "status": 3, "attempt": "x", "waves": "none",
        "waits": [{"kind": "gate"}, 5, {"kind": "halt", "since": "2026-12-01T08:00:00Z"}],
        "attempts": [{"attempt": 2, "requestedAt": "yesterday"}],
        "pipelines": [{"name": "a", "wave": "one", "history": [
            {"status": "InProgress", "at": "2026-12-01T08:00:00Z"}, {"status": 5}, "x"]},
            {"history": "none"}, 12]});
    let doc_text = svg(&odd);
    let doc = parse(&doc_text);
    assert_eq!(bars(&doc), [run("a", 1, "InProgress")]);
    assert_eq!(with_class(&doc, "wait-halt").len(), 1);
    // Text from the JSON is escaped, and characters XML forbids are replaced.
    let nasty = json!({"releaseId": "<r&\"'>", "status": "FAILED", "attempt": 1,
        "cause": "boom \u{1} <script>alert(1)</script> & \"more\"",
        "requestedAt": "2026-12-01T08:00:00Z", "endedAt": "2026-12-01T08:01:00Z",
        "pipelines": [{"name": "a<b>&c", "wave": 1, "history": [
            {"status": "In<Progress>", "at": "2026-12-01T08:00:00Z", "attempt": 1,
             "executionId": "\"x\""},
            {"status": "Failed\u{0}", "at": "2026-12-01T08:01:00Z", "attempt": 1}]}]});
    let text = svg(&nasty);
    let doc = parse(&text);
    assert_eq!(
        texts(&doc, "title"),
        ["Release <r&\"'> — FAILED — attempt 1"]
    );
    assert_eq!(
        texts(&doc, "cause"),
        ["boom \u{FFFD} <script>alert(1)</script> & \"more\""]
    );
    assert_eq!(texts(&doc, "pipeline-label"), ["a<b>&c"]);
    assert_eq!(bars(&doc), [run("a<b>&c", 1, "Failed_")]);
}

/// Every place in `v`: its JSON pointer.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                pointers(child, format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(-1)),
        Just(json!(4_294_967_296_u64)),
        Just(json!(1.5)),
        Just(json!(true)),
        Just(json!("")),
        Just(json!("<&>\u{0}\u{7}")),
        Just(json!("0001-01-01T00:00:00Z")),
        Just(json!("9999-12-31T23:59:59.999999999+23:59")),
        Just(json!("2026-12-01T08:00:00.5-00:30")),
        Just(json!([])),
        Just(json!({})),
        Just(json!(["x", 1, null])),
        "[a-zA-Z]{0,12}".prop_map(Value::String),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any field replaced by a value of any shape: drawn without a panic, as XML, with one bar
    /// per run (an error only without a releaseId).
    #[test]
    fn odd_values_anywhere_never_break_the_drawing(
        picks in proptest::collection::vec((any::<prop::sample::Index>(), odd_value()), 1..6)
    ) {
        let mut release = fixture("small.json");
        let mut all = Vec::new();
        pointers(&release, String::new(), &mut all);
        for (index, value) in picks {
            let at = index.get(&all);
            if at.is_empty() {
                continue;
            }
            if let Some(slot) = release.pointer_mut(at) {
                *slot = value;
            }
        }
        match render(&release) {
            Ok(svg) => {
                let doc = parse(&svg);
                prop_assert_eq!(with_class(&doc, "bar").len(), lenient_runs(&release));
            }
            Err(e) => prop_assert!(
                !matches!(&release["releaseId"], Value::String(s) if !s.is_empty())
                    && !release["releaseId"].is_number(),
                "{e}"
            ),
        }
    }
}

/// The runs a release JSON of any shape has: per pipeline object, the attempts (a number in
/// range, else 1) of its history entries that have a string status other than NotStarted and
/// a time; without history entries, one run if its `status` says it started and it has a time.
fn lenient_runs(release: &Value) -> usize {
    let time = |v: &Value| {
        v.as_str().is_some_and(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
        })
    };
    let Some(pipelines) = release["pipelines"].as_array() else {
        return 0;
    };
    pipelines
        .iter()
        .filter(|p| p.is_object())
        .map(|p| {
            let entries: Vec<&Value> = p["history"]
                .as_array()
                .map(|h| h.iter().filter(|e| e.is_object()).collect())
                .unwrap_or_default();
            (p, entries)
        })
        .map(|(p, entries)| match entries {
            h if !h.is_empty() => h
                .iter()
                .filter(|e| e["status"].as_str().is_some_and(|s| s != "NotStarted"))
                .filter(|e| time(&e["at"]))
                .map(|e| {
                    e["attempt"]
                        .as_u64()
                        .filter(|a| *a <= u64::from(u32::MAX))
                        .unwrap_or(1)
                })
                .collect::<std::collections::BTreeSet<u64>>()
                .len(),
            _ => {
                let started = p["status"].as_str().is_some_and(|s| s != "NotStarted");
                usize::from(started && (time(&p["startedAt"]) || time(&p["endedAt"])))
            }
        })
        .sum()
}

#[test]
fn the_same_release_gives_the_same_bytes() {
    for name in ["small.json", "retried.json", "halt.json"] {
        let release = fixture(name);
        assert_eq!(svg(&release), svg(&release), "{name}");
    }
    let big = big_release(500, 10);
    assert_eq!(svg(&big), svg(&big));
}

/// The fonts the renderer may use: only the one the repository ships.
fn shipped_fonts() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        let font = std::fs::read(tests_dir().join("fonts/DejaVuSans.ttf")).unwrap();
        db.load_font_data(font);
        assert_eq!(db.len(), 1);
        Arc::new(db)
    })
    .clone()
}

fn rasterize(svg: &str, fonts: Arc<usvg::fontdb::Database>) -> tiny_skia::Pixmap {
    let options = usvg::Options {
        fontdb: fonts,
        font_family: "DejaVu Sans".into(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &options).unwrap_or_else(|e| panic!("usvg: {e}"));
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap
}

#[test]
fn every_fixture_renders_to_a_png_with_the_shipped_font() {
    for name in [
        "two-waves.json",
        "retried.json",
        "failed.json",
        "approval.json",
        "gate.json",
        "bake.json",
        "halt.json",
        "skipped.json",
        "small.json",
    ] {
        let svg = svg(&fixture(name));
        let pixmap = rasterize(&svg, shipped_fonts());
        let png = pixmap.encode_png().unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}");
        assert_eq!(pixmap.width(), 1200, "{name}");
        // The text is drawn, and drawn from the shipped font: without it the picture differs.
        let without_text = rasterize(&svg, Arc::new(usvg::fontdb::Database::new()));
        assert_ne!(pixmap.data(), without_text.data(), "{name}: no text drawn");
    }
    let big = svg(&big_release(500, 10));
    let pixmap = rasterize(&big, shipped_fonts());
    assert!(pixmap.height() <= 2000);
}

/// Pixels whose colour differs by more than `DELTA` in a channel: at most `TOLERANCE` of them
/// (anti-aliasing of text may differ a little between machines, the picture may not).
const DELTA: u8 = 48;
const TOLERANCE: f64 = 0.002;

#[test]
fn a_small_release_looks_like_its_golden_image() {
    let svg = svg(&fixture("small.json"));
    let actual = rasterize(&svg, shipped_fonts());
    let golden_path = tests_dir().join("golden/timeline-small.png");
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(golden_path.parent().unwrap()).unwrap();
        std::fs::write(&golden_path, actual.encode_png().unwrap()).unwrap();
        return;
    }
    let bytes = std::fs::read(&golden_path).unwrap_or_else(|e| {
        panic!("{golden_path:?}: {e} (UPDATE_GOLDEN=1 cargo test -p rm-core --test timeline writes it)")
    });
    let golden = tiny_skia::Pixmap::decode_png(&bytes).unwrap();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("timeline-small.actual.png");
    let keep = || {
        std::fs::write(&out, actual.encode_png().unwrap()).unwrap();
        out.display().to_string()
    };
    assert_eq!(
        (golden.width(), golden.height()),
        (actual.width(), actual.height()),
        "the picture's size changed (actual in {}); UPDATE_GOLDEN=1 to accept it",
        keep()
    );
    let differing = golden
        .data()
        .chunks_exact(4)
        .zip(actual.data().chunks_exact(4))
        .filter(|(g, a)| g.iter().zip(a.iter()).any(|(g, a)| g.abs_diff(*a) > DELTA))
        .count();
    let share = differing as f64 / (golden.width() * golden.height()) as f64;
    assert!(
        share <= TOLERANCE,
        "{differing} pixels ({:.2}%) differ from the golden image (actual in {}); \
         UPDATE_GOLDEN=1 to accept it",
        share * 100.0,
        keep()
    );
}
