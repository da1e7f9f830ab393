//! The release JSON as the timeline reads it: every field optional and read leniently, so a
//! release recorded before a field existed, or an odd field, draws what it can instead of
//! failing. Only a missing `releaseId` is an error.

use super::TimelineError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A time, as milliseconds since the Unix epoch (UTC).
pub(super) type Ms = i64;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Release {
    #[serde(deserialize_with = "lenient")]
    release_id: Option<Value>,
    #[serde(deserialize_with = "lenient")]
    pub status: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub attempt: Option<u32>,
    #[serde(deserialize_with = "lenient")]
    pub cause: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub planned: Option<bool>,
    #[serde(deserialize_with = "lenient")]
    pub requested_at: Option<At>,
    #[serde(deserialize_with = "lenient")]
    pub ended_at: Option<At>,
    #[serde(deserialize_with = "lenient")]
    pub requested_by: Option<String>,
    #[serde(deserialize_with = "lenient_records")]
    pub waves: Vec<Wave>,
    #[serde(deserialize_with = "lenient_records")]
    pub waits: Vec<Wait>,
    #[serde(deserialize_with = "lenient_records")]
    pub attempts: Vec<Attempt>,
    #[serde(deserialize_with = "lenient_records")]
    pub pipelines: Vec<Pipeline>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Wave {
    #[serde(deserialize_with = "lenient")]
    pub wave: Option<u32>,
    #[serde(deserialize_with = "lenient")]
    pub status: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub started_at: Option<At>,
    #[serde(deserialize_with = "lenient")]
    pub ended_at: Option<At>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Wait {
    #[serde(deserialize_with = "lenient")]
    pub kind: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub wave: Option<u32>,
    #[serde(deserialize_with = "lenient_list")]
    pub reasons: Vec<String>,
    #[serde(deserialize_with = "lenient")]
    pub by: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub since: Option<At>,
    #[serde(deserialize_with = "lenient")]
    pub until: Option<At>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Attempt {
    #[serde(deserialize_with = "lenient")]
    pub attempt: Option<u32>,
    #[serde(deserialize_with = "lenient")]
    pub requested_at: Option<At>,
    #[serde(deserialize_with = "lenient")]
    pub requested_by: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub ended_at: Option<At>,
    #[serde(deserialize_with = "lenient")]
    pub status: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Pipeline {
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub wave: Option<u32>,
    #[serde(deserialize_with = "lenient")]
    pub status: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub attempt: Option<u32>,
    #[serde(deserialize_with = "lenient")]
    pub execution_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub started_at: Option<At>,
    #[serde(deserialize_with = "lenient")]
    pub ended_at: Option<At>,
    #[serde(deserialize_with = "lenient_records")]
    pub history: Vec<Entry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Entry {
    #[serde(deserialize_with = "lenient")]
    pub status: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub at: Option<At>,
    #[serde(deserialize_with = "lenient")]
    pub attempt: Option<u32>,
    #[serde(deserialize_with = "lenient")]
    pub execution_id: Option<String>,
}

/// An RFC 3339 time of the release JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct At(pub Ms);

impl<'de> Deserialize<'de> for At {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let t = OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)?;
        Ms::try_from(t.unix_timestamp_nanos() / 1_000_000)
            .map(At)
            .map_err(serde::de::Error::custom)
    }
}

impl Release {
    pub fn parse(json: &Value) -> Result<Self, TimelineError> {
        // A release JSON is an object; anything else has no releaseId either.
        let release = Release::deserialize(json).unwrap_or_default();
        release.id()?;
        Ok(release)
    }

    /// `releaseId`, a string or a number kept as written.
    pub fn id(&self) -> Result<String, TimelineError> {
        match &self.release_id {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(TimelineError(
                "the release JSON has no releaseId (a string or a number)".into(),
            )),
        }
    }

    pub fn is_plan(&self) -> bool {
        self.planned == Some(true)
    }

    /// Every time the JSON names, for the chart's span.
    pub fn times(&self) -> impl Iterator<Item = Ms> + '_ {
        let top = [self.requested_at, self.ended_at];
        let waves = self.waves.iter().flat_map(|w| [w.started_at, w.ended_at]);
        let waits = self.waits.iter().flat_map(|w| [w.since, w.until]);
        let attempts = self
            .attempts
            .iter()
            .flat_map(|a| [a.requested_at, a.ended_at]);
        let runs = self.pipelines.iter().flat_map(|p| {
            [p.started_at, p.ended_at]
                .into_iter()
                .chain(p.history.iter().map(|h| h.at))
        });
        top.into_iter()
            .chain(waves)
            .chain(waits)
            .chain(attempts)
            .chain(runs)
            .flatten()
            .map(|At(ms)| ms)
    }
}

/// `Some(value)` when the field's JSON has the expected shape, `None` when it is missing,
/// null or of another shape.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    let value = Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

/// The entries of a JSON array that have the expected shape (none when it is not an array).
fn lenient_list<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(items(Value::deserialize(d)?)
        .filter_map(|item| serde_json::from_value(item).ok())
        .collect())
}

/// The objects of a JSON array, as records (serde would also read a record from an array of
/// its fields' values, which no release JSON has).
fn lenient_records<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(items(Value::deserialize(d)?)
        .filter(Value::is_object)
        .filter_map(|item| serde_json::from_value(item).ok())
        .collect())
}

fn items(list: Value) -> impl Iterator<Item = Value> {
    match list {
        Value::Array(items) => items.into_iter(),
        _ => Vec::new().into_iter(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn odd_fields_are_read_as_missing() {
        let r = Release::parse(&json!({
            "releaseId": 42, "attempt": "two", "waves": {"wave": 1},
            "pipelines": [7, {"name": "a", "wave": "x", "history": [
                {"status": "InProgress", "at": "not a time"},
                {"status": "Succeeded", "at": "2026-12-01T08:00:00Z", "attempt": 1}]}]
        }))
        .unwrap();
        assert_eq!(r.id().unwrap(), "42");
        assert_eq!(r.attempt, None);
        assert!(r.waves.is_empty());
        assert_eq!(r.pipelines.len(), 1);
        assert_eq!(r.pipelines[0].wave, None);
        assert_eq!(r.pipelines[0].history[0].at, None);
        assert_eq!(
            r.pipelines[0].history[1].at,
            Some(At(1_796_112_000_000)),
            "2026-12-01T08:00:00Z"
        );
    }

    #[test]
    fn no_release_id_is_an_error() {
        for json in [json!({}), json!([]), json!({"releaseId": ""}), json!(null)] {
            assert!(Release::parse(&json).is_err(), "{json}");
        }
    }
}
