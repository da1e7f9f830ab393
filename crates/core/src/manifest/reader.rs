//! The manifest's JSON text read into a borrowed tree ([`Json`]) in a bump arena.

use bumpalo::Bump;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::HashMap;

/// A JSON value as the validator reads it. It borrows everything: strings from the manifest's
/// text where they can, the rest (escaped strings, numbers, items, members) from one arena per
/// read, so reading the largest manifest allocates a few arena chunks rather than once per
/// object, and nothing is dropped value by value (the 1 ms budget). An object's members are
/// unique, in the order of their first appearance, the last value winning — as in [`Value`];
/// but a repeated key is also noted (with its path) by [`read`], and the manifest is rejected
/// for it: JSON readers disagree on which value wins, so a second `"pipelines"` must not hide
/// from a reviewer.
#[derive(Debug, Clone, Copy)]
pub(super) enum Json<'a> {
    Null,
    Bool(bool),
    Number(&'a serde_json::Number),
    String(&'a str),
    Array(&'a [Json<'a>]),
    Object(&'a Object<'a>),
}

pub(super) type Object<'a> = [(&'a str, Json<'a>)];

impl<'a> Json<'a> {
    pub(super) fn from_value(v: &'a Value, arena: &'a Bump) -> Self {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n),
            Value::String(s) => Json::String(s),
            Value::Array(items) => Json::Array(
                arena.alloc_slice_fill_iter(items.iter().map(|v| Json::from_value(v, arena))),
            ),
            Value::Object(o) => Json::Object(
                arena.alloc_slice_fill_iter(
                    o.iter()
                        .map(|(k, v)| (k.as_str(), Json::from_value(v, arena))),
                ),
            ),
        }
    }

    /// Only for messages: the value as JSON text.
    pub(super) fn to_value(self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.to_owned()),
            Json::Array(items) => Value::Array(items.iter().map(|v| v.to_value()).collect()),
            Json::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| ((*k).to_owned(), v.to_value()))
                    .collect(),
            ),
        }
    }

    pub(super) fn as_str(&self) -> Option<&'a str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn as_object(&self) -> Option<&'a Object<'a>> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    pub(super) fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.as_u64(),
            _ => None,
        }
    }
}

pub(super) fn get<'o, 'a>(obj: &'o Object<'a>, key: &str) -> Option<&'o Json<'a>> {
    obj.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// Reads [`Json`] values into an arena. An object's members (an array's items) gather on a
/// stack shared by the whole read and move into one slice of the arena when it closes.
struct Reader<'a> {
    arena: &'a Bump,
    members: Vec<(&'a str, Json<'a>)>,
    items: Vec<Json<'a>>,
    /// The top-level `releaseId`'s text as written.
    raw_release_id: Option<&'a str>,
    /// Where the value being read sits: the keys and indexes from the top.
    path: Vec<Step<'a>>,
    /// The paths of repeated keys (`$.pipelines[1].name`), in the order they were met.
    duplicates: Vec<String>,
}

/// One step of a path from the top.
#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Past this many members an object finds repeated keys through a map, not a scan.
const SCAN_MEMBERS: usize = 16;

impl<'a> Reader<'a> {
    /// A seed for a value below the top level.
    fn value(&mut self) -> ValueSeed<'_, 'a> {
        ValueSeed {
            reader: self,
            top: false,
        }
    }

    /// Adds a member to the object gathering from `start`. A repeated key keeps its first
    /// place and takes the new value, and its path is noted; `index` finds keys once the
    /// object is large.
    fn add_member(
        &mut self,
        start: usize,
        index: &mut Option<HashMap<&'a str, usize>>,
        key: &'a str,
        value: Json<'a>,
    ) {
        let members = &mut self.members[start..];
        if members.len() == SCAN_MEMBERS && index.is_none() {
            *index = Some(
                members
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (*k, i))
                    .collect(),
            );
        }
        let existing = match index {
            Some(index) => index.get(key).copied(),
            None => members.iter().position(|(k, _)| *k == key),
        };
        match existing {
            Some(i) => {
                members[i].1 = value;
                let path = self.path_to(key);
                self.duplicates.push(path);
            }
            None => {
                if let Some(index) = index {
                    index.insert(key, members.len());
                }
                self.members.push((key, value));
            }
        }
    }

    /// The path of `key` in the object being read (written only for a repeated key).
    fn path_to(&self, key: &str) -> String {
        let mut path = String::from("$");
        for step in &self.path {
            path = match step {
                Step::Key(k) => super::validation::member(&path, k),
                Step::Index(i) => format!("{path}[{i}]"),
            };
        }
        super::validation::member(&path, key)
    }

    /// Moves the members gathered from `start` into the arena.
    fn close_object(&mut self, start: usize) -> &'a Object<'a> {
        let members = self.arena.alloc_slice_copy(&self.members[start..]);
        self.members.truncate(start);
        members
    }

    /// Moves the items gathered from `start` into the arena.
    fn close_array(&mut self, start: usize) -> &'a [Json<'a>] {
        let items = self.arena.alloc_slice_copy(&self.items[start..]);
        self.items.truncate(start);
        items
    }
}

/// Reads one value; at the top level (`top`) it also keeps the text of `releaseId`.
struct ValueSeed<'r, 'a> {
    reader: &'r mut Reader<'a>,
    top: bool,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for ValueSeed<'_, 'a> {
    type Value = Json<'a>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Json<'a>, D::Error> {
        d.deserialize_any(self)
    }
}

/// A key, borrowed from the text unless it has escapes.
struct KeySeed<'a>(&'a Bump);

impl<'de: 'a, 'a> DeserializeSeed<'de> for KeySeed<'a> {
    type Value = &'a str;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'a str, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for KeySeed<'a> {
    type Value = &'a str;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.alloc_str(v))
    }
}

impl<'de: 'a, 'a> Visitor<'de> for ValueSeed<'_, 'a> {
    type Value = Json<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(self.reader.arena.alloc(v.into())))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(self.reader.arena.alloc(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        let n = serde_json::Number::from_f64(v)
            .ok_or_else(|| E::custom("a number that is not finite"))?;
        Ok(Json::Number(self.reader.arena.alloc(n)))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Json::String(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::String(self.reader.arena.alloc_str(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let reader = self.reader;
        let start = reader.items.len();
        loop {
            reader.path.push(Step::Index(reader.items.len() - start));
            let item = seq.next_element_seed(reader.value());
            reader.path.pop();
            match item? {
                Some(item) => reader.items.push(item),
                None => break,
            }
        }
        Ok(Json::Array(reader.close_array(start)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let reader = self.reader;
        let start = reader.members.len();
        let mut index: Option<HashMap<&'a str, usize>> = None;
        while let Some(key) = map.next_key_seed(KeySeed(reader.arena))? {
            reader.path.push(Step::Key(key));
            let value = if self.top && key == "releaseId" {
                let raw: &'de RawValue = map.next_value()?;
                reader.raw_release_id = Some(raw.get());
                // Its value, read on its own as `serde_json::from_str` would.
                let mut d = serde_json::Deserializer::from_str(raw.get());
                reader
                    .value()
                    .deserialize(&mut d)
                    .and_then(|v| d.end().map(|()| v))
                    .map_err(de::Error::custom)?
            } else {
                map.next_value_seed(reader.value())?
            };
            reader.path.pop();
            reader.add_member(start, &mut index, key, value);
        }
        Ok(Json::Object(reader.close_object(start)))
    }
}

/// What [`read`] found in a manifest's text.
pub(super) struct Read<'a> {
    pub value: Json<'a>,
    /// The top-level `releaseId`'s text as written.
    pub raw_release_id: Option<&'a str>,
    /// The paths of repeated keys, each once per repetition.
    pub duplicates: Vec<String>,
}

/// Reads the manifest's text into `arena`: its value, the release id's text as written, and
/// the paths of repeated keys.
pub(super) fn read<'a>(text: &'a str, arena: &'a Bump) -> serde_json::Result<Read<'a>> {
    let mut reader = Reader {
        arena,
        members: Vec::new(),
        items: Vec::new(),
        raw_release_id: None,
        path: Vec::new(),
        duplicates: Vec::new(),
    };
    let mut d = serde_json::Deserializer::from_str(text);
    let value = ValueSeed {
        reader: &mut reader,
        top: true,
    }
    .deserialize(&mut d)?;
    d.end()?;
    Ok(Read {
        value,
        raw_release_id: reader.raw_release_id,
        duplicates: reader.duplicates,
    })
}

pub(super) fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}
