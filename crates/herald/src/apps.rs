//! `herald apps create`: registers an app in the compacted topic `herald.apps`, with a new
//! Standard Webhooks signing secret encrypted under the master key. The secret is printed
//! once, at creation, and never again.

use anyhow::Context;
use herald_contract::RecordCodec;
use herald_core::app::App;
use herald_core::topics::TopicNames;
use herald_deliver::secrets::{MasterKey, generate_whsec};
use herald_kafka::{Admin, KafkaConfig, RecordProducer, TopicSpec};

use crate::subscriptions::Target;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AppsCommand {
    /// Creates (or replaces) an app with a new signing secret and a new API key; prints the
    /// app, the secret and the key (shown this once; only their hash or ciphertext is stored).
    Create {
        #[command(flatten)]
        target: Target,
        /// The app id.
        #[arg(long)]
        id: String,
        /// A human-readable name.
        #[arg(long)]
        name: Option<String>,
        /// The tenant that owns the app.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// The master key that encrypts the secret (32 bytes, base64).
        #[arg(long, env = "HERALD_MASTER_KEY", hide_env_values = true)]
        master_key: String,
    },
}

pub(crate) async fn run(command: AppsCommand) -> anyhow::Result<()> {
    let AppsCommand::Create {
        target,
        id,
        name,
        tenant,
        master_key,
    } = command;
    let key = MasterKey::parse(&master_key).map_err(anyhow::Error::msg)?;
    let names = TopicNames::with_prefix(&target.prefix)?;
    let kafka = KafkaConfig::new(&target.brokers);
    Admin::new(&kafka)?
        .ensure_topics(&[TopicSpec::new(names.apps(), 1).config("cleanup.policy", "compact")])
        .await?;
    let secret = generate_whsec();
    let now = herald_core::time::now_ms();
    let (api_key, api_key_hash) = herald_deliver::inbox::auth::generate_api_key(now);
    let app = App {
        app_id: id.clone(),
        owner_tenant: tenant,
        tenant_scope: None,
        name: name.unwrap_or_else(|| id.clone()),
        api_key_hashes: vec![api_key_hash],
        signing_secrets: vec![key.encrypt("s1", &secret, now, None)],
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let value = RecordCodec::builtin("dev.herald.App").encode(&app)?;
    RecordProducer::new(&kafka)?
        .send(&names.apps(), Some(id.as_bytes()), Some(&value), &[])
        .await
        .context("writing the app")?;
    println!(
        "{}",
        serde_json::json!({"app_id": app.app_id, "name": app.name, "owner_tenant": app.owner_tenant, "signing_secret": secret, "api_key": api_key})
    );
    Ok(())
}
