//! The README's deploy instructions and the template's promises, checked against
//! `template.yaml` itself (parsed with its CloudFormation short-form tags: `!Ref`, `!Sub`, ...).

use serde_norway::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn template() -> Value {
    serde_norway::from_str(&read("template.yaml")).expect("template.yaml is YAML")
}

fn readme() -> String {
    read("README.md")
}

/// The tag's name (`Ref`, `Sub`, `GetAtt`, ...) and its argument, for a short-form tag.
fn tagged(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_owned(),
            &t.value,
        )),
        _ => None,
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn resources(t: &Value) -> impl Iterator<Item = (&str, &Value)> {
    t["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .map(|(k, v)| (k.as_str().expect("logical id"), v))
}

fn of_type<'a>(t: &'a Value, ty: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
    resources(t).filter(move |(_, r)| r["Type"].as_str() == Some(ty))
}

/// What CloudFormation would make of `v` for a stack named `stack` (a small evaluator of the
/// intrinsic functions the template uses; `!GetAtt` and non-pseudo `!Ref` stay symbolic).
fn eval(v: &Value, stack: &str) -> String {
    let stack_id = format!(
        "arn:aws:cloudformation:us-east-1:123456789012:stack/{stack}/0c8b8f50-5b11-11ef-a1b2-0e4c5c2d9f11"
    );
    let pseudo = |name: &str| -> String {
        match name {
            "AWS::Partition" => "aws".into(),
            "AWS::Region" => "us-east-1".into(),
            "AWS::AccountId" => "123456789012".into(),
            "AWS::StackName" => stack.into(),
            "AWS::StackId" => stack_id.clone(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            other => format!("<{other}>"),
        }
    };
    let sub = |text: &str, vars: &dyn Fn(&str) -> Option<String>| -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let end = rest[i..].find('}').expect("closed ${") + i;
            let name = &rest[i + 2..end];
            out.push_str(&vars(name).unwrap_or_else(|| pseudo(name)));
            rest = &rest[end + 1..];
        }
        out + rest
    };
    let Some((tag, arg)) = tagged(v) else {
        return v
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{v:?}"));
    };
    match tag.as_str() {
        "Ref" => pseudo(arg.as_str().expect("!Ref name")),
        "GetAtt" => format!("<{}>", arg.as_str().unwrap_or("?")),
        "Sub" => match arg {
            Value::String(text) => sub(text, &|_| None),
            Value::Sequence(parts) => {
                let vars = parts[1].clone();
                sub(parts[0].as_str().expect("!Sub text"), &|name| {
                    vars.get(name).map(|x| eval(x, stack))
                })
            }
            other => panic!("!Sub {other:?}"),
        },
        "Select" => {
            let parts = arg.as_sequence().expect("!Select [i, list]");
            let i = parts[0].as_u64().expect("index") as usize;
            let list = eval_list(&parts[1], stack);
            list[i].clone()
        }
        "Join" => {
            let parts = arg.as_sequence().expect("!Join [sep, list]");
            let items: Vec<String> = parts[1]
                .as_sequence()
                .expect("list")
                .iter()
                .map(|x| eval(x, stack))
                .collect();
            items.join(parts[0].as_str().expect("separator"))
        }
        other => panic!("the test's evaluator does not know !{other}"),
    }
}

fn eval_list(v: &Value, stack: &str) -> Vec<String> {
    match tagged(v) {
        Some((tag, arg)) if tag == "Split" => {
            let parts = arg.as_sequence().expect("!Split [sep, text]");
            let text = eval(&parts[1], stack);
            text.split(parts[0].as_str().expect("separator"))
                .map(str::to_owned)
                .collect()
        }
        _ => v
            .as_sequence()
            .expect("a list")
            .iter()
            .map(|x| eval(x, stack))
            .collect(),
    }
}

/// The backticked names in the first column of the README table whose header starts with
/// `| {header} |`.
fn table_names(readme: &str, header: &str) -> BTreeSet<String> {
    let start = readme
        .find(&format!("| {header} |"))
        .unwrap_or_else(|| panic!("README has no table headed {header:?}"));
    readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(1))
        .filter_map(|cell| cell.trim().split('`').nth(1).map(str::to_owned))
        .collect()
}

/// Every `(METHOD, path)` of the functions' `Api` events.
fn api_routes(t: &Value) -> Vec<(String, String)> {
    of_type(t, "AWS::Serverless::Function")
        .flat_map(|(_, f)| {
            f["Properties"]["Events"]
                .as_mapping()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|(_, e)| e["Type"].as_str() == Some("Api"))
        .map(|(_, e)| {
            let p = &e["Properties"];
            (
                p["Method"].as_str().unwrap().to_uppercase(),
                p["Path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn route_matches(route: &str, path: &str) -> bool {
    let (r, p): (Vec<_>, Vec<_>) = (route.split('/').collect(), path.split('/').collect());
    r.len() == p.len()
        && r.iter()
            .zip(&p)
            .all(|(a, b)| a == b || (a.starts_with('{') && !b.is_empty()))
}

// ------------------------------------------------------------------ item 4: the README

#[test]
fn the_readme_names_every_parameter_and_output_of_the_template_and_nothing_else() {
    let (t, readme) = (template(), readme());
    assert_eq!(
        table_names(&readme, "Parameter"),
        keys(&t["Parameters"]),
        "README's parameter table vs template.yaml Parameters"
    );
    assert_eq!(
        table_names(&readme, "Output"),
        keys(&t["Outputs"]),
        "README's output table vs template.yaml Outputs"
    );
    // Any other `CamelCase` name the README gives as a parameter must exist too (the old
    // README said `PipelineArnPattern`).
    for word in ["PipelineArnPattern", "PipelineArn"] {
        assert!(
            !readme.contains(word),
            "README names {word}, not a parameter"
        );
    }
}

#[test]
fn every_export_the_readme_imports_is_exported() {
    let (t, readme) = (template(), readme());
    let samconfig = read("samconfig.toml");
    let stack = samconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("stack_name = "))
        .expect("samconfig.toml names the stack")
        .trim_matches('"')
        .to_owned();
    let exports: BTreeSet<String> = t["Outputs"]
        .as_mapping()
        .unwrap()
        .values()
        .filter_map(|o| o.get("Export").map(|e| eval(&e["Name"], &stack)))
        .collect();
    let imports: Vec<&str> = readme
        .split("!ImportValue ")
        .skip(1)
        .map(|rest| rest.split_whitespace().next().unwrap())
        .collect();
    assert!(
        !imports.is_empty(),
        "the README's health gate imports the gate's export"
    );
    for name in imports {
        assert!(
            exports.contains(name),
            "!ImportValue {name}: exports are {exports:?}"
        );
    }
    // The Export column of the outputs table, with <stack> for the stack name.
    for line in readme.lines().filter(|l| l.contains("`<stack>-")) {
        let name = line.split('`').find(|c| c.starts_with("<stack>-")).unwrap();
        let name = name.replace("<stack>", &stack);
        assert!(exports.contains(&name), "{name}: exports are {exports:?}");
    }
}

#[test]
fn every_api_url_and_route_in_the_readme_exists() {
    let (t, readme) = (template(), readme());
    let stage = t["Resources"]["ReleaseApi"]["Properties"]["StageName"]
        .as_str()
        .unwrap();
    let routes = api_routes(&t);
    let mut urls = 0;
    for (i, _) in readme.match_indices(".amazonaws.com/") {
        let rest = &readme[i + ".amazonaws.com/".len()..];
        let url_path: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && !"`\"'),".contains(*c))
            .collect();
        let (url_stage, path) = url_path.split_once('/').unwrap_or((&url_path, ""));
        assert_eq!(
            url_stage, stage,
            "README URL .../{url_path}: the stage is {stage}"
        );
        if !path.is_empty() {
            let path = format!("/{path}");
            assert!(
                routes.iter().any(|(_, r)| route_matches(r, &path)),
                "README URL path {path} is not an API route: {routes:?}"
            );
        }
        urls += 1;
    }
    assert!(urls >= 3, "the README shows the API's URLs");
    // `POST /releases`, `GET /releases/{id}`: method and path.
    for method in ["GET", "POST", "PUT", "DELETE"] {
        for (i, _) in readme.match_indices(&format!("`{method} /")) {
            let path: String = readme[i + method.len() + 2..]
                .chars()
                .take_while(|c| *c != '`' && !c.is_whitespace())
                .collect();
            assert!(
                routes
                    .iter()
                    .any(|(m, r)| m == method && route_matches(r, &path)),
                "README names {method} {path}; routes: {routes:?}"
            );
        }
    }
}

#[test]
fn the_checkov_skips_are_the_ones_the_readme_lists_each_with_a_reason() {
    let (t, readme) = (template(), readme());
    let mut skipped = BTreeSet::new();
    for (id, r) in resources(&t) {
        for skip in r["Metadata"]["checkov"]["skip"]
            .as_sequence()
            .cloned()
            .unwrap_or_default()
        {
            let check = skip["id"].as_str().expect("skip id").to_owned();
            let reason = skip["comment"].as_str().unwrap_or_default();
            assert!(reason.len() > 20, "{id}: skip of {check} without a reason");
            skipped.insert(check);
        }
    }
    assert!(!skipped.is_empty());
    assert_eq!(
        table_names(&readme, "Check"),
        skipped,
        "README's checkov table"
    );
}

// ------------------------------------------------------------------ the template's promises

#[test]
fn every_function_runs_on_the_architecture_parameter() {
    let t = template();
    let p = &t["Parameters"]["Architecture"];
    assert_eq!(p["Default"].as_str(), Some("arm64"));
    let allowed: Vec<&str> = p["AllowedValues"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(allowed, ["arm64", "x86_64"]);
    let global = &t["Globals"]["Function"]["Architectures"];
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        let own = &f["Properties"]["Architectures"];
        let archs = if own.is_null() { global } else { own };
        let archs = archs
            .as_sequence()
            .unwrap_or_else(|| panic!("{id}: Architectures"));
        assert_eq!(archs.len(), 1, "{id}");
        assert_eq!(
            eval(&archs[0], "s"),
            "<Architecture>",
            "{id}: !Ref Architecture"
        );
    }
}

#[test]
fn function_logs_go_to_log_groups_created_before_them() {
    let t = template();
    let groups: BTreeSet<&str> = of_type(&t, "AWS::Logs::LogGroup")
        .map(|(id, _)| id)
        .collect();
    let functions: Vec<&str> = of_type(&t, "AWS::Serverless::Function")
        .map(|(id, _)| id)
        .collect();
    assert!(functions.len() >= 6);
    for id in &functions {
        let f = &t["Resources"][*id];
        let group = &f["Properties"]["LoggingConfig"]["LogGroup"];
        let (tag, arg) = tagged(group).unwrap_or_else(|| panic!("{id}: LoggingConfig.LogGroup"));
        assert_eq!(tag, "Ref", "{id}");
        assert!(
            groups.contains(arg.as_str().unwrap()),
            "{id}: {arg:?} is not a log group"
        );
    }
    // No log group named after a function: it would race with Lambda creating it.
    for (id, g) in of_type(&t, "AWS::Logs::LogGroup") {
        let name = format!("{:?}", g["Properties"]["LogGroupName"]);
        for f in &functions {
            assert!(
                !name.contains(&format!("${{{f}}}")),
                "{id} is named after {f}"
            );
        }
    }
}

#[test]
fn the_state_machine_name_fits_80_characters_for_any_stack_name() {
    let t = template();
    let sm = &t["Resources"]["ReleaseStateMachine"]["Properties"];
    let longest = "s".repeat(128); // CloudFormation's stack name limit
    for stack in ["r", "release-machine", longest.as_str()] {
        let name = eval(&sm["Name"], stack);
        assert!(name.len() <= 80, "{stack}: {name} ({} chars)", name.len());
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{name}"
        );
        // Every state machine ARN the functions are given names the same machine.
        let arn_suffix = format!(":stateMachine:{name}");
        let exec_suffix = format!(":execution:{name}:*");
        let mut arns = 0;
        for (id, f) in of_type(&t, "AWS::Serverless::Function") {
            let p = &f["Properties"];
            if let Some(env) = p["Environment"]["Variables"].get("STATE_MACHINE_ARN") {
                assert!(eval(env, stack).ends_with(&arn_suffix), "{id}");
                arns += 1;
            }
            for st in statements(p) {
                let r = eval(&st["Resource"], stack);
                if r.contains(":states:") {
                    assert!(
                        r.ends_with(&arn_suffix) || r.ends_with(&exec_suffix),
                        "{id}: {r}"
                    );
                    arns += 1;
                }
            }
        }
        assert!(arns >= 5);
    }
}

fn statements(props: &Value) -> Vec<Value> {
    props["Policies"]
        .as_sequence()
        .cloned()
        .unwrap_or_default()
        .iter()
        .flat_map(|p| p["Statement"].as_sequence().cloned().unwrap_or_default())
        .collect()
}

fn actions(st: &Value) -> Vec<String> {
    match &st["Action"] {
        Value::String(a) => vec![a.clone()],
        Value::Sequence(v) => v.iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
        _ => vec![],
    }
}

#[test]
fn execution_actions_are_granted_on_execution_arns() {
    let t = template();
    let mut granted: Vec<(String, String)> = Vec::new();
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        for st in statements(&f["Properties"]) {
            for a in actions(&st) {
                if a == "states:DescribeExecution" || a == "states:StopExecution" {
                    let r = eval(&st["Resource"], "release-machine");
                    assert!(
                        r.starts_with("arn:aws:states:us-east-1:123456789012:execution:")
                            && r.ends_with(":*"),
                        "{id}: {a} on {r}"
                    );
                    granted.push((id.to_owned(), a));
                }
            }
        }
    }
    for (f, a) in [
        ("ReleaseApiFunction", "states:DescribeExecution"),
        ("ReleaseApiFunction", "states:StopExecution"),
        ("PollExecutionFunction", "states:DescribeExecution"),
        ("RecordStateFunction", "states:DescribeExecution"),
    ] {
        assert!(
            granted.contains(&(f.into(), a.into())),
            "{f} lacks {a}: {granted:?}"
        );
    }
}

#[test]
fn undelivered_events_land_in_encrypted_queues_with_an_alarm_each() {
    let t = template();
    let rules = [
        ("ReleaseStateMachine", "ManifestUploaded"),
        ("RecordStateFunction", "PipelineStateChange"),
    ];
    for (resource, event) in rules {
        let e = &t["Resources"][resource]["Properties"]["Events"][event];
        assert_eq!(
            e["Type"].as_str(),
            Some("EventBridgeRule"),
            "{resource}.{event}"
        );
        let arn = eval(&e["Properties"]["DeadLetterConfig"]["Arn"], "s");
        let queue = arn
            .strip_prefix('<')
            .and_then(|a| a.strip_suffix(".Arn>"))
            .unwrap_or_else(|| panic!("{resource}.{event}: DeadLetterConfig.Arn is {arn}"));
        let q = &t["Resources"][queue];
        assert_eq!(q["Type"].as_str(), Some("AWS::SQS::Queue"), "{queue}");
        let qp = &q["Properties"];
        assert!(
            qp["SqsManagedSseEnabled"].as_bool() == Some(true) || !qp["KmsMasterKeyId"].is_null(),
            "{queue} is not encrypted"
        );
        let alarmed = of_type(&t, "AWS::CloudWatch::Alarm").any(|(_, a)| {
            let p = &a["Properties"];
            p["Namespace"].as_str() == Some("AWS/SQS")
                && p["MetricName"].as_str() == Some("ApproximateNumberOfMessagesVisible")
                && p["Dimensions"].as_sequence().is_some_and(|d| {
                    d.iter()
                        .any(|d| eval(&d["Value"], "s") == format!("<{queue}.QueueName>"))
                })
        });
        assert!(alarmed, "no alarm on the depth of {queue}");
        // EventBridge may send to it, for this rule only.
        let allowed = of_type(&t, "AWS::SQS::QueuePolicy").any(|(_, p)| {
            p["Properties"]["PolicyDocument"]["Statement"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|st| {
                    eval(&st["Resource"], "s") == format!("<{queue}.Arn>")
                        && eval(&st["Condition"]["ArnEquals"]["aws:SourceArn"], "s")
                            == format!("<{resource}{event}.Arn>")
                })
        });
        assert!(
            allowed,
            "no queue policy lets {resource}{event} send to {queue}"
        );
    }
}

#[test]
fn security_defaults_name_the_pipelines_and_the_uploaders() {
    let t = template();
    let p = &t["Parameters"];
    assert!(
        p["PipelineNamePattern"].get("Default").is_none(),
        "PipelineNamePattern must have no default"
    );
    assert_eq!(
        p["ManifestUploaderArns"]["Type"].as_str(),
        Some("CommaDelimitedList")
    );
    assert!(p["ManifestUploaderArns"].get("Default").is_none());
    let policy = &t["Resources"]["ManifestBucketPolicy"]["Properties"]["PolicyDocument"];
    let limited = policy["Statement"].as_sequence().unwrap().iter().any(|st| {
        st["Effect"].as_str() == Some("Deny")
            && actions(st).contains(&"s3:PutObject".to_owned())
            && eval(&st["Condition"]["ArnNotLike"]["aws:PrincipalArn"], "s")
                == "<ManifestUploaderArns>"
    });
    assert!(
        limited,
        "the bucket policy must deny PutObject to all but ManifestUploaderArns"
    );
}

#[test]
fn the_api_writes_access_logs() {
    let t = template();
    let api = &t["Resources"]["ReleaseApi"]["Properties"];
    let dest = eval(&api["AccessLogSetting"]["DestinationArn"], "s");
    let group = dest
        .strip_prefix('<')
        .and_then(|d| d.strip_suffix(".Arn>"))
        .unwrap_or_else(|| panic!("AccessLogSetting.DestinationArn is {dest}"));
    assert_eq!(
        t["Resources"][group]["Type"].as_str(),
        Some("AWS::Logs::LogGroup")
    );
    assert!(api["AccessLogSetting"]["Format"].as_str().is_some());
}

#[test]
fn no_partition_is_hard_coded() {
    let text = read("template.yaml");
    assert!(
        !text.contains("arn:aws:"),
        "template.yaml: use ${{AWS::Partition}}"
    );
}

#[test]
fn the_definition_takes_its_partition_from_the_template() {
    let definition = read("statemachine/release.asl.json");
    assert!(
        !definition.contains("arn:aws:"),
        "release.asl.json: a Task resource comes from DefinitionSubstitutions"
    );
    let t = template();
    let subs = &t["Resources"]["ReleaseStateMachine"]["Properties"]["DefinitionSubstitutions"];
    for (key, resource) in [
        ("LambdaInvoke", "arn:aws:states:::lambda:invoke"),
        (
            "LambdaInvokeWaitForTaskToken",
            "arn:aws:states:::lambda:invoke.waitForTaskToken",
        ),
    ] {
        let value = &subs[key];
        assert_eq!(eval(value, "s"), resource, "{key}");
        let text = format!("{value:?}");
        assert!(text.contains("${AWS::Partition}"), "{key}: {text}");
    }
    // Every ${...} of the definition is substituted.
    let defined = keys(subs);
    let mut rest = definition.as_str();
    while let Some(i) = rest.find("${") {
        let end = rest[i..].find('}').unwrap() + i;
        let name = &rest[i + 2..end];
        assert!(
            defined.contains(name),
            "${{{name}}} is not in DefinitionSubstitutions"
        );
        rest = &rest[end..];
    }
}
