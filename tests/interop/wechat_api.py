"""A stand-in for the WeChat Official Account API, for Herald's WeChat channel tests: it issues
access tokens at /cgi-bin/token for one AppID/AppSecret and checks template messages at
/cgi-bin/message/template/send as WeChat documents them. Standard library only.

usage: wechat_api.py <appid> <appsecret>
Prints `listening <port>`, then one JSON line per request:
{"kind": "token"|"send", "verified": bool, "error", "token", "touser", "template_id", "data"}.
The first token stops being valid after its first message (WeChat answers 40001 when another
client fetched a newer token), so a client must fetch a new one and send again. The openid
`o-unfollowed` gets 43004 (the user does not follow the account).
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

APPID, SECRET = sys.argv[1:3]
LOCK = threading.Lock()
STATE = {"issued": 0, "valid": set(), "used": {}}


def reply(handler, body):
    data = json.dumps(body).encode()
    handler.send_response(200)
    handler.send_header("content-type", "application/json")
    handler.end_headers()
    handler.wfile.write(data)


def log(line):
    print(json.dumps(line), flush=True)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with LOCK:
            if url.path != "/cgi-bin/token" or query.get("grant_type") != "client_credential":
                log({"kind": "token", "verified": False, "error": f"bad request {self.path}"})
                return reply(self, {"errcode": 40002, "errmsg": "invalid grant_type"})
            if query.get("appid") != APPID or query.get("secret") != SECRET:
                log({"kind": "token", "verified": False, "error": "bad credentials"})
                return reply(self, {"errcode": 40125, "errmsg": "invalid appsecret"})
            STATE["issued"] += 1
            token = f"ACCESS_TOKEN_{STATE['issued']}"
            STATE["valid"].add(token)
            STATE["used"][token] = 0
            log({"kind": "token", "verified": True, "error": None, "token": token})
            return reply(self, {"access_token": token, "expires_in": 7200})

    def do_POST(self):
        url = urlparse(self.path)
        token = parse_qs(url.query).get("access_token", [None])[0]
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        with LOCK:
            line = {"kind": "send", "token": token, "touser": body.get("touser"),
                    "template_id": body.get("template_id"), "data": body.get("data")}
            if url.path != "/cgi-bin/message/template/send":
                line.update(verified=False, error=f"bad path {url.path}")
                log(line)
                return reply(self, {"errcode": 40002, "errmsg": "bad path"})
            if token not in STATE["valid"]:
                line.update(verified=False, error="invalid access_token")
                log(line)
                return reply(self, {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"})
            problems = []
            if not isinstance(body.get("touser"), str) or not isinstance(body.get("template_id"), str):
                problems.append("touser and template_id are required strings")
            data = body.get("data")
            if not isinstance(data, dict) or not all(isinstance(v, dict) and isinstance(v.get("value"), str) for v in data.values()):
                problems.append("data must map each field to {value: string}")
            if problems:
                line.update(verified=False, error="; ".join(problems))
                log(line)
                return reply(self, {"errcode": 47001, "errmsg": "data format error"})
            line.update(verified=True, error=None)
            log(line)
            STATE["used"][token] += 1
            if token == "ACCESS_TOKEN_1":
                # Another client fetched a newer token: this one no longer works.
                STATE["valid"].discard(token)
            if body["touser"] == "o-unfollowed":
                return reply(self, {"errcode": 43004, "errmsg": "require subscribe"})
            return reply(self, {"errcode": 0, "errmsg": "ok", "msgid": 200228332})

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
