//! Request shapes, signatures and reply codes of each bot platform.

use std::time::Duration;

use herald_core::retry::AttemptOutcome;
use serde_json::{Value, json};

use super::provider::{MAX_TEXT_BYTES, Provider, dingtalk_sign, feishu_sign, message_text};

use crate::channels::outcome_kind as kind;

#[test]
fn reply_codes_are_classified_per_platform() {
    let cases: &[(Provider, &str, &str)] = &[
        (
            Provider::Feishu,
            r#"{"code":0,"msg":"success"}"#,
            "delivered",
        ),
        (
            Provider::Feishu,
            r#"{"StatusCode":0,"StatusMessage":"success"}"#,
            "delivered",
        ),
        (
            Provider::Feishu,
            r#"{"code":11232,"msg":"frequency limited"}"#,
            "retry",
        ),
        (
            Provider::Feishu,
            r#"{"code":19021,"msg":"sign match fail"}"#,
            "dead-letter",
        ),
        (
            Provider::Feishu,
            r#"{"code":19024,"msg":"Key Words Not Found"}"#,
            "dead-letter",
        ),
        (
            Provider::Feishu,
            r#"{"code":9499,"msg":"Bad Request"}"#,
            "dead-letter",
        ),
        (
            Provider::Feishu,
            r#"{"code":19001,"msg":"param invalid: incoming webhook access token invalid"}"#,
            "gone",
        ),
        (
            Provider::DingTalk,
            r#"{"errcode":0,"errmsg":"ok"}"#,
            "delivered",
        ),
        (
            Provider::DingTalk,
            r#"{"errcode":130101,"errmsg":"send too fast"}"#,
            "retry",
        ),
        (
            Provider::DingTalk,
            r#"{"errcode":-1,"errmsg":"system busy"}"#,
            "retry",
        ),
        (
            Provider::DingTalk,
            r#"{"errcode":310000,"errmsg":"sign not match"}"#,
            "dead-letter",
        ),
        (
            Provider::DingTalk,
            r#"{"errcode":300001,"errmsg":"token is not exist"}"#,
            "gone",
        ),
        (
            Provider::DingTalk,
            r#"{"errcode":400102,"errmsg":"robot stopped"}"#,
            "gone",
        ),
        (
            Provider::WeCom,
            r#"{"errcode":0,"errmsg":"ok"}"#,
            "delivered",
        ),
        (
            Provider::WeCom,
            r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
            "retry",
        ),
        (
            Provider::WeCom,
            r#"{"errcode":-1,"errmsg":"system busy"}"#,
            "retry",
        ),
        (
            Provider::WeCom,
            r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#,
            "gone",
        ),
        (
            Provider::WeCom,
            r#"{"errcode":40008,"errmsg":"invalid message type"}"#,
            "dead-letter",
        ),
        (Provider::WeCom, "<html>not json</html>", "dead-letter"),
        (Provider::Slack, "ok", "delivered"),
    ];
    for (provider, body, expected) in cases {
        let got = provider.classify(AttemptOutcome::Delivered, Some(body));
        assert_eq!(kind(&got), *expected, "{provider:?} {body}: {got:?}");
    }
    // Rate limits wait a minute, as the platforms advise.
    let limited = Provider::DingTalk.classify_code(130101, "send too fast");
    assert!(matches!(
        limited,
        AttemptOutcome::Retryable { retry_after: Some(d), .. } if d == Duration::from_secs(60)
    ));
}

#[test]
fn slack_error_words_refine_the_http_status() {
    let permanent = || AttemptOutcome::Permanent {
        reason: "HTTP 404 Not Found".into(),
    };
    let cases = [
        (permanent(), "no_service", "gone"),
        (permanent(), "channel_not_found", "gone"),
        (permanent(), "invalid_payload", "dead-letter"),
        (
            AttemptOutcome::Gone {
                reason: "HTTP 410".into(),
            },
            "channel_is_archived",
            "gone",
        ),
        (
            AttemptOutcome::Retryable {
                retry_after: None,
                reason: "HTTP 429".into(),
            },
            "rate_limited",
            "retry",
        ),
        (AttemptOutcome::Delivered, "no_text", "dead-letter"),
    ];
    for (http, word, expected) in cases {
        let got = Provider::Slack.classify(http, Some(word));
        assert_eq!(kind(&got), expected, "{word}: {got:?}");
    }
}

#[test]
fn requests_have_each_platforms_shape_and_signature() {
    let now_ms = 1_796_292_930_123;
    let body =
        |r: &super::provider::BotRequest| -> Value { serde_json::from_slice(&r.body).unwrap() };

    let slack = Provider::Slack
        .request("https://hooks.slack.com/services/T/B/X", "hi", None, now_ms)
        .unwrap();
    assert_eq!(body(&slack), json!({"text": "hi"}));

    let wecom = Provider::WeCom
        .request(
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
            "hi",
            None,
            now_ms,
        )
        .unwrap();
    assert_eq!(
        body(&wecom),
        json!({"msgtype": "text", "text": {"content": "hi"}})
    );
    assert!(wecom.url.ends_with("send?key=k"));

    let feishu = Provider::Feishu
        .request(
            "https://open.feishu.cn/open-apis/bot/v2/hook/x",
            "hi",
            Some("s3cret"),
            now_ms,
        )
        .unwrap();
    assert_eq!(
        body(&feishu),
        json!({"msg_type": "text", "content": {"text": "hi"},
               "timestamp": "1796292930", "sign": feishu_sign(1_796_292_930, "s3cret")})
    );

    let ding = Provider::DingTalk
        .request(
            "https://oapi.dingtalk.com/robot/send?access_token=t",
            "hi",
            Some("s3cret"),
            now_ms,
        )
        .unwrap();
    let url = url::Url::parse(&ding.url).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["access_token"], "t");
    assert_eq!(query["timestamp"], now_ms.to_string());
    assert_eq!(query["sign"], dingtalk_sign(now_ms, "s3cret"));
    assert_eq!(
        body(&ding),
        json!({"msgtype": "text", "text": {"content": "hi"}})
    );

    assert!(
        Provider::Slack
            .request("not a url", "hi", None, now_ms)
            .is_err()
    );
}

#[test]
fn signatures_match_values_computed_as_the_platforms_document() {
    // Independent values: python3 -c 'import hmac,hashlib,base64;
    //   print(base64.b64encode(hmac.new(b"1599360473\nsecret", b"", hashlib.sha256).digest()))'
    assert_eq!(
        feishu_sign(1_599_360_473, "secret"),
        "q4jswNiMy51J5JuQV566yJat0/lQ/c+22kINzUgKsGU="
    );
    //   print(base64.b64encode(hmac.new(b"secret", b"1599360473000\nsecret", hashlib.sha256).digest()))
    assert_eq!(
        dingtalk_sign(1_599_360_473_000, "secret"),
        "h/3f4uEADBeKkVuXX2NS1pXSEqARbYb1RV0kmXPBfn0="
    );
}

#[test]
fn long_text_is_cut_at_a_character_boundary() {
    let mut n = crate::testkit::notification(
        &crate::testkit::webhook_subscription("s", "a", "https://example.com/"),
        "text",
        1,
    );
    n.content_type = "text/plain".into();
    n.payload = "订单".repeat(1_000);
    let text = message_text(&n);
    assert!(text.len() <= MAX_TEXT_BYTES && text.ends_with('…'));
    n.payload = "short".into();
    assert_eq!(message_text(&n), "short");
    n.content_type = "application/json".into();
    n.payload = "{}".into();
    assert!(message_text(&n).starts_with("order.paid ("));
}
