//! Signatures, request shapes and error codes of the SMS providers.

use std::collections::BTreeMap;

use herald_core::retry::AttemptOutcome;

use super::{SmsConfig, SmsProvider, aliyun, twilio};

use crate::channels::outcome_kind as kind;

#[test]
fn the_aliyun_signature_matches_one_computed_as_documented() {
    // Computed independently with Python's hmac/hashlib/urllib.parse.quote(safe="-_.~") over
    // the same parameters (percentEncode, sort, "POST&%2F&…", HMAC-SHA1 keyed "secret&").
    let params: BTreeMap<String, String> = [
        ("AccessKeyId", "testid"),
        ("Action", "SendSms"),
        ("Format", "XML"),
        ("PhoneNumbers", "15300000001"),
        ("RegionId", "cn-hangzhou"),
        ("SignName", "阿里云短信测试专用"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", "45e25e9b-0a6f-4070-8c85-2956eda1b466"),
        ("SignatureVersion", "1.0"),
        ("TemplateCode", "SMS_71390007"),
        ("TemplateParam", r#"{"customer":"test"}"#),
        ("Timestamp", "2017-07-12T02:42:19Z"),
        ("Version", "2017-05-25"),
        ("OutId", "123"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(
        aliyun::sign(&params, "testsecret"),
        "ZGMzl3BUSQWysIxwVJlE/Dv+GXI="
    );
}

#[test]
fn aliyun_codes_are_classified() {
    for (code, expected) in [
        ("OK", "delivered"),
        ("isv.BUSINESS_LIMIT_CONTROL", "retry"),
        ("Throttling.User", "retry"),
        ("isv.AMOUNT_NOT_ENOUGH", "retry"),
        ("isp.SYSTEM_ERROR", "retry"),
        ("isv.MOBILE_NUMBER_ILLEGAL", "dead-letter"),
        ("isv.TEMPLATE_MISSING_PARAMETERS", "dead-letter"),
        ("isv.SMS_SIGNATURE_ILLEGAL", "dead-letter"),
        ("SignatureDoesNotMatch", "dead-letter"),
    ] {
        assert_eq!(kind(&aliyun::classify_code(code, "")), expected, "{code}");
    }
    let body = r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"limit"}"#;
    assert!(matches!(
        aliyun::classify(AttemptOutcome::Delivered, Some(body)),
        AttemptOutcome::Retryable {
            retry_after: Some(_),
            ..
        }
    ));
    assert_eq!(
        kind(&aliyun::classify(
            AttemptOutcome::Delivered,
            Some("<html/>")
        )),
        "dead-letter"
    );
}

#[test]
fn twilio_codes_refine_the_http_status() {
    let bad_request = || AttemptOutcome::Permanent {
        reason: "HTTP 400".into(),
    };
    let too_many = || AttemptOutcome::Retryable {
        retry_after: None,
        reason: "HTTP 429".into(),
    };
    let cases = [
        (AttemptOutcome::Delivered, r#"{"sid":"SM1"}"#, "delivered"),
        (
            bad_request(),
            r#"{"code":21211,"message":"invalid To"}"#,
            "dead-letter",
        ),
        (
            bad_request(),
            r#"{"code":21610,"message":"unsubscribed"}"#,
            "dead-letter",
        ),
        (
            too_many(),
            r#"{"code":20429,"message":"Too Many Requests"}"#,
            "retry",
        ),
        (too_many(), "not json", "retry"),
    ];
    for (http, body, expected) in cases {
        assert_eq!(
            kind(&twilio::classify(http, Some(body))),
            expected,
            "{body}"
        );
    }
}

#[test]
fn requests_carry_the_number_template_and_credentials() {
    let mut n = crate::testkit::notification(
        &crate::testkit::webhook_subscription("s", "a", "+8613800000000"),
        "sms",
        1,
    );
    n.payload =
        r#"{"type":"order.paid","data":{"order_id":"o-1","amount":"9.90","items":[1]}}"#.into();
    let config = SmsConfig {
        provider: SmsProvider::Aliyun,
        endpoint: Some("http://127.0.0.1:1".into()),
        access_key_id: Some("id".into()),
        access_key_secret: Some("secret".into()),
        sign_name: Some("Shop".into()),
        ..SmsConfig::default()
    };
    let request = aliyun::request(&config, &n, Some("SMS_1")).unwrap();
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    assert_eq!(form["PhoneNumbers"], "+8613800000000");
    assert_eq!(form["TemplateCode"], "SMS_1");
    assert_eq!(
        form["TemplateParam"],
        r#"{"order_id":"o-1","amount":"9.90"}"#
    );
    assert_eq!(form["OutId"], n.notification_id);
    let mut unsigned = form.clone();
    let signature = unsigned.remove("Signature").unwrap();
    assert_eq!(aliyun::sign(&unsigned, "secret"), signature);
    assert!(
        aliyun::request(&config, &n, None)
            .unwrap_err()
            .contains("--template-id")
    );

    let config = SmsConfig {
        provider: SmsProvider::Twilio,
        account_sid: Some("AC1".into()),
        auth_token: Some("tok".into()),
        from: Some("+15005550006".into()),
        ..SmsConfig::default()
    };
    let request = twilio::request(&config, &n).unwrap();
    assert_eq!(
        request.url,
        "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"
    );
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    assert_eq!(form["To"], "+8613800000000");
    assert_eq!(form["From"], "+15005550006");
    assert!(form["Body"].starts_with("order.paid ("));
    assert_eq!(
        request.headers["authorization"],
        "Basic QUMxOnRvaw==" // base64("AC1:tok")
    );
}
