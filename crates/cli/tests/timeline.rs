//! `release-machine timeline`: a release run locally, drawn from the state directory as SVG
//! (to a file, to stdout), the release JSON `status --json` prints being what is drawn; an
//! unknown release, a file that cannot be written; `--plan`.
//!
//! Every run goes to the local state directory (`common::cli` removes `RELEASE_MACHINE_API`).

mod common;

use common::{cli, write};
use serde_json::json;
use std::path::Path;

const ID: &str = "tl-1";

/// A state directory holding release `tl-1`, run to its end (FAILED: `tl-db` fails in wave
/// 2, so the picture has two waves, successes and a failure).
fn ran(dir: &Path) -> String {
    let manifest = write(
        dir,
        "m.json",
        &json!({"releaseId": ID, "pipelines": [
            {"name": "tl-api", "wave": 1},
            {"name": "tl-web", "wave": 1},
            {"name": "tl-db", "wave": 2},
        ]}),
    );
    let sim = write(
        dir,
        "sim.json",
        &json!({"defaults": {"durationSeconds": 120},
                "pipelines": {"tl-db": {"outcome": "Failed", "failedStage": "Deploy"}}}),
    );
    let state = dir.join("state");
    let out = cli(
        dir,
        &[
            "run",
            manifest.to_str().unwrap(),
            "--sim",
            sim.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 1, "the release FAILED:\n{}", out.stderr);
    state.display().to_string()
}

/// The `<title>` of a well-formed SVG document (its root element `<svg>`).
fn svg_title(svg: &str) -> String {
    let document = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}:\n{svg}"));
    assert_eq!(document.root_element().tag_name().name(), "svg", "{svg}");
    document
        .descendants()
        .find(|n| n.has_tag_name("title"))
        .and_then(|n| n.text())
        .unwrap_or_else(|| panic!("no <title>:\n{svg}"))
        .to_owned()
}

#[test]
fn a_local_release_is_drawn_to_a_file_or_stdout_from_its_release_json() {
    let dir = tempfile::tempdir().unwrap();
    let state = ran(dir.path());
    let file = dir.path().join("out.svg");

    let out = cli(
        dir.path(),
        &[
            "timeline",
            ID,
            "-o",
            file.to_str().unwrap(),
            "--state-dir",
            &state,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.is_empty(),
        "the SVG goes to the file: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains(&format!("wrote {}", file.display())),
        "{}",
        out.stderr
    );
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(svg_title(&written).contains(ID), "{written}");

    // Without -o (or with -o -): stdout, the same picture.
    let stdout = cli(dir.path(), &["timeline", ID, "--state-dir", &state]);
    assert_eq!(stdout.code, 0, "{}", stdout.stderr);
    assert_eq!(stdout.stdout, written);
    let dash = cli(
        dir.path(),
        &["timeline", ID, "-o", "-", "--state-dir", &state],
    );
    assert_eq!(dash.code, 0, "{}", dash.stderr);
    assert_eq!(dash.stdout, written);

    // What is drawn is the release JSON `status --json` prints (and GET /releases/{id}
    // answers).
    let status = cli(dir.path(), &["status", ID, "--json", "--state-dir", &state]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let drawn = rm_core::view::timeline::render(&status.json()).expect("the release draws");
    assert_eq!(written, drawn);
}

#[test]
fn an_unknown_or_invalid_release_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let state = ran(dir.path());
    let file = dir.path().join("none.svg");

    let out = cli(
        dir.path(),
        &[
            "timeline",
            "no-such-release",
            "-o",
            file.to_str().unwrap(),
            "--state-dir",
            &state,
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("no release no-such-release in"),
        "{}",
        out.stderr
    );
    assert!(!file.exists(), "nothing is written for an unknown release");

    // A state directory nothing ran in, as `status` says.
    let empty = dir.path().join("empty");
    let out = cli(
        dir.path(),
        &["timeline", ID, "--state-dir", empty.to_str().unwrap()],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--state-dir"), "{}", out.stderr);

    let out = cli(
        dir.path(),
        &["timeline", "not a valid id!", "--state-dir", &state],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("release id"), "{}", out.stderr);

    // Neither an id nor --plan: a usage error.
    let out = cli(dir.path(), &["timeline", "--state-dir", &state]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn a_file_that_cannot_be_written_is_exit_4_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = ran(dir.path());
    // A directory that does not exist, and a path that is a directory (both fail for root
    // too, unlike a read-only file).
    for target in [
        dir.path().join("missing/dir/out.svg"),
        dir.path().to_path_buf(),
    ] {
        let out = cli(
            dir.path(),
            &[
                "timeline",
                ID,
                "-o",
                target.to_str().unwrap(),
                "--state-dir",
                &state,
            ],
        );
        assert_eq!(out.code, 4, "{}: {}", target.display(), out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "cannot write the timeline to {}",
                target.display()
            )),
            "{}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
}

/// `timeline --plan MANIFEST` draws what `plan MANIFEST --json` computes: it ends as the plan
/// does (its code and message), and when the plan is made, its simulated release is drawn.
#[test]
fn a_plan_is_drawn_as_the_plan_command_computes_it() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write(
        dir.path(),
        "plan.json",
        &json!({"releaseId": "tl-plan", "pipelines": ["tl-api", {"name": "tl-db", "wave": 2}]}),
    );
    let manifest = manifest.to_str().unwrap();
    let plan = cli(dir.path(), &["plan", manifest, "--json"]);
    let drawn = cli(dir.path(), &["timeline", "--plan", manifest]);
    assert_eq!(
        drawn.code, plan.code,
        "timeline --plan ends as plan does:\n{}\n---\n{}",
        drawn.stderr, plan.stderr
    );
    if plan.code == 0 {
        // Each plan simulates afresh (its own execution ids), so the two are compared by what
        // they show: a plan of this release, with its pipelines.
        let title = svg_title(&drawn.stdout);
        assert!(title.contains("tl-plan"), "{title}");
        assert!(
            title.to_lowercase().contains("plan"),
            "titled as a plan: {title}"
        );
        assert_eq!(plan.json()["release"]["planned"], true, "{}", plan.stdout);
        for pipeline in ["tl-api", "tl-db"] {
            assert!(
                drawn.stdout.contains(pipeline),
                "{pipeline}:\n{}",
                drawn.stdout
            );
        }
    } else {
        assert!(
            drawn.stderr.contains(plan.stderr.trim()),
            "the plan's message:\n{}\n---\n{}",
            drawn.stderr,
            plan.stderr
        );
    }

    // --sim belongs to --plan.
    let sim = write(dir.path(), "sim.json", &json!({}));
    let out = cli(
        dir.path(),
        &["timeline", ID, "--sim", sim.to_str().unwrap()],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
}
