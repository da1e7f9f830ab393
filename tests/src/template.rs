//! Reads template.yaml (CloudFormation short-form tags `!Ref`, `!Sub`, `!GetAtt`, `!Join` are
//! kept as tagged values) and provisions what it declares in moto: the DynamoDB table (its key
//! schema, attributes and indexes as written in the template), the S3 bucket, and the state
//! machine with its DefinitionSubstitutions resolved; and works out the functions'
//! environment (each function's `Environment.Variables`, resolved).

use crate::{function_arn, Resources, ACCOUNT, REGION};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use serde_yaml::Value as Yaml;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const STACK_NAME: &str = "release-machine";
const STATE_MACHINE_ROLE: &str = "arn:aws:iam::123456789012:role/release-machine-state-machine";
const DEFAULT_DEFINITION: &str = "statemachine/release.asl.json";

/// template.yaml, parsed; `None` when the file does not exist (yet).
pub struct Template {
    root: PathBuf,
    path: PathBuf,
    doc: Option<Yaml>,
}

/// What `!Ref X` and `!GetAtt X.Attr` give, per logical id.
#[derive(Default)]
struct Context {
    refs: BTreeMap<String, String>,
    attrs: BTreeMap<(String, String), String>,
}

fn kebab(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn tag_name(t: &serde_yaml::value::TaggedValue) -> String {
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
                Yaml::Sequence(parts) if parts.len() == 2 => self.lookup_att(&format!(
                    "{}.{}",
                    parts[0].as_str().unwrap_or_default(),
                    parts[1].as_str().unwrap_or_default()
                )),
                _ => Err(format!("!GetAtt {arg:?}: unexpected shape")),
            },
            "Sub" | "Fn::Sub" => match arg {
                Yaml::String(s) => self.sub(s, &BTreeMap::new()),
                Yaml::Sequence(parts) if parts.len() == 2 => {
                    let mut vars = BTreeMap::new();
                    if let Some(m) = parts[1].as_mapping() {
                        for (k, v) in m {
                            vars.insert(
                                k.as_str().unwrap_or_default().to_owned(),
                                self.resolve(v)?,
                            );
                        }
                    }
                    self.sub(parts[0].as_str().ok_or("!Sub takes a string")?, &vars)
                }
                _ => Err(format!("!Sub {arg:?}: unexpected shape")),
            },
            "Join" | "Fn::Join" => match arg {
                Yaml::Sequence(parts) if parts.len() == 2 => {
                    let sep = parts[0].as_str().unwrap_or_default();
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
            other => Err(format!("the harness does not resolve {other}")),
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

fn key_schema(ctx: &Context, v: &Yaml) -> Vec<KeySchemaElement> {
    list(v, "KeySchema")
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(
                    ctx.resolve(get(k, "AttributeName").expect("AttributeName"))
                        .unwrap(),
                )
                .key_type(KeyType::from(
                    ctx.resolve(get(k, "KeyType").expect("KeyType"))
                        .unwrap()
                        .as_str(),
                ))
                .build()
                .expect("key schema element")
        })
        .collect()
}

impl Template {
    pub fn load(root: &Path) -> Template {
        let path = root.join("template.yaml");
        let doc = match std::fs::read_to_string(&path) {
            Ok(text) => Some(
                serde_yaml::from_str(&text)
                    .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display())),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        };
        Template {
            root: root.to_path_buf(),
            path,
            doc,
        }
    }

    fn resources(&self) -> Vec<(String, &Yaml)> {
        self.doc
            .as_ref()
            .and_then(|d| get(d, "Resources"))
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

    /// The binary `cargo lambda watch` serves for a function resource.
    fn binary_of(logical_id: &str, resource: &Yaml) -> String {
        let from_metadata = get(resource, "Metadata")
            .and_then(|m| get(m, "BuildProperties"))
            .and_then(|b| get(b, "Binary"))
            .and_then(Yaml::as_str);
        if let Some(b) = from_metadata {
            return b.to_owned();
        }
        let from_code_uri = get(resource, "Properties")
            .and_then(|p| get(p, "CodeUri"))
            .and_then(Yaml::as_str)
            .and_then(|u| Path::new(u).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n != "." && crate::function_binaries().contains(n));
        if let Some(b) = from_code_uri {
            return b;
        }
        kebab(logical_id.trim_end_matches("Function"))
    }

    /// Creates the table, the bucket and (if `with_state_machine`) the state machine; returns
    /// their names and the functions' environment.
    pub async fn provision(
        &self,
        moto: &SdkConfig,
        dynamo: &SdkConfig,
        with_state_machine: bool,
        unique: &str,
    ) -> Resources {
        let mut notes = Vec::new();
        let mut ctx = Context::default();
        let table = format!("{unique}-releases");
        let bucket = format!("{unique}-manifests");
        let bucket: String = bucket.chars().take(63).collect();
        let bucket = bucket.trim_end_matches('-').to_owned();

        if let Some(doc) = &self.doc {
            for (k, v) in get(doc, "Parameters")
                .and_then(Yaml::as_mapping)
                .into_iter()
                .flatten()
            {
                if let Some(default) = get(v, "Default") {
                    if let Ok(d) = ctx.resolve(default) {
                        ctx.refs
                            .insert(k.as_str().unwrap_or_default().to_owned(), d);
                    }
                }
            }
        }

        // Names first (they may depend on parameters only), then everything that refers to them.
        let tables = self.of_type(&["AWS::DynamoDB::Table"]);
        for (id, _) in &tables {
            ctx.refs.insert(id.clone(), table.clone());
            ctx.attrs.insert(
                (id.clone(), "Arn".into()),
                format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"),
            );
        }
        let buckets = self.of_type(&["AWS::S3::Bucket"]);
        for (id, _) in &buckets {
            ctx.refs.insert(id.clone(), bucket.clone());
            ctx.attrs
                .insert((id.clone(), "Arn".into()), format!("arn:aws:s3:::{bucket}"));
        }
        let functions = self.of_type(&["AWS::Serverless::Function", "AWS::Lambda::Function"]);
        for (id, r) in &functions {
            let bin = Self::binary_of(id, r);
            ctx.attrs
                .insert((id.clone(), "Arn".into()), function_arn(&bin));
            ctx.refs.insert(id.clone(), bin);
        }
        let machines = self.of_type(&[
            "AWS::Serverless::StateMachine",
            "AWS::StepFunctions::StateMachine",
        ]);
        let machine = machines.first();
        let sm_name = machine
            .and_then(|(_, r)| {
                let p = get(r, "Properties")?;
                let name = get(p, "Name").or_else(|| get(p, "StateMachineName"))?;
                match ctx.resolve(name) {
                    Ok(n) => Some(n),
                    Err(e) => {
                        notes.push(format!("state machine name: {e}; using {STACK_NAME}"));
                        None
                    }
                }
            })
            .unwrap_or_else(|| STACK_NAME.to_owned());
        let sm_arn = format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{sm_name}");
        if let Some((id, _)) = machine {
            ctx.refs.insert(id.clone(), sm_arn.clone());
            ctx.attrs.insert((id.clone(), "Arn".into()), sm_arn.clone());
            ctx.attrs
                .insert((id.clone(), "Name".into()), sm_name.clone());
        }
        // Remaining resources: !Ref gives the logical id (good enough for names nobody calls).
        for (id, _) in self.resources() {
            ctx.refs.entry(id.clone()).or_insert(id);
        }

        // The table.
        let ddb = aws_sdk_dynamodb::Client::new(dynamo);
        match tables.first() {
            Some((id, r)) => {
                let p = get(r, "Properties").unwrap_or_else(|| panic!("{id} has no Properties"));
                let mut req = ddb
                    .create_table()
                    .table_name(&table)
                    .billing_mode(BillingMode::PayPerRequest)
                    .set_key_schema(Some(key_schema(&ctx, p)));
                for a in list(p, "AttributeDefinitions") {
                    req = req.attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name(ctx.resolve(get(a, "AttributeName").unwrap()).unwrap())
                            .attribute_type(ScalarAttributeType::from(
                                ctx.resolve(get(a, "AttributeType").unwrap())
                                    .unwrap()
                                    .as_str(),
                            ))
                            .build()
                            .expect("attribute definition"),
                    );
                }
                for g in list(p, "GlobalSecondaryIndexes") {
                    let projection = get(g, "Projection");
                    let mut pb = Projection::builder();
                    if let Some(t) = projection.and_then(|p| get(p, "ProjectionType")) {
                        pb = pb.projection_type(ProjectionType::from(
                            ctx.resolve(t).unwrap().as_str(),
                        ));
                    }
                    for a in projection
                        .map(|p| list(p, "NonKeyAttributes").collect::<Vec<_>>())
                        .unwrap_or_default()
                    {
                        pb = pb.non_key_attributes(ctx.resolve(a).unwrap());
                    }
                    req = req.global_secondary_indexes(
                        GlobalSecondaryIndex::builder()
                            .index_name(ctx.resolve(get(g, "IndexName").unwrap()).unwrap())
                            .set_key_schema(Some(key_schema(&ctx, g)))
                            .projection(pb.build())
                            .build()
                            .expect("global secondary index"),
                    );
                }
                req.send().await.unwrap_or_else(|e| {
                    panic!("CreateTable {table} (from {id} in template.yaml): {e:?}")
                });
            }
            None => {
                notes.push(format!(
                    "{} declares no AWS::DynamoDB::Table{}: the table is created with rm_aws::create_table",
                    self.path.display(),
                    if self.doc.is_none() { " (the file does not exist yet)" } else { "" }
                ));
                rm_aws::create_table(&ddb, &table)
                    .await
                    .unwrap_or_else(|e| panic!("create table {table}: {e}"));
            }
        }

        // The bucket.
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(moto)
                .force_path_style(true)
                .build(),
        );
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateBucket {bucket}: {e:?}"));
        let versioned = buckets.first().is_some_and(|(_, r)| {
            get(r, "Properties")
                .and_then(|p| get(p, "VersioningConfiguration"))
                .and_then(|v| get(v, "Status"))
                .and_then(Yaml::as_str)
                == Some("Enabled")
        });
        if versioned {
            s3.put_bucket_versioning()
                .bucket(&bucket)
                .versioning_configuration(
                    aws_sdk_s3::types::VersioningConfiguration::builder()
                        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .unwrap_or_else(|e| panic!("PutBucketVersioning {bucket}: {e:?}"));
        }
        if buckets.is_empty() {
            notes.push(
                "template.yaml declares no AWS::S3::Bucket: a bucket is created anyway".into(),
            );
        }

        // The state machine.
        if with_state_machine {
            let (definition, substitutions) = self.definition(machine.map(|(_, r)| *r), &ctx);
            let mut resolved = definition;
            for (k, v) in &substitutions {
                resolved = resolved.replace(&format!("${{{k}}}"), v);
            }
            if let Some(start) = resolved.find("${") {
                let left: String = resolved[start..].chars().take(60).collect();
                panic!("the state machine definition has an unresolved substitution: {left}");
            }
            aws_sdk_sfn::Client::new(moto)
                .create_state_machine()
                .name(&sm_name)
                .definition(resolved)
                .role_arn(STATE_MACHINE_ROLE)
                .send()
                .await
                .unwrap_or_else(|e| panic!("CreateStateMachine {sm_name}: {e:?}"));
        }

        // The functions' environment.
        let mut env = BTreeMap::new();
        let globals = self
            .doc
            .as_ref()
            .and_then(|d| get(d, "Globals"))
            .and_then(|g| get(g, "Function"))
            .cloned();
        let mut sources: Vec<(String, Yaml)> = Vec::new();
        if let Some(g) = globals {
            sources.push(("Globals.Function".into(), g));
        }
        for (id, r) in &functions {
            if let Some(p) = get(r, "Properties") {
                sources.push((id.clone(), p.clone()));
            }
        }
        for (id, p) in &sources {
            let vars = get(p, "Environment")
                .and_then(|e| get(e, "Variables"))
                .and_then(Yaml::as_mapping);
            for (k, v) in vars.into_iter().flatten() {
                let k = k.as_str().unwrap_or_default().to_owned();
                match ctx.resolve(v) {
                    Ok(value) => {
                        if let Some(old) = env.insert(k.clone(), value.clone()) {
                            if old != value {
                                notes.push(format!(
                                    "{k} differs between functions ({old} vs {value} in {id}); watch runs all with one environment: {value}"
                                ));
                            }
                        }
                    }
                    Err(e) => notes.push(format!("{id}: {k} not set: {e}")),
                }
            }
        }
        for (k, v) in [("TABLE_NAME", &table), ("STATE_MACHINE_ARN", &sm_arn)] {
            if !env.contains_key(k) {
                if self.doc.is_some() {
                    notes.push(format!("template.yaml sets no {k}: the harness sets it"));
                }
                env.insert(k.to_owned(), v.clone());
            }
        }
        Resources {
            table,
            bucket,
            state_machine_name: sm_name,
            state_machine_arn: sm_arn,
            function_env: env,
            notes,
        }
    }

    /// The definition text and its substitutions.
    fn definition(
        &self,
        machine: Option<&Yaml>,
        ctx: &Context,
    ) -> (String, BTreeMap<String, String>) {
        let props = machine.and_then(|r| get(r, "Properties"));
        let uri = props
            .and_then(|p| get(p, "DefinitionUri"))
            .and_then(Yaml::as_str)
            .unwrap_or(DEFAULT_DEFINITION);
        let path = self.root.join(uri);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut subs = BTreeMap::new();
        match props
            .and_then(|p| get(p, "DefinitionSubstitutions"))
            .and_then(Yaml::as_mapping)
        {
            Some(m) => {
                for (k, v) in m {
                    let k = k.as_str().unwrap_or_default().to_owned();
                    let value = ctx.resolve(v).unwrap_or_else(|e| {
                        panic!("DefinitionSubstitutions.{k} in template.yaml: {e}")
                    });
                    subs.insert(k, value);
                }
            }
            None => {
                // No template yet: `${CheckManifestFunctionArn}` → the check-manifest function.
                let mut rest = text.as_str();
                while let Some(start) = rest.find("${") {
                    let after = &rest[start + 2..];
                    let end = after.find('}').unwrap_or(after.len());
                    let name = &after[..end];
                    if let Some(f) = name.strip_suffix("FunctionArn") {
                        subs.insert(name.to_owned(), function_arn(&kebab(f)));
                    }
                    rest = &after[end.min(after.len())..];
                }
            }
        }
        (text, subs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_short_form_tags() {
        let doc: Yaml = serde_yaml::from_str(
            "a: !Ref Table\nb: !GetAtt Fn.Arn\nc: !Sub '${AWS::StackName}-x-${Table}-${Fn.Arn}-${!Lit}'\nd: !Sub ['${X}-y', {X: !Ref Table}]\ne: {'Fn::GetAtt': [Fn, Arn]}\n",
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
        assert_eq!(kebab("CheckManifest"), "check-manifest");
    }
}
