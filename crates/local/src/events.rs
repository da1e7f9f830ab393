//! The local run's EventBridge: every published event is appended to
//! `<state-dir>/events.jsonl`, one EventBridge-shaped event per line (`source`,
//! `detail-type`, `time`, `detail`), as a rule on the default bus would deliver it.

use rm_core::error::PortError;
use rm_core::events::{EventBus, ReleaseEvent};
use rm_core::ports::PortResult;
use serde_json::Value;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// The events file inside a state directory.
pub const EVENTS_FILE: &str = "events.jsonl";

/// Appends events to a state directory's `events.jsonl`.
#[derive(Debug, Clone)]
pub struct JsonlBus {
    path: PathBuf,
}

impl JsonlBus {
    pub fn for_state_dir(state_dir: &Path) -> Self {
        JsonlBus {
            path: state_dir.join(EVENTS_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait::async_trait]
impl EventBus for JsonlBus {
    /// One append of all the lines (a line is never split between writers).
    async fn put(&self, events: &[ReleaseEvent]) -> PortResult<Vec<usize>> {
        let mut text = String::new();
        for e in events {
            text.push_str(&e.envelope().to_string());
            text.push('\n');
        }
        let io = |e: std::io::Error| {
            PortError::Other(format!("cannot append to {}: {e}", self.path.display()))
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        Ok(Vec::new())
    }
}

/// The events of `release_id` in a state directory's `events.jsonl`, in file order (none if
/// the file does not exist). A line that is not JSON is an error naming its line number.
pub fn read_events(state_dir: &Path, release_id: &str) -> Result<Vec<Value>, String> {
    let path = state_dir.join(EVENTS_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let event: Value = serde_json::from_str(&line)
            .map_err(|e| format!("{}:{}: not an event: {e}", path.display(), i + 1))?;
        if event.pointer("/detail/releaseId").and_then(Value::as_str) == Some(release_id) {
            out.push(event);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rm_core::events::EventDraft;
    use rm_core::release::{ReleaseId, ReleaseStatus};
    use time::macros::datetime;

    #[test]
    fn events_are_appended_as_eventbridge_events_and_read_back_per_release() {
        let dir = tempfile::tempdir().unwrap();
        let bus = JsonlBus::for_state_dir(dir.path());
        let at = datetime!(2026-11-22 10:00:00 UTC);
        let a = ReleaseId::parse("a").unwrap();
        let b = ReleaseId::parse("b").unwrap();
        let ev = |id: &ReleaseId, seq| {
            EventDraft::stamp(
                vec![EventDraft::release_status(
                    1,
                    ReleaseStatus::Running,
                    None,
                    at,
                )],
                id,
                seq,
            )
        };
        futures::executor::block_on(bus.put(&ev(&a, 1))).unwrap();
        futures::executor::block_on(bus.put(&[ev(&b, 1), ev(&a, 2)].concat())).unwrap();
        let got = read_events(dir.path(), "a").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["source"], "release-machine");
        assert_eq!(got[0]["detail-type"], "Release Status Change");
        assert_eq!(got[0]["time"], "2026-11-22T10:00:00Z");
        assert_eq!(got[1]["detail"]["sequence"], 2);
        assert_eq!(got[1]["detail"]["eventId"], "a:2");
        assert!(read_events(&dir.path().join("nope"), "a")
            .unwrap()
            .is_empty());
        std::fs::write(dir.path().join(EVENTS_FILE), "{\n").unwrap();
        let err = read_events(dir.path(), "a").unwrap_err();
        assert!(err.contains("events.jsonl:1"), "{err}");
    }
}
