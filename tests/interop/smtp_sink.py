"""A real SMTP server (aiosmtpd) for Herald's email channel tests: it receives messages on
127.0.0.1, parses each with Python's `email` package and prints what it found.

usage: smtp_sink.py
Prints `listening <port>`, then one JSON line per accepted message:
{"mail_from", "rcpt_tos", "from", "to", "subject", "message_id", "notification_id",
 "text", "html", "content_type"}.
Recipients decide the answer: `tempfail@…` gets 451 (try again later) on its first try and
is accepted on the next; `reject@…` always gets 550 (no such user).
"""

import json
import socket
import sys
import threading
import time
from email import message_from_bytes
from email.policy import default

from aiosmtpd.controller import Controller

PRINT_LOCK = threading.Lock()
TEMPFAILED = set()


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local == "reject":
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=default)
        notification_id = message["X-Herald-Notification-Id"]
        if any(r.startswith("tempfail@") for r in envelope.rcpt_tos) and notification_id not in TEMPFAILED:
            TEMPFAILED.add(notification_id)
            return "451 4.3.0 Mailbox busy, try again later"
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        line = json.dumps({
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "message_id": str(message["Message-ID"]),
            "notification_id": notification_id,
            "content_type": message.get_content_type(),
            "text": text.get_content() if text else None,
            "html": html.get_content() if html else None,
        })
        with PRINT_LOCK:
            print(line, flush=True)
        return "250 Message accepted for delivery"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


port = free_port()
controller = Controller(Handler(), hostname="127.0.0.1", port=port)
controller.start()
print(f"listening {port}", flush=True)
while True:
    time.sleep(3600)
