"""Stand-ins for the Aliyun SMS and Twilio APIs that check each request the way the providers
document it, for Herald's SMS channel tests. Standard library only, written from the
providers' documentation independently of Herald's Rust code.

usage: sms_provider.py <aliyun access key secret> <twilio account sid> <twilio auth token>
Prints `listening <port>`, then one JSON line per request:
{"provider", "verified": bool, "error": str|null, "to", "params": {...}}.
Numbers decide the answer. Aliyun: 10000 is invalid (isv.MOBILE_NUMBER_ILLEGAL). Twilio: +15005550001 is invalid (21211).
"""

import base64
import hashlib
import hmac
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote

ALIYUN_SECRET, TWILIO_SID, TWILIO_TOKEN = sys.argv[1:4]
PRINT_LOCK = threading.Lock()


def aliyun_encode(text):
    # Aliyun's percentEncode: RFC 3986, spaces as %20, '~' kept.
    return quote(text, safe="-_.~")


def check_aliyun(params):
    signature = params.pop("Signature")
    canonical = "&".join(f"{aliyun_encode(k)}={aliyun_encode(v)}" for k, v in sorted(params.items()))
    to_sign = f"POST&{aliyun_encode('/')}&{aliyun_encode(canonical)}"
    digest = hmac.new(f"{ALIYUN_SECRET}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    if base64.b64encode(digest).decode() != signature:
        raise ValueError("aliyun signature does not verify")
    for name in ["AccessKeyId", "Action", "Format", "RegionId", "SignatureMethod", "SignatureNonce",
                 "SignatureVersion", "Timestamp", "Version", "PhoneNumbers", "SignName",
                 "TemplateCode", "TemplateParam"]:
        if name not in params:
            raise ValueError(f"aliyun request lacks {name}")
    if params["Action"] != "SendSms" or params["Version"] != "2017-05-25":
        raise ValueError("aliyun expects Action=SendSms, Version=2017-05-25")
    template = json.loads(params["TemplateParam"])
    if not all(isinstance(v, str) for v in template.values()):
        raise ValueError("aliyun template parameters must be strings")
    return params["PhoneNumbers"]


def check_twilio(headers, params, path):
    expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    if headers.get("authorization") != expected:
        raise ValueError("twilio basic authentication does not verify")
    if path != f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json":
        raise ValueError(f"twilio path {path}")
    if not params.get("To") or not (params.get("From") or params.get("MessagingServiceSid")) or not params.get("Body"):
        raise ValueError("twilio expects To, From and Body")
    return params["To"]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
        headers = {k.lower(): v for k, v in self.headers.items()}
        params = dict(parse_qsl(raw, keep_blank_values=True))
        provider = "aliyun" if self.path == "/" else "twilio"
        to, error = None, None
        try:
            if headers.get("content-type") != "application/x-www-form-urlencoded":
                raise ValueError("expects a form")
            to = check_aliyun(dict(params)) if provider == "aliyun" else check_twilio(headers, params, self.path)
        except (ValueError, KeyError, json.JSONDecodeError) as e:
            error = repr(e)
        shown = {k: v for k, v in params.items() if k not in ("Signature",)}
        with PRINT_LOCK:
            print(json.dumps({"provider": provider, "verified": error is None, "error": error,
                              "to": to, "params": shown}), flush=True)
        if provider == "aliyun":
            if error:
                status, reply = 400, {"Code": "SignatureDoesNotMatch", "Message": error}
            elif to == "10000":
                status, reply = 200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号"}
            else:
                status, reply = 200, {"Code": "OK", "Message": "OK", "BizId": "9006197469364984^0", "RequestId": "F655A8D5"}
        else:
            if error:
                status, reply = 401, {"code": 20003, "message": error, "status": 401}
            elif to == "+15005550001":
                status, reply = 400, {"code": 21211, "message": "The 'To' number +15005550001 is not a valid phone number.", "status": 400}
            else:
                status, reply = 201, {"sid": "SM123", "status": "queued", "to": to}
        body = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
