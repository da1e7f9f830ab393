//! The CLI's targets and errors through the binary, without a stack: which target a command
//! goes to, the local forms of the remote commands, and what each answer of an API (canned by
//! a one-request HTTP server on loopback) becomes: its message and exit code. The commands
//! against the real stack are in tests/tests/cli_remote.rs (package rm-e2e).

mod common;

use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

/// Runs the binary in `cwd` with test credentials and no AWS files, plus `env`.
fn cli_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("RELEASE_MACHINE_API")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_ACCESS_KEY_ID", "AKIATEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", cwd.join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", cwd.join("none"))
        .env("NO_PROXY", "127.0.0.1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the release-machine binary runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A server answering one request with `status`, `headers` and `body`; its stage URL and a
/// handle returning the request it got (request line and headers, lowercased names).
fn canned(
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/Prod", listener.local_addr().unwrap());
    let mut response = format!("HTTP/1.1 {status} Canned\r\nconnection: close\r\n");
    for (k, v) in headers {
        response.push_str(&format!("{k}: {v}\r\n"));
    }
    response.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            head.push_str(&lower);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = reader.into_inner();
        stream.write_all(response.as_bytes()).unwrap();
        head
    });
    (url, handle)
}

#[test]
fn each_api_answer_becomes_its_exit_code_and_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let denied = r#"{"Message":"User: arn:aws:iam::123456789012:user/intern is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:123456789012:abc/Prod/GET/releases/r1"}"#;
    // (status, headers, body, exit code, what stderr says)
    type Case<'a> = (u16, Vec<(&'a str, &'a str)>, String, i32, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            403,
            vec![("x-amzn-errortype", "AccessDeniedException")],
            denied.to_owned(),
            6,
            vec!["user/intern", "execute-api:Invoke", "/Prod"],
        ),
        (
            403,
            vec![("x-amzn-errortype", "InvalidSignatureException")],
            json!({"message": "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."}).to_string(),
            6,
            vec!["signature", "access key AKIATEST", "us-east-1"],
        ),
        (
            403,
            vec![("x-amzn-errortype", "ExpiredTokenException")],
            json!({"message": "The security token included in the request is expired"})
                .to_string(),
            6,
            vec!["expired"],
        ),
        (
            404,
            vec![],
            json!({"message": "release \"r1\" not found"}).to_string(),
            2,
            vec!["not found"],
        ),
        (
            409,
            vec![],
            json!({"message": "release r1 is CANCELLED: only a RUNNING release can be cancelled"})
                .to_string(),
            3,
            vec!["CANCELLED"],
        ),
        (
            500,
            vec![],
            json!({"message": "boom", "errorType": "Internal"}).to_string(),
            4,
            vec!["500", "boom"],
        ),
    ];
    for (status, headers, body, code, says) in cases {
        let (url, server) = canned(status, &headers, &body);
        let out = cli_env(
            dir.path(),
            &["cancel", "r1", "--reason", "why", "--api", &url],
            &[],
        );
        let request = server.join().unwrap();
        assert_eq!(out.code, code, "{status} {body}: {}", out.stderr);
        for s in says {
            assert!(out.stderr.contains(s), "{status}: {s:?} in {}", out.stderr);
        }
        assert!(
            request.starts_with("post /prod/releases/r1/cancel http/1.1"),
            "{request}"
        );
        assert!(
            request.contains("authorization: aws4-hmac-sha256 credential=akiatest/")
                && request.contains("/us-east-1/execute-api/aws4_request"),
            "signed for execute-api: {request}"
        );
    }
}

#[test]
fn a_release_answer_prints_as_status_does_locally() {
    let dir = tempfile::tempdir().unwrap();
    // A release recorded by a local run: the API answers the same JSON.
    let m = write(
        dir.path(),
        "m.json",
        &json!({"releaseId": "r-remote", "pipelines": ["a"]}),
    );
    let run = cli(
        dir.path(),
        &["run", m.to_str().unwrap(), "--state-dir", "s", "--json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let local = cli(dir.path(), &["status", "r-remote", "--state-dir", "s"]);
    let (url, server) = canned(200, &[("content-type", "application/json")], &run.stdout);
    let remote = cli_env(dir.path(), &["status", "r-remote", "--api", &url], &[]);
    server.join().unwrap();
    assert_eq!(remote.code, 0, "{}", remote.stderr);
    assert_eq!(remote.stdout, local.stdout);
    // watch of an ended release prints it and exits with its code.
    let (url, server) = canned(200, &[], &run.stdout);
    let watched = cli_env(
        dir.path(),
        &["watch", "r-remote"],
        &[("RELEASE_MACHINE_API", &url)],
    );
    server.join().unwrap();
    assert_eq!(watched.code, 0, "{}", watched.stderr);
    assert!(watched.stdout.contains("SUCCEEDED"), "{}", watched.stdout);
}

#[test]
fn targets_are_chosen_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli_env(
        dir.path(),
        &["list", "--api", "https://x/Prod", "--stack", "rm"],
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = cli_env(
        dir.path(),
        &["status", "r1", "--api", "http://127.0.0.1:9/Prod"],
        &[],
    );
    assert_eq!(out.code, 6, "{}", out.stderr);
    assert!(
        out.stderr.contains("http://127.0.0.1:9/Prod/releases/r1"),
        "the URL tried: {}",
        out.stderr
    );
    let out = cli_env(dir.path(), &["list", "--api", "not a url"], &[]);
    assert_eq!(out.code, 6, "{}", out.stderr);
    assert!(out.stderr.contains("ReleaseApiUrl"), "{}", out.stderr);
    // No credentials anywhere: said so, exit 6.
    let mut cmd = Command::new(BIN);
    let none = cmd
        .args(["list", "--api", "http://127.0.0.1:9/Prod"])
        .current_dir(dir.path())
        .env_clear()
        .env("HOME", dir.path())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no usable AWS credentials"));
    // What is local only is refused against a stack, before anything is sent.
    let m = write(
        dir.path(),
        "m.json",
        &json!({"releaseId": "r1", "pipelines": ["a"]}),
    );
    let out = cli_env(
        dir.path(),
        &[
            "run",
            m.to_str().unwrap(),
            "--api",
            "http://127.0.0.1:9/Prod",
        ],
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("submit"), "{}", out.stderr);
}

#[test]
fn locally_submit_cancel_approve_reject_say_what_to_do_instead() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(
        dir.path(),
        "m.json",
        &json!({"releaseId": "r-local", "pipelines": ["a"]}),
    );
    let m = m.to_str().unwrap();
    let out = cli_env(dir.path(), &["submit", m], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("release-machine run"), "{}", out.stderr);
    // An invalid manifest: validate's messages.
    let bad = write(
        dir.path(),
        "bad.json",
        &json!({"releaseId": "", "pipelines": []}),
    );
    let bad = bad.to_str().unwrap();
    let submitted = cli_env(dir.path(), &["submit", bad], &[]);
    let validated = cli_env(dir.path(), &["validate", bad], &[]);
    assert_eq!(submitted.code, 2);
    assert_eq!(submitted.stderr, validated.stderr);

    let run = cli_env(dir.path(), &["run", m, "--state-dir", "s"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for args in [
        vec!["cancel", "r-local", "--reason", "why"],
        vec!["approve", "r-local", "--wave", "2"],
        vec!["reject", "r-local", "--wave", "2", "--reason", "why"],
    ] {
        let mut all = args.clone();
        all.extend(["--state-dir", "s"]);
        let out = cli_env(dir.path(), &all, &[]);
        assert_eq!(out.code, 3, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("\"operator\""), "{}", out.stderr);
        let mut unknown = all.clone();
        unknown[1] = "r-nope";
        assert_eq!(cli_env(dir.path(), &unknown, &[]).code, 2, "{args:?}");
    }
    // watch of a local release: its final state, its exit code.
    let out = cli_env(dir.path(), &["watch", "r-local", "--state-dir", "s"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("SUCCEEDED"), "{}", out.stdout);
    let out = cli_env(dir.path(), &["watch", "r-nope", "--state-dir", "s"], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}
