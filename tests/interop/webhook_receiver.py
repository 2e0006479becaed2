"""A webhook receiver that verifies Standard Webhooks signatures with the official
`standardwebhooks` library (PyPI), for Herald's delivery tests.

usage: webhook_receiver.py <whsec_ secret>
Prints `listening <port>` once bound to 127.0.0.1, then one JSON line per request:
{"id": webhook-id, "verified": bool, "error": str|null, "body": str}. Answers 204 when the
signature verifies and 401 when it does not.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

WEBHOOK = Webhook(sys.argv[1])
# Requests are handled on threads; one line at a time keeps the output parseable.
PRINT_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            WEBHOOK.verify(body, headers)
            verified, error = True, None
        except Exception as e:  # the library raises WebhookVerificationError
            verified, error = False, repr(e)
        line = json.dumps(
            {"id": headers.get("webhook-id"), "verified": verified, "error": error, "body": body}
        )
        with PRINT_LOCK:
            print(line, flush=True)
        self.send_response(204 if verified else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
