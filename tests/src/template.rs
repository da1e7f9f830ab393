//! Reads template.yaml (CloudFormation short-form tags `!Ref`, `!Sub`, `!GetAtt`, `!Join` are
//! kept as tagged values by serde_norway) into a [`Plan`]: the DynamoDB table (its key schema,
//! attributes and indexes as written in the template), the S3 bucket, the state machine with
//! its DefinitionSubstitutions resolved, and the functions' environment (each function's
//! `Environment.Variables`, resolved). [`Plan::provision`] creates them in moto (the table in
//! moto or dynalite).
//!
//! The harness never substitutes a value of its own: whatever it cannot read or resolve, or
//! finds inconsistent (two functions with different values for one variable, a function without
//! a variable its code requires, a `TABLE_NAME` that is not the table), is a problem naming what
//! and where, and [`Template::plan`] returns them all as a [`TemplateError`].

use crate::{function_arn, function_binaries, Resources, ACCOUNT, REGION};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use serde_norway::Value as Yaml;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// What `!Ref AWS::StackName` gives.
const STACK_NAME: &str = "release-machine";
/// What `!Ref AWS::StackId` gives.
const STACK_ID: &str =
    "arn:aws:cloudformation:us-east-1:123456789012:stack/release-machine/5a0b3c9e-0d1f-4e2a-8b3c-4d5e6f708192";
const STATE_MACHINE_ROLE: &str = "arn:aws:iam::123456789012:role/release-machine-state-machine";
const TABLE_TYPES: &[&str] = &["AWS::DynamoDB::Table"];
const BUCKET_TYPES: &[&str] = &["AWS::S3::Bucket"];
const FUNCTION_TYPES: &[&str] = &["AWS::Serverless::Function", "AWS::Lambda::Function"];
const MACHINE_TYPES: &[&str] = &[
    "AWS::Serverless::StateMachine",
    "AWS::StepFunctions::StateMachine",
];

/// What the harness could not read from the template: every problem, each naming what could not
/// be read and where (`Resources.X.Properties...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub path: PathBuf,
    pub problems: Vec<String>,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: the e2e stack cannot be provisioned from it ({} problem{}):",
            self.path.display(),
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TemplateError {}

/// template.yaml, parsed.
pub struct Template {
    root: PathBuf,
    path: PathBuf,
    doc: Yaml,
}

/// What `!Ref X` and `!GetAtt X.Attr` give, per logical id.
#[derive(Default)]
struct Context {
    refs: BTreeMap<String, String>,
    attrs: BTreeMap<(String, String), String>,
}

fn tag_name(t: &serde_norway::value::TaggedValue) -> String {
    t.tag.to_string().trim_start_matches('!').to_owned()
}

impl Context {
    fn lookup_ref(&self, name: &str) -> Result<String, String> {
        match name {
            "AWS::Region" => Ok(REGION.into()),
            "AWS::AccountId" => Ok(ACCOUNT.into()),
            "AWS::StackName" => Ok(STACK_NAME.into()),
            "AWS::Partition" => Ok("aws".into()),
            "AWS::URLSuffix" => Ok("amazonaws.com".into()),
            "AWS::StackId" => Ok(STACK_ID.into()),
            _ => self
                .refs
                .get(name)
                .cloned()
                .ok_or_else(|| format!("!Ref {name} is not known to the harness")),
        }
    }

    fn lookup_att(&self, dotted: &str) -> Result<String, String> {
        let (id, attr) = dotted
            .split_once('.')
            .ok_or_else(|| format!("!GetAtt {dotted}: expected Resource.Attribute"))?;
        self.attrs
            .get(&(id.to_owned(), attr.to_owned()))
            .cloned()
            .ok_or_else(|| format!("!GetAtt {dotted} is not known to the harness"))
    }

    fn sub(&self, text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("!Sub {text:?}: unclosed ${{"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(v);
            } else if name.contains('.') && !name.starts_with("AWS::") {
                out.push_str(&self.lookup_att(name)?);
            } else {
                out.push_str(&self.lookup_ref(name)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn function(&self, name: &str, arg: &Yaml) -> Result<String, String> {
        match name {
            "Ref" => self.lookup_ref(arg.as_str().ok_or("!Ref takes a name")?),
            "GetAtt" | "Fn::GetAtt" => match arg {
                Yaml::String(s) => self.lookup_att(s),
                Yaml::Sequence(parts) if parts.len() == 2 => {
                    match (parts[0].as_str(), parts[1].as_str()) {
                        (Some(id), Some(attr)) => self.lookup_att(&format!("{id}.{attr}")),
                        _ => Err(format!("!GetAtt {arg:?}: expected [Resource, Attribute]")),
                    }
                }
                _ => Err(format!("!GetAtt {arg:?}: unexpected shape")),
            },
            "Sub" | "Fn::Sub" => match arg {
                Yaml::String(s) => self.sub(s, &BTreeMap::new()),
                Yaml::Sequence(parts) if parts.len() == 2 => {
                    let mut vars = BTreeMap::new();
                    let m = parts[1]
                        .as_mapping()
                        .ok_or("!Sub [text, variables]: the variables are not a mapping")?;
                    for (k, v) in m {
                        let k = k.as_str().ok_or("!Sub: a variable name is not a string")?;
                        vars.insert(k.to_owned(), self.resolve(v)?);
                    }
                    self.sub(parts[0].as_str().ok_or("!Sub takes a string")?, &vars)
                }
                _ => Err(format!("!Sub {arg:?}: unexpected shape")),
            },
            "Join" | "Fn::Join" => match arg {
                Yaml::Sequence(parts) if parts.len() == 2 => {
                    let sep = parts[0]
                        .as_str()
                        .ok_or("!Join: the separator is not a string")?;
                    let items = parts[1]
                        .as_sequence()
                        .ok_or("!Join takes a list")?
                        .iter()
                        .map(|v| self.resolve(v))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(items.join(sep))
                }
                _ => Err(format!("!Join {arg:?}: unexpected shape")),
            },
            "Select" | "Fn::Select" => match arg {
                Yaml::Sequence(parts) if parts.len() == 2 => {
                    let index: usize = self
                        .resolve(&parts[0])?
                        .parse()
                        .map_err(|e| format!("!Select: the index is not a number: {e}"))?;
                    let items = self.list(&parts[1])?;
                    items.get(index).cloned().ok_or_else(|| {
                        format!("!Select {index} of a list of {}: {items:?}", items.len())
                    })
                }
                _ => Err(format!("!Select {arg:?}: unexpected shape")),
            },
            other => Err(format!("the harness does not resolve {other}")),
        }
    }

    /// A template value that is a list (`!Split` or a sequence), intrinsic functions resolved.
    fn list(&self, v: &Yaml) -> Result<Vec<String>, String> {
        let split = |arg: &Yaml| match arg {
            Yaml::Sequence(parts) if parts.len() == 2 => {
                let sep = parts[0]
                    .as_str()
                    .ok_or("!Split: the separator is not a string")?;
                Ok(self
                    .resolve(&parts[1])?
                    .split(sep)
                    .map(str::to_owned)
                    .collect())
            }
            _ => Err(format!("!Split {arg:?}: unexpected shape")),
        };
        match v {
            Yaml::Sequence(items) => items.iter().map(|i| self.resolve(i)).collect(),
            Yaml::Tagged(t) if tag_name(t) == "Split" => split(&t.value),
            Yaml::Mapping(m) if m.len() == 1 && m.get("Fn::Split").is_some() => {
                split(m.get("Fn::Split").expect("checked"))
            }
            other => Err(format!("expected a list or !Split, not {other:?}")),
        }
    }

    /// A template value as a string, intrinsic functions resolved.
    fn resolve(&self, v: &Yaml) -> Result<String, String> {
        match v {
            Yaml::String(s) => Ok(s.clone()),
            Yaml::Number(n) => Ok(n.to_string()),
            Yaml::Bool(b) => Ok(b.to_string()),
            Yaml::Tagged(t) => self.function(&tag_name(t), &t.value),
            Yaml::Mapping(m) if m.len() == 1 => {
                let (k, arg) = m.iter().next().expect("one entry");
                self.function(k.as_str().unwrap_or_default(), arg)
            }
            other => Err(format!("cannot resolve {other:?}")),
        }
    }
}

fn get<'a>(v: &'a Yaml, key: &str) -> Option<&'a Yaml> {
    v.as_mapping()?.get(key)
}

fn list<'a>(v: &'a Yaml, key: &str) -> impl Iterator<Item = &'a Yaml> {
    get(v, key)
        .and_then(Yaml::as_sequence)
        .map(|s| s.iter())
        .into_iter()
        .flatten()
}

/// Collects the problems of a plan, each prefixed with where it is.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, at: &str, what: impl fmt::Display) {
        self.0.push(format!("{at}: {what}"));
    }

    /// `key` of `v` (at `at`), resolved; a problem when it is missing or does not resolve.
    fn resolve(&mut self, ctx: &Context, v: &Yaml, at: &str, key: &str) -> Option<String> {
        let at = format!("{at}.{key}");
        match get(v, key) {
            None => {
                self.add(&at, "missing");
                None
            }
            Some(value) => match ctx.resolve(value) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.add(&at, e);
                    None
                }
            },
        }
    }
}

/// The table as template.yaml declares it.
#[derive(Debug, Clone)]
struct TableSpec {
    key_schema: Vec<KeySchemaElement>,
    attributes: Vec<AttributeDefinition>,
    indexes: Vec<GlobalSecondaryIndex>,
}

/// What [`Plan::provision`] creates, everything read and resolved from template.yaml.
#[derive(Debug, Clone)]
pub struct Plan {
    pub table: String,
    table_spec: TableSpec,
    pub bucket: String,
    pub bucket_versioned: bool,
    pub state_machine_name: String,
    pub state_machine_arn: String,
    /// The state machine definition, DefinitionSubstitutions applied.
    pub definition: String,
    /// The functions' environment (all functions merged; they agree), as passed to watch.
    pub function_env: BTreeMap<String, String>,
    /// Each function resource's binary (logical id → binary).
    pub binaries: BTreeMap<String, String>,
}

fn key_schema(problems: &mut Problems, ctx: &Context, v: &Yaml, at: &str) -> Vec<KeySchemaElement> {
    let elements: Vec<&Yaml> = list(v, "KeySchema").collect();
    if elements.is_empty() {
        problems.add(&format!("{at}.KeySchema"), "missing or empty");
    }
    let mut out = Vec::new();
    for (i, k) in elements.into_iter().enumerate() {
        let at = format!("{at}.KeySchema[{i}]");
        let name = problems.resolve(ctx, k, &at, "AttributeName");
        let key_type = problems.resolve(ctx, k, &at, "KeyType");
        if let (Some(name), Some(key_type)) = (name, key_type) {
            match KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::from(key_type.as_str()))
                .build()
            {
                Ok(e) => out.push(e),
                Err(e) => problems.add(&at, e),
            }
        }
    }
    out
}

fn table_spec(problems: &mut Problems, ctx: &Context, id: &str, resource: &Yaml) -> TableSpec {
    let at = format!("Resources.{id}.Properties");
    let Some(p) = get(resource, "Properties") else {
        problems.add(&at, "missing");
        return TableSpec {
            key_schema: Vec::new(),
            attributes: Vec::new(),
            indexes: Vec::new(),
        };
    };
    let table_keys = key_schema(problems, ctx, p, &at);
    let mut attributes = Vec::new();
    let defs: Vec<&Yaml> = list(p, "AttributeDefinitions").collect();
    if defs.is_empty() {
        problems.add(&format!("{at}.AttributeDefinitions"), "missing or empty");
    }
    for (i, a) in defs.into_iter().enumerate() {
        let at = format!("{at}.AttributeDefinitions[{i}]");
        let name = problems.resolve(ctx, a, &at, "AttributeName");
        let kind = problems.resolve(ctx, a, &at, "AttributeType");
        if let (Some(name), Some(kind)) = (name, kind) {
            match AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()
            {
                Ok(d) => attributes.push(d),
                Err(e) => problems.add(&at, e),
            }
        }
    }
    let mut indexes = Vec::new();
    for (i, g) in list(p, "GlobalSecondaryIndexes").enumerate() {
        let at = format!("{at}.GlobalSecondaryIndexes[{i}]");
        let name = problems.resolve(ctx, g, &at, "IndexName");
        let keys = key_schema(problems, ctx, g, &at);
        let mut projection = Projection::builder();
        match get(g, "Projection") {
            None => problems.add(&format!("{at}.Projection"), "missing"),
            Some(pr) => {
                let pat = format!("{at}.Projection");
                if let Some(t) = problems.resolve(ctx, pr, &pat, "ProjectionType") {
                    projection = projection.projection_type(ProjectionType::from(t.as_str()));
                }
                for (j, a) in list(pr, "NonKeyAttributes").enumerate() {
                    match ctx.resolve(a) {
                        Ok(a) => projection = projection.non_key_attributes(a),
                        Err(e) => problems.add(&format!("{pat}.NonKeyAttributes[{j}]"), e),
                    }
                }
            }
        }
        if let Some(name) = name {
            match GlobalSecondaryIndex::builder()
                .index_name(name)
                .set_key_schema(Some(keys))
                .projection(projection.build())
                .build()
            {
                Ok(index) => indexes.push(index),
                Err(e) => problems.add(&at, e),
            }
        }
    }
    TableSpec {
        key_schema: table_keys,
        attributes,
        indexes,
    }
}

/// The names a function's code requires from its environment: every `required_env("NAME")`
/// in the sources of its package (`functions/<binary>/src`).
pub fn required_env_of(root: &Path, binary: &str) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let mut rest = text.as_str();
                while let Some(at) = rest.find("required_env(\"") {
                    rest = &rest[at + "required_env(\"".len()..];
                    if let Some(end) = rest.find('"') {
                        out.push(rest[..end].to_owned());
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&root.join("functions").join(binary).join("src"), &mut out);
    out.sort();
    out.dedup();
    out
}

impl Template {
    /// Reads and parses `root/template.yaml`.
    pub fn load(root: &Path) -> Result<Template, TemplateError> {
        let path = root.join("template.yaml");
        let text = std::fs::read_to_string(&path).map_err(|e| TemplateError {
            path: path.clone(),
            problems: vec![format!("cannot read it: {e}")],
        })?;
        Template::parse(root, path, &text)
    }

    /// Parses `text` as the template at `path` (files it names are read under `root`).
    pub fn parse(root: &Path, path: PathBuf, text: &str) -> Result<Template, TemplateError> {
        match serde_norway::from_str::<Yaml>(text) {
            Ok(doc) if doc.is_mapping() => Ok(Template {
                root: root.to_path_buf(),
                path,
                doc,
            }),
            Ok(_) => Err(TemplateError {
                path,
                problems: vec!["not a YAML mapping".into()],
            }),
            Err(e) => Err(TemplateError {
                path,
                problems: vec![format!("not valid YAML: {e}")],
            }),
        }
    }

    fn resources(&self) -> Vec<(String, &Yaml)> {
        get(&self.doc, "Resources")
            .and_then(Yaml::as_mapping)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), v))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn of_type(&self, types: &[&str]) -> Vec<(String, &Yaml)> {
        self.resources()
            .into_iter()
            .filter(|(_, r)| {
                get(r, "Type")
                    .and_then(Yaml::as_str)
                    .is_some_and(|t| types.contains(&t))
            })
            .collect()
    }

    /// The one resource of `types` the harness provisions; a problem when there is none or
    /// more than one.
    fn single<'a>(
        problems: &mut Problems,
        found: &'a [(String, &'a Yaml)],
        types: &[&str],
        why: &str,
    ) -> Option<&'a (String, &'a Yaml)> {
        match found {
            [one] => Some(one),
            [] => {
                problems.add("Resources", format!("no {} ({why})", types.join(" or ")));
                None
            }
            many => {
                let ids: Vec<&str> = many.iter().map(|(id, _)| id.as_str()).collect();
                problems.add(
                    "Resources",
                    format!(
                        "{} resources of type {} ({}): the harness provisions exactly one",
                        many.len(),
                        types.join(" or "),
                        ids.join(", ")
                    ),
                );
                None
            }
        }
    }

    /// The binary `cargo lambda watch` serves for a function resource: its
    /// `Metadata.BuildProperties.Binary` (SAM's rust-cargolambda build), or the function package
    /// its `CodeUri` names.
    fn binary_of(
        problems: &mut Problems,
        binaries: &[String],
        logical_id: &str,
        resource: &Yaml,
    ) -> Option<String> {
        let at = format!("Resources.{logical_id}");
        let from_metadata = get(resource, "Metadata")
            .and_then(|m| get(m, "BuildProperties"))
            .and_then(|b| get(b, "Binary"));
        if let Some(b) = from_metadata {
            let at = format!("{at}.Metadata.BuildProperties.Binary");
            return match b.as_str() {
                Some(b) if binaries.iter().any(|x| x == b) => Some(b.to_owned()),
                Some(b) => {
                    problems.add(
                        &at,
                        format!(
                            "{b:?} is not a function package under functions/ ({})",
                            binaries.join(", ")
                        ),
                    );
                    None
                }
                None => {
                    problems.add(&at, "not a string");
                    None
                }
            };
        }
        let from_code_uri = get(resource, "Properties")
            .and_then(|p| get(p, "CodeUri"))
            .and_then(Yaml::as_str)
            .and_then(|u| Path::new(u).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| binaries.contains(n));
        if from_code_uri.is_none() {
            problems.add(
                &at,
                "cannot tell which binary serves it: no Metadata.BuildProperties.Binary, and no \
                 Properties.CodeUri naming a package under functions/",
            );
        }
        from_code_uri
    }

    /// Reads everything the stack needs from the template, names derived from `unique` (the
    /// stack's name). Fails with every problem found.
    pub fn plan(&self, unique: &str) -> Result<Plan, TemplateError> {
        let mut problems = Problems::default();
        let mut ctx = Context::default();
        let table = format!("{unique}-releases");
        let bucket: String = format!("{unique}-manifests").chars().take(63).collect();
        let bucket = bucket.trim_end_matches('-').to_owned();

        for (k, v) in get(&self.doc, "Parameters")
            .and_then(Yaml::as_mapping)
            .into_iter()
            .flatten()
        {
            let k = k.as_str().unwrap_or_default();
            if let Some(default) = get(v, "Default") {
                match ctx.resolve(default) {
                    Ok(d) => {
                        ctx.refs.insert(k.to_owned(), d);
                    }
                    Err(e) => problems.add(&format!("Parameters.{k}.Default"), e),
                }
            }
        }

        // Names first (they may depend on parameters only), then everything that refers to them.
        let tables = self.of_type(TABLE_TYPES);
        let table_resource = Self::single(
            &mut problems,
            &tables,
            TABLE_TYPES,
            "the release table the functions' TABLE_NAME names",
        );
        for (id, _) in &tables {
            ctx.refs.insert(id.clone(), table.clone());
            ctx.attrs.insert(
                (id.clone(), "Arn".into()),
                format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"),
            );
        }
        let buckets = self.of_type(BUCKET_TYPES);
        let bucket_resource =
            Self::single(&mut problems, &buckets, BUCKET_TYPES, "the manifest bucket");
        for (id, _) in &buckets {
            ctx.refs.insert(id.clone(), bucket.clone());
            ctx.attrs
                .insert((id.clone(), "Arn".into()), format!("arn:aws:s3:::{bucket}"));
        }
        let all_binaries = function_binaries();
        let functions = self.of_type(FUNCTION_TYPES);
        if functions.is_empty() {
            problems.add("Resources", format!("no {}", FUNCTION_TYPES.join(" or ")));
        }
        let mut binaries = BTreeMap::new();
        for (id, r) in &functions {
            if let Some(bin) = Self::binary_of(&mut problems, &all_binaries, id, r) {
                ctx.attrs
                    .insert((id.clone(), "Arn".into()), function_arn(&bin));
                ctx.refs.insert(id.clone(), bin.clone());
                binaries.insert(id.clone(), bin);
            }
        }
        let machines = self.of_type(MACHINE_TYPES);
        let machine = Self::single(
            &mut problems,
            &machines,
            MACHINE_TYPES,
            "the release state machine",
        );
        let machine_props = machine.and_then(|(id, r)| {
            let p = get(r, "Properties");
            if p.is_none() {
                problems.add(&format!("Resources.{id}.Properties"), "missing");
            }
            p.map(|p| (id.as_str(), p))
        });
        let sm_name = machine_props.and_then(|(id, p)| {
            let at = format!("Resources.{id}.Properties");
            let key = if get(p, "Name").is_some() {
                "Name"
            } else {
                "StateMachineName"
            };
            problems.resolve(&ctx, p, &at, key)
        });
        let sm_arn = sm_name
            .as_ref()
            .map(|n| format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{n}"));
        if let (Some((id, _)), Some(name), Some(arn)) = (machine, &sm_name, &sm_arn) {
            ctx.refs.insert(id.clone(), arn.clone());
            ctx.attrs.insert((id.clone(), "Arn".into()), arn.clone());
            ctx.attrs.insert((id.clone(), "Name".into()), name.clone());
        }
        // Remaining resources: !Ref gives the logical id (good enough for names nobody calls).
        for (id, _) in self.resources() {
            ctx.refs.entry(id.clone()).or_insert(id);
        }

        let table_spec = match table_resource {
            Some((id, r)) => table_spec(&mut problems, &ctx, id, r),
            None => TableSpec {
                key_schema: Vec::new(),
                attributes: Vec::new(),
                indexes: Vec::new(),
            },
        };
        let bucket_versioned = bucket_resource.is_some_and(|(_, r)| {
            get(r, "Properties")
                .and_then(|p| get(p, "VersioningConfiguration"))
                .and_then(|v| get(v, "Status"))
                .and_then(Yaml::as_str)
                == Some("Enabled")
        });
        let definition = machine_props
            .and_then(|(id, p)| self.definition(&mut problems, &ctx, id, p))
            .unwrap_or_default();
        let function_env = self.environment(
            &mut problems,
            &ctx,
            &functions,
            &binaries,
            &table,
            sm_arn.as_deref(),
        );

        match (problems.0.is_empty(), sm_name, sm_arn) {
            (true, Some(state_machine_name), Some(state_machine_arn)) => Ok(Plan {
                table,
                table_spec,
                bucket,
                bucket_versioned,
                state_machine_name,
                state_machine_arn,
                definition,
                function_env,
                binaries,
            }),
            _ => Err(TemplateError {
                path: self.path.clone(),
                problems: problems.0,
            }),
        }
    }

    /// The functions' environment: `Globals.Function` and each function's
    /// `Environment.Variables`, resolved, merged (watch runs every function with one
    /// environment, so they must agree), and checked against what each function's code requires
    /// and against the table and state machine the harness creates.
    fn environment(
        &self,
        problems: &mut Problems,
        ctx: &Context,
        functions: &[(String, &Yaml)],
        binaries: &BTreeMap<String, String>,
        table: &str,
        sm_arn: Option<&str>,
    ) -> BTreeMap<String, String> {
        let vars_of = |p: &Yaml| {
            get(p, "Environment")
                .and_then(|e| get(e, "Variables"))
                .and_then(Yaml::as_mapping)
                .cloned()
                .unwrap_or_default()
        };
        let globals = get(&self.doc, "Globals")
            .and_then(|g| get(g, "Function"))
            .map(vars_of)
            .unwrap_or_default();
        let mut sources: Vec<(String, serde_norway::Mapping)> = Vec::new();
        sources.push(("Globals.Function".into(), globals.clone()));
        for (id, r) in functions {
            let own = get(r, "Properties").map(vars_of).unwrap_or_default();
            sources.push((format!("Resources.{id}.Properties"), own));
        }
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        let mut set_by: BTreeMap<String, String> = BTreeMap::new();
        for (at, vars) in &sources {
            for (k, v) in vars {
                let Some(k) = k.as_str() else {
                    problems.add(
                        &format!("{at}.Environment.Variables"),
                        format!("a variable name is not a string: {k:?}"),
                    );
                    continue;
                };
                let where_ = format!("{at}.Environment.Variables.{k}");
                match ctx.resolve(v) {
                    Ok(value) => match env.get(k) {
                        Some(old) if *old != value => problems.add(
                            &where_,
                            format!(
                                "{value:?} differs from {old:?} in {} (watch runs every function \
                                 with one environment)",
                                set_by[k]
                            ),
                        ),
                        Some(_) => {}
                        None => {
                            env.insert(k.to_owned(), value);
                            set_by.insert(k.to_owned(), where_);
                        }
                    },
                    Err(e) => problems.add(&where_, e),
                }
            }
        }

        // What each function's code requires must be in its own (or the global) environment:
        // the merged environment would hide a function the template forgot.
        for (id, r) in functions {
            let Some(bin) = binaries.get(id) else {
                continue;
            };
            let own = get(r, "Properties").map(vars_of).unwrap_or_default();
            for name in required_env_of(&self.root, bin) {
                if own.get(name.as_str()).is_none() && globals.get(name.as_str()).is_none() {
                    problems.add(
                        &format!("Resources.{id}.Properties.Environment.Variables"),
                        format!(
                            "no {name}, which {bin} requires (required_env in functions/{bin}/src)"
                        ),
                    );
                }
            }
        }

        // The names the functions are given are the resources the harness creates.
        if let Some(v) = env.get("TABLE_NAME") {
            if v != table {
                problems.add(
                    &set_by["TABLE_NAME"],
                    format!("{v:?} is not the template's table (its !Ref gives {table:?})"),
                );
            }
        }
        if let (Some(v), Some(arn)) = (env.get("STATE_MACHINE_ARN"), sm_arn) {
            if v != arn {
                problems.add(
                    &set_by["STATE_MACHINE_ARN"],
                    format!("{v:?} is not the ARN of the template's state machine ({arn:?})"),
                );
            }
        }
        env
    }

    /// The state machine's definition (its `DefinitionUri`), DefinitionSubstitutions applied.
    fn definition(
        &self,
        problems: &mut Problems,
        ctx: &Context,
        id: &str,
        props: &Yaml,
    ) -> Option<String> {
        let at = format!("Resources.{id}.Properties");
        let uri = match get(props, "DefinitionUri") {
            Some(Yaml::String(uri)) => uri,
            Some(other) => {
                problems.add(
                    &format!("{at}.DefinitionUri"),
                    format!("the harness reads a local file path, not {other:?}"),
                );
                return None;
            }
            None => {
                problems.add(
                    &format!("{at}.DefinitionUri"),
                    "missing (the harness reads the definition from the file it names)",
                );
                return None;
            }
        };
        let path = self.root.join(uri);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                problems.add(
                    &format!("{at}.DefinitionUri"),
                    format!("cannot read {}: {e}", path.display()),
                );
                return None;
            }
        };
        let mut subs = BTreeMap::new();
        match get(props, "DefinitionSubstitutions") {
            None => {}
            Some(Yaml::Mapping(m)) => {
                for (k, v) in m {
                    let k = k.as_str().unwrap_or_default().to_owned();
                    match ctx.resolve(v) {
                        Ok(value) => {
                            subs.insert(k, value);
                        }
                        Err(e) => problems.add(&format!("{at}.DefinitionSubstitutions.{k}"), e),
                    }
                }
            }
            Some(other) => problems.add(
                &format!("{at}.DefinitionSubstitutions"),
                format!("not a mapping: {other:?}"),
            ),
        }
        let mut resolved = text;
        for (k, v) in &subs {
            resolved = resolved.replace(&format!("${{{k}}}"), v);
        }
        let mut rest = resolved.as_str();
        let mut missing = std::collections::BTreeSet::new();
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let end = after.find('}').unwrap_or(after.len());
            let name: String = after[..end].chars().take(60).collect();
            rest = &after[end..];
            if !missing.insert(name.clone()) {
                continue;
            }
            problems.add(
                &format!("{at}.DefinitionSubstitutions"),
                format!("no entry for ${{{name}}}, which {uri} uses"),
            );
        }
        Some(resolved)
    }
}

impl Plan {
    /// The names of what [`Plan::provision`] creates.
    pub fn resources(&self) -> Resources {
        Resources {
            table: self.table.clone(),
            bucket: self.bucket.clone(),
            state_machine_name: self.state_machine_name.clone(),
            state_machine_arn: self.state_machine_arn.clone(),
            function_env: self.function_env.clone(),
        }
    }

    /// Creates the table (in `dynamo`: moto or dynalite), the bucket and, if
    /// `with_state_machine`, the state machine (in `moto`).
    ///
    /// # Panics
    /// When moto or dynalite refuses a call.
    pub async fn provision(
        &self,
        moto: &SdkConfig,
        dynamo: &SdkConfig,
        with_state_machine: bool,
    ) -> Resources {
        let table = &self.table;
        aws_sdk_dynamodb::Client::new(dynamo)
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(self.table_spec.key_schema.clone()))
            .set_attribute_definitions(Some(self.table_spec.attributes.clone()))
            .set_global_secondary_indexes(
                Some(self.table_spec.indexes.clone()).filter(|i| !i.is_empty()),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateTable {table} (from template.yaml): {e:?}"));

        let bucket = &self.bucket;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(moto)
                .force_path_style(true)
                .build(),
        );
        s3.create_bucket()
            .bucket(bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateBucket {bucket}: {e:?}"));
        if self.bucket_versioned {
            s3.put_bucket_versioning()
                .bucket(bucket)
                .versioning_configuration(
                    aws_sdk_s3::types::VersioningConfiguration::builder()
                        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .unwrap_or_else(|e| panic!("PutBucketVersioning {bucket}: {e:?}"));
        }

        if with_state_machine {
            let name = &self.state_machine_name;
            aws_sdk_sfn::Client::new(moto)
                .create_state_machine()
                .name(name)
                .definition(&self.definition)
                .role_arn(STATE_MACHINE_ROLE)
                .send()
                .await
                .unwrap_or_else(|e| panic!("CreateStateMachine {name}: {e:?}"));
        }
        self.resources()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo_root;

    #[test]
    fn resolves_short_form_tags() {
        let doc: Yaml = serde_norway::from_str(
            "a: !Ref Table\nb: !GetAtt Fn.Arn\nc: !Sub '${AWS::StackName}-x-${Table}-${Fn.Arn}-${!Lit}'\nd: !Sub ['${X}-y', {X: !Ref Table}]\ne: {'Fn::GetAtt': [Fn, Arn]}\nf: !Join [':', [!Ref Table, !GetAtt Fn.Arn]]\ng: !Select [2, !Split ['/', !Ref AWS::StackId]]\n",
        )
        .unwrap();
        let mut ctx = Context::default();
        ctx.refs.insert("Table".into(), "t1".into());
        ctx.attrs
            .insert(("Fn".into(), "Arn".into()), "arn:f".into());
        let r = |k: &str| ctx.resolve(get(&doc, k).unwrap());
        assert_eq!(r("a").unwrap(), "t1");
        assert_eq!(r("b").unwrap(), "arn:f");
        assert_eq!(r("c").unwrap(), "release-machine-x-t1-arn:f-${Lit}");
        assert_eq!(r("d").unwrap(), "t1-y");
        assert_eq!(r("e").unwrap(), "arn:f");
        assert_eq!(r("f").unwrap(), "t1:arn:f");
        assert_eq!(r("g").unwrap(), "5a0b3c9e-0d1f-4e2a-8b3c-4d5e6f708192");
    }

    /// The repository's template.yaml plans with no problem, and its wiring is what the stack
    /// needs.
    #[test]
    fn the_real_template_plans() {
        let template = Template::load(&repo_root()).unwrap_or_else(|e| panic!("{e}"));
        let plan = template.plan("e2e-unit").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.table, "e2e-unit-releases");
        assert_eq!(plan.function_env["TABLE_NAME"], plan.table);
        assert_eq!(
            plan.function_env["STATE_MACHINE_ARN"],
            plan.state_machine_arn
        );
        assert!(
            plan.state_machine_name.starts_with("release-"),
            "{}",
            plan.state_machine_name
        );
        assert!(plan.bucket_versioned);
        assert!(!plan.definition.contains("${"));
        assert!(plan.definition.contains(&function_arn("check-manifest")));
        let names: Vec<&str> = plan
            .table_spec
            .key_schema
            .iter()
            .map(|k| k.attribute_name())
            .collect();
        assert_eq!(names, ["pk", "sk"]);
        assert_eq!(plan.table_spec.indexes.len(), 2, "waiting and outbox");
        let mut served: Vec<&String> = plan.binaries.values().collect();
        served.sort();
        let all = function_binaries();
        assert_eq!(served, all.iter().collect::<Vec<_>>());
    }

    /// A small template in the real one's shape, with `edit` applied to its text.
    fn plan_with(edit: impl Fn(String) -> String) -> Result<Plan, TemplateError> {
        let text = edit(
            r#"
Resources:
  ReleaseTable:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions:
        - { AttributeName: pk, AttributeType: S }
      KeySchema:
        - { AttributeName: pk, KeyType: HASH }
  ManifestBucket:
    Type: AWS::S3::Bucket
  CheckManifestFunction:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: check-manifest } }
    Properties:
      Environment: { Variables: { TABLE_NAME: !Ref ReleaseTable } }
  ReleaseApiFunction:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: release-api } }
    Properties:
      Environment:
        Variables:
          TABLE_NAME: !Ref ReleaseTable
          STATE_MACHINE_ARN: !GetAtt ReleaseStateMachine.Arn
  ReleaseStateMachine:
    Type: AWS::Serverless::StateMachine
    Properties:
      Name: !Sub "${AWS::StackName}-release"
      DefinitionUri: statemachine/release.asl.json
      DefinitionSubstitutions:
        LambdaInvoke: !Sub "arn:${AWS::Partition}:states:::lambda:invoke"
        LambdaInvokeWaitForTaskToken: !Sub "arn:${AWS::Partition}:states:::lambda:invoke.waitForTaskToken"
        CheckManifestFunctionArn: !GetAtt CheckManifestFunction.Arn
        StartPipelinesFunctionArn: !GetAtt CheckManifestFunction.Arn
        PollExecutionFunctionArn: !GetAtt CheckManifestFunction.Arn
        RecordStateFunctionArn: !GetAtt CheckManifestFunction.Arn
"#
            .to_owned(),
        );
        Template::parse(&repo_root(), PathBuf::from("test.yaml"), &text)?.plan("e2e-unit")
    }

    fn problems_of(edit: impl Fn(String) -> String) -> String {
        match plan_with(edit) {
            Ok(plan) => panic!("planned: {plan:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_small_template_plans() {
        let plan = plan_with(|t| t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.function_env["TABLE_NAME"], "e2e-unit-releases");
        assert_eq!(plan.function_env.len(), 2);
    }

    #[test]
    fn an_unresolvable_environment_variable_fails_naming_it() {
        let e = problems_of(|t| {
            t.replace(
                "STATE_MACHINE_ARN: !GetAtt ReleaseStateMachine.Arn",
                "STATE_MACHINE_ARN: !GetAtt Nowhere.Arn",
            )
        });
        assert!(
            e.contains(
                "Resources.ReleaseApiFunction.Properties.Environment.Variables.STATE_MACHINE_ARN: \
                 !GetAtt Nowhere.Arn is not known to the harness"
            ),
            "{e}"
        );
        assert!(e.starts_with("test.yaml: "), "{e}");
    }

    #[test]
    fn a_function_without_a_variable_its_code_requires_fails() {
        let e = problems_of(|t| {
            t.replace(
                "          STATE_MACHINE_ARN: !GetAtt ReleaseStateMachine.Arn\n",
                "",
            )
        });
        assert!(
            e.contains(
                "Resources.ReleaseApiFunction.Properties.Environment.Variables: no \
                 STATE_MACHINE_ARN, which release-api requires"
            ),
            "{e}"
        );
    }

    #[test]
    fn variables_that_disagree_or_name_other_resources_fail() {
        let e = problems_of(|t| {
            t.replacen(
                "TABLE_NAME: !Ref ReleaseTable",
                "TABLE_NAME: releases",
                1,
            )
            .replace(
                "STATE_MACHINE_ARN: !GetAtt ReleaseStateMachine.Arn",
                "STATE_MACHINE_ARN: !Sub arn:aws:states:us-east-1:123456789012:stateMachine:other",
            )
        });
        assert!(e.contains("differs from \"releases\""), "{e}");
        assert!(
            e.contains("\"releases\" is not the template's table"),
            "{e}"
        );
        assert!(
            e.contains("is not the ARN of the template's state machine"),
            "{e}"
        );
    }

    #[test]
    fn no_table_no_bucket_no_name_fail() {
        let e = problems_of(|t| {
            t.replace("Type: AWS::DynamoDB::Table", "Type: AWS::Other::Thing")
                .replace("Type: AWS::S3::Bucket", "Type: AWS::Other::Bucket")
                .replace("      Name: !Sub \"${AWS::StackName}-release\"\n", "")
        });
        assert!(e.contains("Resources: no AWS::DynamoDB::Table"), "{e}");
        assert!(e.contains("Resources: no AWS::S3::Bucket"), "{e}");
        assert!(
            e.contains("Resources.ReleaseStateMachine.Properties.StateMachineName: missing"),
            "{e}"
        );
    }

    #[test]
    fn an_unresolvable_state_machine_name_or_substitution_fails() {
        let e = problems_of(|t| {
            t.replace("${AWS::StackName}-release", "${Stage}-release")
                .replace(
                    "        RecordStateFunctionArn: !GetAtt CheckManifestFunction.Arn\n",
                    "",
                )
        });
        assert!(
            e.contains(
                "Resources.ReleaseStateMachine.Properties.Name: !Ref Stage is not known to the harness"
            ),
            "{e}"
        );
        assert!(
            e.contains("DefinitionSubstitutions: no entry for ${RecordStateFunctionArn}"),
            "{e}"
        );
    }

    #[test]
    fn a_table_without_a_key_schema_and_an_unknown_binary_fail() {
        let e = problems_of(|t| {
            t.replace(
                "      KeySchema:\n        - { AttributeName: pk, KeyType: HASH }\n",
                "",
            )
            .replace("Binary: check-manifest", "Binary: no-such-function")
        });
        assert!(
            e.contains("Resources.ReleaseTable.Properties.KeySchema: missing or empty"),
            "{e}"
        );
        assert!(
            e.contains("Resources.CheckManifestFunction.Metadata.BuildProperties.Binary: \"no-such-function\""),
            "{e}"
        );
    }

    #[test]
    fn a_missing_or_broken_file_fails() {
        let e = Template::load(Path::new("/nonexistent")).err().unwrap();
        assert!(e.to_string().contains("cannot read it"), "{e}");
        let e = Template::parse(Path::new("/"), "t.yaml".into(), "a: [")
            .err()
            .unwrap();
        assert!(e.to_string().contains("not valid YAML"), "{e}");
    }
}
