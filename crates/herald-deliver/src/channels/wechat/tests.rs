//! Template message bodies and WeChat's reply codes.

use herald_core::retry::AttemptOutcome;
use serde_json::{Value, json};

use super::{classify, message};

use crate::channels::outcome_kind as kind;

#[test]
fn reply_codes_are_classified() {
    for (body, expected) in [
        (r#"{"errcode":0,"errmsg":"ok","msgid":1}"#, "delivered"),
        (
            r#"{"errcode":45009,"errmsg":"reach max api daily quota limit"}"#,
            "retry",
        ),
        (r#"{"errcode":-1,"errmsg":"system error"}"#, "retry"),
        (
            r#"{"errcode":42001,"errmsg":"access_token expired"}"#,
            "retry",
        ),
        (
            r#"{"errcode":43004,"errmsg":"require subscribe"}"#,
            "dead-letter",
        ),
        (
            r#"{"errcode":40003,"errmsg":"invalid openid"}"#,
            "dead-letter",
        ),
        (
            r#"{"errcode":40037,"errmsg":"invalid template_id"}"#,
            "dead-letter",
        ),
        ("<html/>", "dead-letter"),
    ] {
        assert_eq!(
            kind(&classify(AttemptOutcome::Delivered, Some(body))),
            expected,
            "{body}"
        );
    }
}

#[test]
fn the_body_names_the_follower_template_and_fields_as_values() {
    let mut n = crate::testkit::notification(
        &crate::testkit::webhook_subscription("s", "a", "oFollower123"),
        "wx",
        7,
    );
    n.payload = r#"{"type":"order.paid","data":{"order_id":"o-7","amount":"9.90","paid":true,"items":[1]}}"#.into();
    let body: Value = serde_json::from_slice(
        &message(&n, Some("TPL-1"), Some("https://shop.example/o/7")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        body,
        json!({
            "touser": "oFollower123",
            "template_id": "TPL-1",
            "url": "https://shop.example/o/7",
            "data": {"order_id": {"value": "o-7"}, "amount": {"value": "9.90"}, "paid": {"value": "true"}},
        })
    );
    assert!(
        message(&n, None, None)
            .unwrap_err()
            .contains("--template-id")
    );
    n.payload = "plain text".into();
    assert!(
        message(&n, Some("TPL-1"), None)
            .unwrap_err()
            .contains("not JSON")
    );
}
