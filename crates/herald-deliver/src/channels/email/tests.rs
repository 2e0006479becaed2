//! Composing messages: recipients, sender, subject and HTML templates, the text part.

use lettre::message::Mailbox;

use super::compose;

fn notification() -> herald_core::Notification {
    let mut n = crate::testkit::notification(
        &crate::testkit::webhook_subscription("sub-mail", "app-1", "ops@example.com"),
        "mail",
        1,
    );
    n.payload = r#"{"type":"order.paid","data":{"order_id":"o-1","note":"<b>big</b>"}}"#.into();
    n.content_type = "application/json".into();
    n
}

fn formatted(message: &lettre::Message) -> String {
    String::from_utf8(message.formatted()).unwrap()
}

#[test]
fn a_message_has_the_sender_subject_id_and_both_parts() {
    let from: Mailbox = "Herald <herald@example.com>".parse().unwrap();
    let n = notification();
    let message = compose(
        &n,
        &from,
        None,
        Some("Order {{ event.data.order_id }} paid"),
        Some("<p>{{ event.data.note }}</p>"),
    )
    .unwrap();
    let text = formatted(&message);
    assert!(text.contains("From: Herald <herald@example.com>"), "{text}");
    assert!(text.contains("To: ops@example.com"), "{text}");
    assert!(text.contains("Subject: Order o-1 paid"), "{text}");
    assert!(
        text.contains(&format!("Message-ID: <{}@example.com>", n.notification_id)),
        "{text}"
    );
    assert!(text.contains("multipart/alternative"), "{text}");
    // The HTML template escapes the event's text.
    assert!(text.contains("<p>&lt;b&gt;big&lt;"), "{text}");
}

#[test]
fn bad_addresses_and_templates_are_refused_with_the_reason() {
    let from: Mailbox = "herald@example.com".parse().unwrap();
    let mut n = notification();
    let bad_sender = compose(&n, &from, Some("not an address"), None, None).unwrap_err();
    assert!(bad_sender.contains("sender"), "{bad_sender}");
    let bad_template = compose(&n, &from, None, Some("{{ event.data.order_id "), None).unwrap_err();
    assert!(bad_template.contains("subject template"), "{bad_template}");
    n.destination = "nobody".into();
    let bad_recipient = compose(&n, &from, None, None, None).unwrap_err();
    assert!(
        bad_recipient.contains("not an email address"),
        "{bad_recipient}"
    );
}
