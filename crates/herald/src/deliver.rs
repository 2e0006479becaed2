//! `herald deliver`: runs a channel's delivery service until SIGINT or SIGTERM, and
//! `herald dlq list | redrive`: looks at and redrives its dead letters.

use anyhow::Context;
use herald_core::topics::{ChannelName, TopicNames};
use herald_deliver::channels::email::SmtpSecurity;
use herald_deliver::channels::http::HttpTemplate;
use herald_deliver::channels::sms::{SmsConfig, SmsProvider};
use herald_deliver::channels::wechat::WechatConfig;
use herald_deliver::secrets::MasterKey;
use herald_deliver::{DeliverConfig, Deliverer, redrive};
use herald_kafka::KafkaConfig;

use crate::subscriptions::Target;

#[derive(Debug, clap::Args)]
pub(crate) struct DeliverArgs {
    #[command(flatten)]
    target: Target,
    /// The channel to deliver: `webhook`, `http`, `email`, `sms`, `wechat`, `slack`, `feishu`, `dingtalk`,
    /// `wecom`.
    #[arg(long, default_value = "webhook")]
    channel: String,
    /// Stable id of this replica, part of its transactional.id and group membership; give
    /// each replica its own and keep it across restarts.
    #[arg(long, env = "HERALD_INSTANCE_ID", default_value = "0")]
    instance_id: String,
    /// Delays before each retry, milliseconds, comma-separated (default: at once, 5 s, 30 s,
    /// 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h).
    #[arg(long, value_delimiter = ',')]
    retry_schedule_ms: Option<Vec<u64>>,
    /// Delays of the retry tier topics, milliseconds, ascending (default: the schedule's).
    #[arg(long, value_delimiter = ',')]
    retry_tiers_ms: Option<Vec<u64>>,
    /// Networks (CIDR) deliveries may reach although they are not public, e.g. 127.0.0.1/32.
    #[arg(long = "allow-network")]
    allow_networks: Vec<String>,
    /// How long one attempt may take, milliseconds.
    #[arg(long, default_value_t = 15_000)]
    timeout_ms: u64,
    /// Attempts in flight at once over all destinations.
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// Attempts in flight to one destination at once.
    #[arg(long, default_value_t = 16)]
    endpoint_concurrency: usize,
    /// Attempts per second to one destination; 0 for no limit.
    #[arg(long, default_value_t = 0)]
    endpoint_rate_per_sec: u32,
    /// Consecutive retryable failures that open a destination's circuit breaker; while it is
    /// open, its notifications go to the retry tiers without a request.
    #[arg(long, default_value_t = 5)]
    breaker_failures: u32,
    /// How long an open breaker waits before letting a probe through, milliseconds.
    #[arg(long, default_value_t = 30_000)]
    breaker_open_ms: u64,
    /// Records of one partition in flight or waiting to commit, at most.
    #[arg(long, default_value_t = 2000)]
    max_pending: usize,
    /// The master key that decrypts apps' signing secrets (32 bytes, base64).
    #[arg(long, env = "HERALD_MASTER_KEY", hide_env_values = true)]
    master_key: Option<String>,
    /// Partitions of the topics created when missing.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Serves the service's Prometheus metrics at `http://<addr>/metrics`.
    #[arg(long, env = "HERALD_METRICS_ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    smtp: SmtpArgs,
    #[command(flatten)]
    sms: SmsArgs,
    /// The generic http channel's request template (TOML: method, url, headers, body,
    /// signing, rules).
    #[arg(long, env = "HERALD_HTTP_TEMPLATE")]
    http_template: Option<std::path::PathBuf>,
    /// WeChat Official Account AppID (wechat channel).
    #[arg(long, env = "HERALD_WECHAT_APP_ID", default_value = "")]
    wechat_app_id: String,
    /// WeChat Official Account AppSecret.
    #[arg(
        long,
        env = "HERALD_WECHAT_APP_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    wechat_app_secret: String,
    /// The WeChat API's base URL (default: https://api.weixin.qq.com).
    #[arg(long, env = "HERALD_WECHAT_ENDPOINT")]
    wechat_endpoint: Option<String>,
}

/// The SMS channel's provider.
#[derive(Debug, clap::Args)]
struct SmsArgs {
    /// The SMS provider: `aliyun` or `twilio`.
    #[arg(long, env = "HERALD_SMS_PROVIDER", default_value = "aliyun")]
    sms_provider: String,
    /// The provider API's base URL (default: the provider's public one).
    #[arg(long, env = "HERALD_SMS_ENDPOINT")]
    sms_endpoint: Option<String>,
    /// Aliyun AccessKey id.
    #[arg(long, env = "HERALD_ALIYUN_ACCESS_KEY_ID")]
    aliyun_access_key_id: Option<String>,
    /// Aliyun AccessKey secret.
    #[arg(long, env = "HERALD_ALIYUN_ACCESS_KEY_SECRET", hide_env_values = true)]
    aliyun_access_key_secret: Option<String>,
    /// Aliyun SMS signature name.
    #[arg(long, env = "HERALD_ALIYUN_SIGN_NAME")]
    aliyun_sign_name: Option<String>,
    /// Twilio account SID.
    #[arg(long, env = "HERALD_TWILIO_ACCOUNT_SID")]
    twilio_account_sid: Option<String>,
    /// Twilio auth token.
    #[arg(long, env = "HERALD_TWILIO_AUTH_TOKEN", hide_env_values = true)]
    twilio_auth_token: Option<String>,
    /// Twilio sender: a number (E.164) or a messaging service SID (`MG…`).
    #[arg(long, env = "HERALD_SMS_FROM")]
    sms_from: Option<String>,
}

/// The email channel's relay.
#[derive(Debug, clap::Args)]
struct SmtpArgs {
    /// The SMTP relay (email channel).
    #[arg(long, env = "HERALD_SMTP_HOST", default_value = "127.0.0.1")]
    smtp_host: String,
    /// The relay's port.
    #[arg(long, env = "HERALD_SMTP_PORT", default_value_t = 587)]
    smtp_port: u16,
    /// `starttls` (required), `tls` (SMTPS) or `none` (a local relay only).
    #[arg(long, env = "HERALD_SMTP_SECURITY", default_value = "starttls")]
    smtp_security: String,
    /// SMTP AUTH user name.
    #[arg(long, env = "HERALD_SMTP_USERNAME")]
    smtp_username: Option<String>,
    /// SMTP AUTH password.
    #[arg(long, env = "HERALD_SMTP_PASSWORD", hide_env_values = true)]
    smtp_password: Option<String>,
    /// The sender when a subscription names none.
    #[arg(
        long,
        env = "HERALD_EMAIL_FROM",
        default_value = "Herald <herald@localhost>"
    )]
    email_from: String,
}

pub(crate) fn run(args: DeliverArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let mut config = DeliverConfig::new(&args.target.brokers, &args.channel);
    config.topic_prefix = args.target.prefix;
    config.instance_id = args.instance_id;
    if let Some(schedule) = args.retry_schedule_ms {
        config.retry_tiers_ms = args.retry_tiers_ms.unwrap_or_else(|| schedule.clone());
        config.retry_schedule_ms = schedule;
    } else if let Some(tiers) = args.retry_tiers_ms {
        config.retry_tiers_ms = tiers;
    }
    config.webhook.allow_networks = args.allow_networks;
    config.webhook.timeout_ms = args.timeout_ms;
    config.endpoint_concurrency = args.endpoint_concurrency;
    config.max_in_flight = args.max_in_flight;
    config.endpoint_rate_per_sec = args.endpoint_rate_per_sec;
    config.max_pending_per_partition = args.max_pending;
    config.breaker_failures = args.breaker_failures;
    config.breaker_open_ms = args.breaker_open_ms;
    config.partitions = args.partitions;
    config.email.smtp_host = args.smtp.smtp_host;
    config.email.smtp_port = args.smtp.smtp_port;
    config.email.security = match args.smtp.smtp_security.as_str() {
        "starttls" => SmtpSecurity::Starttls,
        "tls" => SmtpSecurity::Tls,
        "none" => SmtpSecurity::None,
        other => anyhow::bail!("--smtp-security {other:?}: use starttls, tls or none"),
    };
    config.email.username = args.smtp.smtp_username;
    config.email.password = args.smtp.smtp_password;
    config.email.from = args.smtp.email_from;
    config.sms = SmsConfig {
        provider: match args.sms.sms_provider.as_str() {
            "aliyun" => SmsProvider::Aliyun,
            "twilio" => SmsProvider::Twilio,
            other => anyhow::bail!("--sms-provider {other:?}: use aliyun or twilio"),
        },
        endpoint: args.sms.sms_endpoint,
        access_key_id: args.sms.aliyun_access_key_id,
        access_key_secret: args.sms.aliyun_access_key_secret,
        sign_name: args.sms.aliyun_sign_name,
        account_sid: args.sms.twilio_account_sid,
        auth_token: args.sms.twilio_auth_token,
        from: args.sms.sms_from,
    };
    if let Some(path) = &args.http_template {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --http-template {}", path.display()))?;
        config.http_template = Some(
            HttpTemplate::from_toml(&text)
                .map_err(|e| anyhow::anyhow!("--http-template {}: {e}", path.display()))?,
        );
    }
    config.wechat = WechatConfig {
        app_id: args.wechat_app_id,
        app_secret: args.wechat_app_secret,
        endpoint: args.wechat_endpoint,
    };
    config.master_key = args
        .master_key
        .as_deref()
        .map(MasterKey::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let deliverer = runtime
        .block_on(Deliverer::build(config))
        .context("starting the delivery service")?;
    if let Some(address) = args.metrics_addr {
        crate::metrics_server::serve(runtime, address, deliverer.metrics_registry().clone())?;
    }
    let stop = crate::stop_on_signal(runtime, Some("stopping: draining attempts in flight"));
    eprintln!(
        "herald deliver --channel {}: running (Ctrl-C to stop)",
        args.channel
    );
    deliverer
        .run_until_stopped(stop, runtime.handle().clone())
        .context("the delivery service stopped on an error")
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum DlqCommand {
    /// Prints the channel's dead letters as JSON lines.
    List {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        select: Select,
    },
    /// Prints the selected dead letters in full (the notification and its payload included).
    Show {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        select: Select,
    },
    /// Writes dead letters back to the channel's topic (attempts reset, ids kept).
    Redrive {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        select: Select,
    },
}

/// Which dead letters: the channel, then every condition given.
#[derive(Debug, clap::Args)]
pub(crate) struct Select {
    /// The channel.
    #[arg(long, default_value = "webhook")]
    channel: String,
    /// Only this notification id.
    #[arg(long)]
    id: Option<String>,
    /// Only dead letters of this reason (`herald-error-kind`: `exhausted`, `permanent`,
    /// `gone`, `subscription_disabled`, `undecodable`, …).
    #[arg(long, visible_alias = "kind")]
    reason: Option<String>,
    /// Only this subscription's.
    #[arg(long)]
    subscription: Option<String>,
    /// Only those dead-lettered at or after this time (RFC 3339).
    #[arg(long, value_parser = crate::parse_time)]
    since: Option<i64>,
}

impl Select {
    fn selection(&self) -> redrive::Selection {
        redrive::Selection {
            notification_id: self.id.clone(),
            kind: self.reason.clone(),
            subscription_id: self.subscription.clone(),
            since_ms: self.since,
        }
    }
}

pub(crate) async fn dlq(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List { target, select } => {
            let (kafka, names, channel) = resolve(&target, &select.channel)?;
            let selection = select.selection();
            for letter in redrive::list(&kafka, &names, &channel)? {
                if !selection.matches(&letter) {
                    continue;
                }
                let notification = letter.notification.as_ref();
                println!(
                    "{}",
                    serde_json::json!({
                        "partition": letter.partition,
                        "offset": letter.offset,
                        "kind": letter.kind,
                        "error": letter.error,
                        "attempts": letter.attempts,
                        "failed_at": letter.failed_at,
                        "notification_id": notification.map(|n| &n.notification_id),
                        "subscription_id": notification.map(|n| &n.subscription_id),
                        "destination": notification.map(|n| &n.destination),
                    })
                );
            }
            Ok(())
        }
        DlqCommand::Show { target, select } => {
            let (kafka, names, channel) = resolve(&target, &select.channel)?;
            let selection = select.selection();
            let mut shown = 0;
            for letter in redrive::list(&kafka, &names, &channel)? {
                if !selection.matches(&letter) {
                    continue;
                }
                shown += 1;
                let notification = letter.notification.as_ref().map(|n| {
                    serde_json::json!({
                        "notification_id": n.notification_id,
                        "event_id": n.event_id,
                        "event_type": n.event_type,
                        "event_source": n.event_source,
                        "event_time": n.event_time,
                        "subscription_id": n.subscription_id,
                        "app_id": n.app_id,
                        "channel": n.channel,
                        "destination": n.destination,
                        "ordering_key": n.ordering_key,
                        "content_type": n.content_type,
                        "payload": serde_json::from_str::<serde_json::Value>(&n.payload)
                            .unwrap_or_else(|_| serde_json::Value::String(n.payload.clone())),
                        "traceparent": n.traceparent,
                    })
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "partition": letter.partition,
                        "offset": letter.offset,
                        "kind": letter.kind,
                        "error": letter.error,
                        "attempts": letter.attempts,
                        "failed_at": letter.failed_at,
                        "notification": notification,
                    }))?
                );
            }
            if shown == 0 {
                anyhow::bail!("no dead letter in {} matches", names.notify_dlq(&channel));
            }
            Ok(())
        }
        DlqCommand::Redrive { target, select } => {
            let (kafka, names, channel) = resolve(&target, &select.channel)?;
            let selection = select.selection();
            let count =
                redrive::redrive(&kafka, &names, &channel, |letter| selection.matches(letter))
                    .await?;
            println!("redriven {count}");
            Ok(())
        }
    }
}

fn resolve(
    target: &Target,
    channel: &str,
) -> anyhow::Result<(KafkaConfig, TopicNames, ChannelName)> {
    Ok((
        KafkaConfig::new(&target.brokers),
        TopicNames::with_prefix(&target.prefix)?,
        ChannelName::parse(channel)?,
    ))
}
