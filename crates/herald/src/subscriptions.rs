//! `herald subscriptions create | list | delete`: manages the compacted topic
//! `herald.subscriptions` directly (the admin API does the same over HTTP).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use herald_contract::RecordCodec;
use herald_core::Subscription;
use herald_core::subscription::{Destination, DigestWindow, Ordering, TransformSpec};
use herald_core::topics::TopicNames;
use herald_kafka::{Admin, KafkaConfig, RecordProducer, TopicFollower, TopicSpec};

#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// Kafka bootstrap servers.
    #[arg(long, env = "HERALD_BROKERS", default_value = "127.0.0.1:9092")]
    pub(crate) brokers: String,
    /// Prefix of Herald's topics.
    #[arg(long, env = "HERALD_PREFIX", default_value = "herald")]
    pub(crate) prefix: String,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum SubscriptionsCommand {
    /// Creates a subscription, or replaces the one with the same id (its version goes up).
    /// Prints the subscription as stored, as JSON.
    Create(Box<CreateArgs>),
    /// Prints every subscription as a JSON line, in id order.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Deletes a subscription (a tombstone in the compacted topic).
    Delete {
        #[command(flatten)]
        target: Target,
        /// The subscription id.
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    target: Target,
    /// A whole subscription as JSON (the `dev.herald.Subscription` fields); the flags below
    /// are ignored when it is given.
    #[arg(long)]
    json: Option<String>,
    /// Subscription id; a new random one when unset.
    #[arg(long)]
    id: Option<String>,
    /// The owning app.
    #[arg(long, required_unless_present = "json")]
    app: Option<String>,
    /// Event-type patterns, comma-separated: `order.paid,user.*` or `*`.
    #[arg(long, value_delimiter = ',', required_unless_present = "json")]
    types: Vec<String>,
    /// Tenants whose events match, comma-separated; every tenant when unset.
    #[arg(long, value_delimiter = ',')]
    tenants: Vec<String>,
    /// CEL filter over `event` and `data`, e.g. `data.currency == "CNY"`.
    #[arg(long)]
    filter: Option<String>,
    /// Channel: webhook, email, sms, wechat, feishu, dingtalk, wecom, slack, http or inbox.
    #[arg(long, default_value = "webhook")]
    channel: String,
    /// Destination address: URL, e-mail address, phone number, openid or inbox name.
    #[arg(long, required_unless_present = "json")]
    address: Option<String>,
    /// Provider template id (WeChat, SMS).
    #[arg(long)]
    template_id: Option<String>,
    /// Extra delivery header `Name=value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Payload template (minijinja) over `event` and `data`.
    #[arg(long)]
    template: Option<String>,
    /// Data fields to keep, comma-separated.
    #[arg(long, value_delimiter = ',')]
    fields: Vec<String>,
    /// Retry delays in milliseconds, comma-separated.
    #[arg(long, value_delimiter = ',')]
    retry_schedule_ms: Vec<i64>,
    /// Deliver one at a time per event key.
    #[arg(long)]
    per_key_ordering: bool,
    /// Digest: send once this many notifications are pending (with --digest-max-wait-ms).
    #[arg(long, requires = "digest_max_wait_ms")]
    digest_max_events: Option<i32>,
    /// Digest: send at most this long after the first pending notification.
    #[arg(long, requires = "digest_max_events")]
    digest_max_wait_ms: Option<i64>,
    /// Create it disabled.
    #[arg(long)]
    disabled: bool,
}

pub(crate) async fn run(command: SubscriptionsCommand) -> anyhow::Result<()> {
    match command {
        SubscriptionsCommand::Create(args) => create(*args).await,
        SubscriptionsCommand::List { target } => {
            let current = load(&target).await?;
            for sub in current.values() {
                println!("{}", serde_json::to_string(sub)?);
            }
            Ok(())
        }
        SubscriptionsCommand::Delete { target, id } => {
            let current = load(&target).await?;
            if !current.contains_key(&id) {
                bail!("no subscription {id:?}");
            }
            let (kafka, names) = connect(&target)?;
            RecordProducer::new(&kafka)?
                .send(&names.subscriptions(), Some(id.as_bytes()), None, &[])
                .await
                .context("writing the tombstone")?;
            println!("deleted\t{id}");
            Ok(())
        }
    }
}

fn connect(target: &Target) -> anyhow::Result<(KafkaConfig, TopicNames)> {
    let names = TopicNames::with_prefix(&target.prefix)?;
    Ok((KafkaConfig::new(&target.brokers), names))
}

/// The subscriptions as they stand: the topic read to its end, latest record per id.
async fn load(target: &Target) -> anyhow::Result<BTreeMap<String, Subscription>> {
    let (kafka, names) = connect(target)?;
    let topic = names.subscriptions();
    Admin::new(&kafka)?
        .ensure_topics(&[TopicSpec::new(&topic, 1).config("cleanup.policy", "compact")])
        .await
        .with_context(|| format!("creating {topic} on {}", target.brokers))?;
    let codec = RecordCodec::subscription();
    let mut follower = TopicFollower::open(&kafka, &topic)?;
    let mut current = BTreeMap::new();
    while !follower.caught_up() {
        for record in follower.poll(10_000, Duration::from_millis(200))? {
            let key =
                String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
            match record
                .value
                .as_deref()
                .map(|v| codec.decode::<Subscription>(v))
            {
                None => {
                    current.remove(&key);
                }
                Some(Ok(sub)) => {
                    current.insert(key, sub);
                }
                Some(Err(e)) => eprintln!(
                    "warning: subscription {key:?} at offset {}: {e}",
                    record.offset
                ),
            }
        }
    }
    Ok(current)
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let now = herald_core::time::now_ms();
    let mut sub: Subscription = match &args.json {
        Some(json) => serde_json::from_str(json).context("--json is not a subscription")?,
        None => from_flags(&args, now)?,
    };
    let current = load(&args.target).await?;
    if let Some(existing) = current.get(&sub.subscription_id) {
        sub.created_at = existing.created_at;
        sub.version = existing.version + 1;
    }
    sub.updated_at = now;
    // Refuse what the router would refuse, with the same message, before writing anything.
    let compiled = sub
        .clone()
        .compile()
        .map_err(|e| anyhow::anyhow!("invalid subscription: {e}"))?;
    drop(compiled);
    let (kafka, names) = connect(&args.target)?;
    let bytes = RecordCodec::subscription().encode(&sub)?;
    RecordProducer::new(&kafka)?
        .send(
            &names.subscriptions(),
            Some(sub.subscription_id.as_bytes()),
            Some(&bytes),
            &[],
        )
        .await
        .context("writing the subscription")?;
    println!("{}", serde_json::to_string(&sub)?);
    Ok(())
}

fn from_flags(args: &CreateArgs, now: i64) -> anyhow::Result<Subscription> {
    let headers = args
        .headers
        .iter()
        .map(|h| {
            h.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .with_context(|| format!("--header {h:?} is not Name=value"))
        })
        .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    let transform = (args.template.is_some() || !args.fields.is_empty()).then(|| TransformSpec {
        template: args.template.clone(),
        fields: (!args.fields.is_empty()).then(|| args.fields.clone()),
    });
    Ok(Subscription {
        subscription_id: args
            .id
            .clone()
            .unwrap_or_else(|| format!("sub_{}", uuid::Uuid::new_v4().simple())),
        app_id: args.app.clone().unwrap_or_default(),
        event_types: args.types.clone(),
        tenant_scope: (!args.tenants.is_empty()).then(|| args.tenants.clone()),
        filter: args.filter.clone(),
        channel: args.channel.clone(),
        destination: Destination {
            address: args.address.clone().unwrap_or_default(),
            template_id: args.template_id.clone(),
            headers,
        },
        transform,
        retry_schedule_ms: (!args.retry_schedule_ms.is_empty())
            .then(|| args.retry_schedule_ms.clone()),
        ordering: if args.per_key_ordering {
            Ordering::PerKey
        } else {
            Ordering::None
        },
        digest: match (args.digest_max_events, args.digest_max_wait_ms) {
            (Some(max_events), Some(max_wait_ms)) => Some(DigestWindow {
                max_events,
                max_wait_ms,
            }),
            _ => None,
        },
        enabled: !args.disabled,
        created_at: now,
        updated_at: now,
        version: 1,
    })
}
