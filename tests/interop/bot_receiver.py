"""A stand-in for Slack, Feishu, DingTalk and WeCom bot endpoints that checks each request the
way the platforms document it, for Herald's bot channel tests. Written from the platforms'
documentation with Python's standard library only, independently of Herald's Rust code.

usage: bot_receiver.py <signing secret>
Prints `listening <port>` once bound to 127.0.0.1, then one JSON line per request:
{"provider", "behaviour", "verified": bool, "error": str|null, "text": str|null}.
Paths are /<provider>/<behaviour>; behaviour `ok` answers success, `gone` answers the
platform's "this bot no longer exists" reply.
"""

import base64
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

SECRET = sys.argv[1]
PRINT_LOCK = threading.Lock()

SUCCESS = {
    "slack": (200, "ok"),
    "feishu": (200, json.dumps({"code": 0, "msg": "success", "data": {}})),
    "dingtalk": (200, json.dumps({"errcode": 0, "errmsg": "ok"})),
    "wecom": (200, json.dumps({"errcode": 0, "errmsg": "ok"})),
}
GONE = {
    "slack": (404, "no_service"),
    "feishu": (200, json.dumps({"code": 19001, "msg": "param invalid: incoming webhook access token invalid"})),
    "dingtalk": (200, json.dumps({"errcode": 300001, "errmsg": "token is not exist"})),
    "wecom": (200, json.dumps({"errcode": 93000, "errmsg": "invalid webhook url"})),
}


def fresh(timestamp_s):
    # Feishu and DingTalk refuse timestamps more than an hour from their clock.
    return abs(time.time() - timestamp_s) < 3600


def check(provider, query, headers, body):
    """Returns the message text, or raises ValueError saying what is wrong."""
    if not headers.get("content-type", "").startswith("application/json"):
        raise ValueError("content-type is not application/json")
    if provider == "slack":
        if set(body) != {"text"} or not isinstance(body["text"], str):
            raise ValueError(f"slack expects {{text}}, got {body}")
        return body["text"]
    if provider == "feishu":
        if body.get("msg_type") != "text" or not isinstance(body.get("content", {}).get("text"), str):
            raise ValueError(f"feishu expects msg_type text and content.text, got {body}")
        timestamp = body["timestamp"]
        key = f"{timestamp}\n{SECRET}".encode()
        expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        if not fresh(int(timestamp)) or body.get("sign") != expected:
            raise ValueError("feishu signature does not verify")
        return body["content"]["text"]
    if provider == "dingtalk":
        if body.get("msgtype") != "text" or not isinstance(body.get("text", {}).get("content"), str):
            raise ValueError(f"dingtalk expects msgtype text and text.content, got {body}")
        if "access_token" not in query:
            raise ValueError("dingtalk expects the access_token of the robot URL")
        timestamp = query["timestamp"][0]
        message = f"{timestamp}\n{SECRET}".encode()
        expected = base64.b64encode(hmac.new(SECRET.encode(), message, hashlib.sha256).digest()).decode()
        if not fresh(int(timestamp) / 1000) or query["sign"][0] != expected:
            raise ValueError("dingtalk signature does not verify")
        return body["text"]["content"]
    if provider == "wecom":
        if body.get("msgtype") != "text" or not isinstance(body.get("text", {}).get("content"), str):
            raise ValueError(f"wecom expects msgtype text and text.content, got {body}")
        if "key" not in query:
            raise ValueError("wecom expects the key of the bot URL")
        if len(body["text"]["content"].encode()) > 2048:
            raise ValueError("wecom text content is longer than 2048 bytes")
        return body["text"]["content"]
    raise ValueError(f"unknown provider {provider}")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        url = urlparse(self.path)
        _, provider, behaviour = url.path.split("/", 2)
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        text, error = None, None
        try:
            text = check(provider, parse_qs(url.query), headers, json.loads(raw))
        except (ValueError, KeyError, json.JSONDecodeError) as e:
            error = repr(e)
        with PRINT_LOCK:
            print(json.dumps({"provider": provider, "behaviour": behaviour,
                              "verified": error is None, "error": error, "text": text}), flush=True)
        if error is not None:
            status, reply = 400, json.dumps({"errcode": 40035, "errmsg": error})
        else:
            status, reply = (GONE if behaviour == "gone" else SUCCESS)[provider]
        self.send_response(status)
        self.send_header("content-type", "application/json" if reply.startswith("{") else "text/plain")
        self.end_headers()
        self.wfile.write(reply.encode())

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
