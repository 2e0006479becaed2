//! `--config herald.toml`: one TOML file for every service, with `HERALD__SECTION__KEY`
//! environment variables over it (figment merges and reports errors with the key and where it
//! came from). `deploy/herald.example.toml` documents every setting.
//!
//! - `[kafka]`: `brokers`, `client_id`, and `[kafka.librdkafka]`, librdkafka properties passed
//!   through to every client (TLS, SASL: `security.protocol`, `sasl.password`, …).
//! - one section per command, named as the command (`[router]`, `[deliver]`, `[admin]`,
//!   `[inbox]`, `[topics.apply]`, …), whose keys are the command's flags with `_` for `-`:
//!   `[router] max_batch = 5000` is `herald router --max-batch 5000`.
//!
//! Flags given on the command line win over the file and the environment. A key that is not a
//! flag of its command is refused, naming the section and the key; a value the flag refuses is
//! refused by the flag's own check. Values are never printed: they may be secrets.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use anyhow::bail;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Value};

/// The `[kafka]` section.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KafkaSection {
    brokers: Option<String>,
    client_id: Option<String>,
    #[serde(default)]
    librdkafka: BTreeMap<String, String>,
}

/// The file (if any) and the `HERALD__` variables, merged.
fn load(path: Option<&Path>) -> anyhow::Result<Dict> {
    let mut figment = Figment::new();
    if let Some(path) = path {
        if !path.exists() {
            bail!("the configuration file {} does not exist", path.display());
        }
        figment = figment.merge(Toml::file(path));
    }
    figment = figment.merge(Env::prefixed("HERALD__").split("__"));
    figment
        .extract::<Dict>()
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))
}

/// The flag `--<key>` spelled from a section key.
fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// The words a setting adds to the command line: `--key value`, `--key` for `true`, nothing
/// for `false`, the flag once per item for a list.
fn words(key: &str, value: &Value, at: &str) -> anyhow::Result<Vec<OsString>> {
    let scalar = |value: &Value| -> anyhow::Result<String> {
        match value {
            Value::String(_, s) => Ok(s.clone()),
            Value::Num(_, n) => Ok(n
                .to_u128()
                .map(|u| u.to_string())
                .or_else(|| n.to_i128().map(|i| i.to_string()))
                .or_else(|| n.to_f64().map(|f| f.to_string()))
                .unwrap_or_default()),
            Value::Char(_, c) => Ok(c.to_string()),
            _ => bail!("{at}: expected a string, a number, a boolean or a list of them"),
        }
    };
    Ok(match value {
        Value::Bool(_, true) => vec![flag(key).into()],
        Value::Bool(_, false) => Vec::new(),
        Value::Array(_, items) => items
            .iter()
            .map(|item| Ok([flag(key).into(), scalar(item)?.into()]))
            .collect::<anyhow::Result<Vec<[OsString; 2]>>>()?
            .into_iter()
            .flatten()
            .collect(),
        other => vec![flag(key).into(), scalar(other)?.into()],
    })
}

/// The command line with the configuration's settings for the chosen command inserted after
/// the command's name, except those the command line already gives. `command` is the clap
/// definition, to find the subcommand and know its flags.
pub(crate) fn apply(
    args: Vec<OsString>,
    path: Option<&Path>,
    command: &clap::Command,
) -> anyhow::Result<Vec<OsString>> {
    let config = load(path)?;
    if config.is_empty() {
        return Ok(args);
    }
    let source = path.map_or_else(
        || "the HERALD__ variables".to_owned(),
        |p| format!("{} or the HERALD__ variables", p.display()),
    );
    let kafka: KafkaSection = match config.get("kafka") {
        None => KafkaSection::default(),
        Some(value) => value
            .deserialize()
            .map_err(|e| anyhow::anyhow!("[kafka] in {source}: {e}"))?,
    };
    herald_kafka::config::set_process_defaults(kafka.client_id.clone(), kafka.librdkafka.clone());

    // Find the subcommand path in the arguments: the words that name subcommands.
    let mut position = 1;
    let mut current = command;
    let mut section: Option<&Value> = None;
    let mut section_name = Vec::new();
    let mut dict = Some(&config);
    while let Some(word) = args.get(position).and_then(|w| w.to_str()) {
        if word.starts_with('-') {
            // A global flag before the command (and its value, if it takes one).
            position += if word.contains('=') || word == "--help" || word == "-h" {
                1
            } else {
                2
            };
            continue;
        }
        let Some(sub) = current.find_subcommand(word) else {
            break;
        };
        current = sub;
        section_name.push(word.to_owned());
        section = dict.and_then(|d| d.get(word));
        dict = section.and_then(|s| s.as_dict());
        position += 1;
        if current.get_subcommands().next().is_none() {
            break;
        }
    }
    let given: Vec<String> = args
        .iter()
        .filter_map(|a| a.to_str())
        .filter_map(|a| a.strip_prefix("--"))
        .map(|a| a.split('=').next().unwrap_or(a).to_owned())
        .collect();
    let known: BTreeMap<String, ()> = current
        .get_arguments()
        .filter_map(|a| a.get_long())
        .map(|l| (l.to_owned(), ()))
        .collect();
    let mut inserted: Vec<OsString> = Vec::new();
    if let Some(brokers) = &kafka.brokers
        && known.contains_key("brokers")
        && !given.iter().any(|g| g == "brokers")
    {
        inserted.extend(["--brokers".into(), brokers.into()]);
    }
    let name = section_name.join(".");
    if let Some(settings) = section.and_then(|s| s.as_dict()) {
        for (key, value) in settings {
            if value.as_dict().is_some() && current.find_subcommand(key).is_some() {
                continue; // a nested command's section, e.g. [topics.apply] under [topics]
            }
            let long = key.replace('_', "-");
            if !known.contains_key(&long) {
                let mut settings: Vec<&str> = known.keys().map(String::as_str).collect();
                settings.retain(|s| *s != "help");
                bail!(
                    "[{name}] {key} in {source} is not a setting of `herald {}`; its settings: {}",
                    section_name.join(" "),
                    settings.join(", ")
                );
            }
            if given.contains(&long) {
                continue;
            }
            inserted.extend(words(key, value, &format!("[{name}] {key}"))?);
        }
    }
    let mut out = args;
    let tail = out.split_off(position.min(out.len()));
    out.extend(inserted);
    out.extend(tail);
    Ok(out)
}

/// Where `--config` points, read before clap parses (it decides what clap sees).
pub(crate) fn path_from(args: &[OsString]) -> Option<std::path::PathBuf> {
    let mut words = args.iter().skip(1);
    while let Some(word) = words.next() {
        let word = word.to_str()?;
        if word == "--config" {
            return words.next().map(Into::into);
        }
        if let Some(path) = word.strip_prefix("--config=") {
            return Some(path.into());
        }
    }
    std::env::var_os("HERALD_CONFIG").map(Into::into)
}

/// The commands whose settings the example file documents: the long-running services.
const SERVICES: &[&str] = &["router", "deliver", "inbox", "admin"];

/// A TOML value for an example setting: the default when there is one, else a placeholder.
fn example_value(arg: &clap::Arg) -> String {
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
    if !takes_value {
        return "false".to_owned();
    }
    let many =
        matches!(arg.get_action(), clap::ArgAction::Append) || arg.get_value_delimiter().is_some();
    let quote = |v: &str| match v.parse::<f64>() {
        Ok(_) => v.to_owned(),
        Err(_) => format!("{v:?}"),
    };
    match (defaults.as_slice(), many) {
        ([], true) => "[]".to_owned(),
        ([], false) => "\"\"".to_owned(),
        (values, true) => format!(
            "[{}]",
            values
                .iter()
                .map(|v| quote(v))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ([one, ..], false) => quote(one),
    }
}

/// The example configuration file: every setting of every service, commented out with its
/// default, under its help text. `deploy/herald.example.toml` is this text (a test keeps it so).
pub(crate) fn example(command: &clap::Command) -> String {
    // Built, so that every argument knows how many values it takes.
    let mut command = command.clone();
    command.build();
    let mut out = String::from(
        "# Herald's configuration: `herald --config herald.toml <command>`.\n\
         # Generated by `herald config example`; every setting is shown commented out with its\n\
         # default. Keys are the command's flags with `_` for `-`. Environment variables\n\
         # HERALD__SECTION__KEY override the file (HERALD__ROUTER__MAX_BATCH=5000); flags on the\n\
         # command line override both. Secrets (master_key, operator_token, sasl.password) are\n\
         # better given as environment variables than written here.\n\n\
         [kafka]\n\
         # Bootstrap servers, comma-separated; every command's --brokers.\n\
         # brokers = \"127.0.0.1:9092\"\n\
         # The client.id every Herald client sends.\n\
         # client_id = \"herald\"\n\n\
         # librdkafka properties passed through to every client, for TLS and SASL clusters.\n\
         [kafka.librdkafka]\n\
         # \"security.protocol\" = \"SASL_SSL\"\n\
         # \"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\
         # \"sasl.username\" = \"herald\"\n\
         # \"sasl.password\" = \"…\"   (keep this file readable by Herald only)\n\
         # \"ssl.ca.location\" = \"/etc/ssl/certs/ca.pem\"\n",
    );
    for name in SERVICES {
        let Some(sub) = command.find_subcommand(name) else {
            continue;
        };
        out.push_str(&format!("\n# herald {name}\n[{name}]\n"));
        for arg in sub.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            // Global flags (--config, --log-format, --otlp-endpoint) belong to no one section;
            // --brokers is [kafka] brokers.
            if arg.is_global_set() || matches!(long, "help" | "version" | "brokers") {
                continue;
            }
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            for line in help.lines() {
                out.push_str(&format!("# {line}\n").replace("# \n", "#\n"));
            }
            if let Some(env) = arg.get_env() {
                out.push_str(&format!("# (also ${})\n", env.to_string_lossy()));
            }
            out.push_str(&format!(
                "# {} = {}\n",
                long.replace('-', "_"),
                example_value(arg)
            ));
        }
    }
    out
}
