//! `herald inbox`: the pull inbox's HTTP API until SIGINT or SIGTERM.

use std::time::Duration;

use herald_deliver::inbox::{self, InboxConfig};

#[derive(Debug, clap::Args)]
pub(crate) struct InboxArgs {
    #[command(flatten)]
    target: crate::subscriptions::Target,
    /// Where the API listens.
    #[arg(long, env = "HERALD_INBOX_LISTEN", default_value = "127.0.0.1:8090")]
    listen: std::net::SocketAddr,
    /// How long a message handed out stays hidden unless acknowledged, milliseconds.
    #[arg(long, default_value_t = 30_000)]
    visibility_timeout_ms: u64,
    /// Partitions of the topics created when missing.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
}

pub(crate) fn run(args: InboxArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let mut config = InboxConfig::new(&args.target.brokers);
    config.topic_prefix = args.target.prefix;
    config.listen = args.listen;
    config.visibility_timeout = Duration::from_millis(args.visibility_timeout_ms);
    config.partitions = args.partitions;
    let stop = crate::stop_on_signal(runtime, None);
    runtime.block_on(async move {
        let (bound, address) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(inbox::serve(config, stop, bound));
        if let Ok(address) = address.await {
            eprintln!("herald inbox: listening on http://{address}/v1/inbox (Ctrl-C to stop)");
        }
        server
            .await
            .map_err(anyhow::Error::from)?
            .map_err(anyhow::Error::msg)
    })
}
