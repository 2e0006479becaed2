//! The SMS channel end to end: notifications on the real broker, the delivery service for
//! `sms` with the Aliyun and the Twilio adapter, and a Python stand-in for each provider's API
//! that verifies requests as the provider documents them (`tests/interop/sms_provider.py`).

use herald_core::Subscription;
use herald_core::topics::TopicNames;
use herald_deliver::channels::sms::{SmsConfig, SmsProvider};
use herald_deliver::testkit::{
    PythonPeer, RunningDeliverer, first_dead_letter, notification, produce_notifications,
    put_subscriptions, test_config, webhook_subscription,
};
use herald_kafka::testkit::TestKafka;

const ALIYUN_SECRET: &str = "aliyun-secret";
const TWILIO_SID: &str = "AC0123456789";
const TWILIO_TOKEN: &str = "twilio-token";

fn sms_subscription(id: &str, phone: &str) -> Subscription {
    let mut sub = webhook_subscription(id, "app-sms", phone);
    sub.channel = "sms".to_owned();
    sub.destination.template_id = Some("SMS_153055065".to_owned());
    sub
}

/// Delivers one notification to `good` and one to `bad` through `provider`; checks that the
/// stand-in verified the good one and that the bad one was dead-lettered with the provider's
/// code.
async fn delivers_and_dead_letters_invalid_numbers(
    provider: SmsProvider,
    good: &str,
    bad: &str,
    bad_code: &str,
) {
    let kafka = TestKafka::new(&format!("sms-{provider:?}").to_lowercase());
    let names = TopicNames::with_prefix(kafka.prefix()).unwrap();
    let mut stand_in = PythonPeer::start(
        "sms_provider.py",
        &[ALIYUN_SECRET, TWILIO_SID, TWILIO_TOKEN],
    )
    .await;
    let port = stand_in.port;

    let mut config = test_config(&kafka, &[200]);
    config.channel = "sms".to_owned();
    config.sms = SmsConfig {
        provider,
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        access_key_id: Some("LTAI-test".to_owned()),
        access_key_secret: Some(ALIYUN_SECRET.to_owned()),
        sign_name: Some("Herald".to_owned()),
        account_sid: Some(TWILIO_SID.to_owned()),
        auth_token: Some(TWILIO_TOKEN.to_owned()),
        from: Some("+15005550006".to_owned()),
    };
    herald_deliver::ensure_topics(&config).await.unwrap();
    let ok = sms_subscription("sub-ok", good);
    let invalid = sms_subscription("sub-invalid", bad);
    put_subscriptions(&kafka, &names, &[ok.clone(), invalid.clone()]);
    let service = RunningDeliverer::start(config).unwrap();
    let ns = [
        notification(&ok, "sms", 1),
        notification(&invalid, "sms", 2),
    ];
    produce_notifications(&kafka, &names, &ns);

    let seen = stand_in.lines(2).await;
    for request in &seen {
        assert_eq!(request["verified"], true, "{request}");
    }
    let to_good = seen
        .iter()
        .find(|r| r["to"] == good)
        .expect("the good number");
    match provider {
        SmsProvider::Aliyun => {
            assert_eq!(to_good["params"]["TemplateCode"], "SMS_153055065");
            assert_eq!(to_good["params"]["OutId"], ns[0].notification_id);
        }
        SmsProvider::Twilio => {
            assert!(
                to_good["params"]["Body"]
                    .as_str()
                    .unwrap()
                    .contains(&ns[0].event_id)
            );
        }
    }

    let letter = first_dead_letter(&kafka, &names, "sms").await;
    assert_eq!(letter.kind, "permanent");
    assert!(letter.error.contains(bad_code), "{}", letter.error);
    assert_eq!(
        letter.notification.unwrap().notification_id,
        ns[1].notification_id
    );
    service.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliyun_sends_signed_template_messages_and_dead_letters_an_illegal_number() {
    delivers_and_dead_letters_invalid_numbers(
        SmsProvider::Aliyun,
        "13800000000",
        "10000",
        "isv.MOBILE_NUMBER_ILLEGAL",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_sends_authenticated_messages_and_dead_letters_an_invalid_number() {
    delivers_and_dead_letters_invalid_numbers(
        SmsProvider::Twilio,
        "+15005550006",
        "+15005550001",
        "21211",
    )
    .await;
}
