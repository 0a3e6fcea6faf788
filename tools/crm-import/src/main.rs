//! `crm-import [--stack NAME] [FILE]` loads an EVI export (`evi-export/1`, default: the demo
//! data) into the mirror tables. With `--stack`, the tables and the bucket are those of the
//! deployed stack of that name (found through CloudFormation with the caller's AWS
//! credentials and region); without it, those the environment names (`TABLE_*`, as the
//! template sets them for the functions). The whole export is validated first: a bad record
//! is reported by entity, key and field, and nothing is written. Every item carries the
//! export's `version` and is written only over an older one: a re-run applies only what is
//! newer than the mirror. The report counts the items written per table.

use anyhow::{Context, bail};
use portal_platform::config::{Config, env_key_of};
use portal_platform::{aws::Clients, import::import_export};
use std::collections::HashMap;

const USAGE: &str = "usage: crm-import [--stack NAME] [FILE]";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut stack, mut path) = (None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--stack" => stack = Some(args.next().context(USAGE)?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ if path.is_none() && !arg.starts_with('-') => path = Some(arg),
            _ => bail!("{USAGE}"),
        }
    }
    let path = path.unwrap_or_else(|| "fixtures/crm-demo.json".to_owned());
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let clients = Clients::from_env().await;
    let from_stack = match &stack {
        Some(name) => stack_environment(name).await?,
        None => HashMap::new(),
    };
    let config = Config::from_lookup(|k| {
        from_stack.get(k).cloned().or_else(|| if stack.is_some() { None } else { std::env::var(k).ok() }).or_else(
            || {
                // The import sends no mail; the sender is part of the functions' configuration.
                (k == "MAIL_FROM").then(|| "crm-import@localhost".to_owned())
            },
        )
    })
    .with_context(|| match &stack {
        Some(name) => format!("stack {name} lacks a resource the import writes to"),
        None => "name the stack with --stack NAME, or set the template's TABLE_* variables".to_owned(),
    })?;
    let report = import_export(&clients, &config, &text).await.with_context(|| path.clone())?;
    for (table, count) in report {
        println!("{count:>6}  {table}");
    }
    Ok(())
}

/// The configuration variables of a deployed stack: each resource's physical id under the
/// variable the template sets from it, and each parameter's value.
async fn stack_environment(stack: &str) -> anyhow::Result<HashMap<String, String>> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(portal_platform::aws::http_client())
        .load()
        .await;
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let mut env = HashMap::new();
    let described = cfn.describe_stacks().stack_name(stack).send().await.with_context(|| format!("stack {stack}"))?;
    for p in described.stacks().iter().flat_map(|s| s.parameters()) {
        if let (Some(k), Some(v)) = (p.parameter_key(), p.parameter_value()) {
            env.insert(env_key_of(k), v.to_owned());
        }
    }
    let mut pages = cfn.list_stack_resources().stack_name(stack).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.with_context(|| format!("resources of stack {stack}"))?;
        for r in page.stack_resource_summaries() {
            if let Some(id) = r.physical_resource_id().filter(|id| !id.is_empty()) {
                env.insert(env_key_of(r.logical_resource_id().unwrap_or_default()), id.to_owned());
            }
        }
    }
    Ok(env)
}
