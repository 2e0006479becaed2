//! Rendering, signing and the answer rules of the generic HTTP channel.

use herald_core::retry::AttemptOutcome;

use super::{HttpTemplate, environment, render, sign};

const TEMPLATE: &str = r#"
method = "POST"
url = "https://im.example.com/send?to={{ notification.destination }}"
body = '{"text": {{ (event.type ~ ": " ~ event.data.order_id) | tojson }}}'
[headers]
content-type = "application/json"
x-event = "{{ notification.event_id }}"
[signing]
algorithm = "hmac-sha256"
secret = "k3y"
message = "{{ timestamp }}.{{ body }}"
header = "X-Signature"
query = "sig"
prefix = "sha256="
[rules]
json_pointer = "/code"
success_values = ["0"]
retry_values = ["429"]
retry_after_ms = 5000
"#;

use crate::channels::outcome_kind as kind;

#[test]
fn a_template_renders_the_request_and_signs_it_as_configured() {
    let template = HttpTemplate::from_toml(TEMPLATE).unwrap();
    let env = environment(&template).unwrap();
    let n = crate::testkit::notification(
        &crate::testkit::webhook_subscription("s", "a", "user-42"),
        "http",
        3,
    );
    let rendered = render(&template, &env, &n, 1_796_292_930_123).unwrap();
    assert_eq!(rendered.body, r#"{"text": "order.paid: o-3"}"#);
    let message = format!("1796292930.{}", rendered.body);
    let expected = format!(
        "sha256={}",
        sign(template.signing.as_ref().unwrap(), message.as_bytes())
    );
    // Computed independently: python3 -c 'import hmac,hashlib;
    //   print(hmac.new(b"k3y", b"1796292930.{\"text\": \"order.paid: o-3\"}", hashlib.sha256).hexdigest())'
    assert_eq!(
        expected,
        "sha256=7aa297afb81dc628c77f1897068041884b002a2c1874b31620391bee8627beac"
    );
    assert!(
        rendered
            .headers
            .contains(&("X-Signature".to_owned(), expected.clone()))
    );
    assert!(
        rendered
            .headers
            .contains(&("x-event".to_owned(), n.event_id.clone()))
    );
    let url = url::Url::parse(&rendered.url).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["to"], "user-42");
    assert_eq!(query["sig"], expected);
}

#[test]
fn answers_are_classified_by_the_configured_rules() {
    let template = HttpTemplate::from_toml(TEMPLATE).unwrap();
    let rules = &template.rules;
    let transport = || AttemptOutcome::Delivered;
    let cases = [
        (200, r#"{"code":0}"#, "delivered"),
        (200, r#"{"code":"0"}"#, "delivered"),
        (200, r#"{"code":429}"#, "retry"),
        (200, r#"{"code":40001}"#, "dead-letter"),
        (200, "not json", "dead-letter"),
        (503, "", "retry"),
        (404, "", "dead-letter"),
    ];
    for (status, body, expected) in cases {
        let got = rules.classify(transport(), Some(status), Some(body));
        assert_eq!(kind(&got), expected, "{status} {body}");
    }
    let timeout = AttemptOutcome::Retryable {
        retry_after: None,
        reason: "timed out".into(),
    };
    assert_eq!(kind(&rules.classify(timeout, None, None)), "retry");
    // Without rules: 2xx succeeds, 408/429/5xx retry, the rest dead-letters.
    let plain = HttpTemplate::from_toml(r#"url = "https://x.example/""#).unwrap();
    for (status, expected) in [(204, "delivered"), (429, "retry"), (400, "dead-letter")] {
        assert_eq!(
            kind(&plain.rules.classify(transport(), Some(status), None)),
            expected
        );
    }
}

#[test]
fn mistakes_in_a_template_are_refused_with_the_field() {
    let refused = |text: &str| HttpTemplate::from_toml(text).err().unwrap_or_default();
    assert!(refused("method = \"POST\"").contains("url"));
    assert!(refused("url = \"x\"\nfoo = 1").contains("foo"));
    assert!(refused("url = \"x\"\n[rules]\nretry_status = [\"5xx\"]").contains("5xx"));
    assert!(refused("url = \"x\"\n[rules]\njson_pointer = \"code\"").contains("json_pointer"));
    let no_target =
        "url = \"x\"\n[signing]\nalgorithm = \"hmac-sha256\"\nsecret = \"s\"\nmessage = \"m\"";
    assert!(refused(no_target).contains("header or query"));
    let bad_template = HttpTemplate::from_toml("url = \"{{ notification.id \"").unwrap();
    let error = environment(&bad_template).err().unwrap();
    assert!(error.contains("http.url"), "{error}");
}
