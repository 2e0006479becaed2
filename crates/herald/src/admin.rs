//! `herald admin`: the admin API (and console) until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use herald_admin::AdminConfig;
use herald_deliver::secrets::MasterKey;

use crate::schemas::Strategy;

#[derive(Debug, clap::Args)]
pub(crate) struct AdminArgs {
    #[command(flatten)]
    endpoints: crate::Endpoints,
    /// Prefix of Herald's topics.
    #[arg(long, env = "HERALD_PREFIX", default_value = "herald")]
    prefix: String,
    /// Where the API and console listen.
    #[arg(long, env = "HERALD_ADMIN_LISTEN", default_value = "127.0.0.1:8070")]
    listen: std::net::SocketAddr,
    /// The platform operators' bearer token.
    #[arg(long, env = "HERALD_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: String,
    /// The master key that encrypts signing secrets (32 bytes, base64).
    #[arg(long, env = "HERALD_MASTER_KEY", hide_env_values = true)]
    master_key: String,
    /// The schema catalogue folder.
    #[arg(long, default_value = "schemas")]
    schemas: PathBuf,
    /// Subject naming of the event schemas in the registry (for event ingest).
    #[arg(long, value_enum, default_value_t = Strategy::Topic)]
    strategy: Strategy,
    /// SQLite file of the delivery log; in memory, rebuilt from herald.attempts at each start,
    /// when unset.
    #[arg(long, env = "HERALD_ADMIN_DATABASE")]
    database: Option<PathBuf>,
    /// How long attempts stay in the delivery log, hours.
    #[arg(long, default_value_t = 168)]
    log_retention_hours: u64,
    /// Networks (CIDR) test sends may reach although they are not public.
    #[arg(long = "allow-network")]
    allow_networks: Vec<String>,
}

pub(crate) fn run(args: AdminArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    if args.operator_token.len() < 16 {
        anyhow::bail!("--operator-token must be at least 16 characters");
    }
    let key = MasterKey::parse(&args.master_key).map_err(anyhow::Error::msg)?;
    let mut config = AdminConfig::new(&args.endpoints.brokers, key, args.operator_token);
    config.topic_prefix = args.prefix;
    config.listen = args.listen;
    config.registry = Some(args.endpoints.registry);
    config.schemas = Some(args.schemas);
    config.strategy = args.strategy.into();
    config.database = args.database;
    config.log_retention = Duration::from_secs(args.log_retention_hours * 3600);
    config.webhook.allow_networks = args.allow_networks;
    let stop = crate::stop_on_signal(runtime, None);
    runtime.block_on(async move {
        let (bound, address) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(herald_admin::serve(config, stop, bound));
        if let Ok(address) = address.await {
            eprintln!("herald admin: API on http://{address}/v1, document at http://{address}/openapi.json (Ctrl-C to stop)");
        }
        server.await?.map_err(anyhow::Error::from)
    })
}
