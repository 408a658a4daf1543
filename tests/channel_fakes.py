"""Local fakes of Twilio, FCM (with Google's OAuth token endpoint) and Slack incoming webhooks:
aiohttp apps for 127.0.0.1 that check each request the way the real services do (Twilio's
path and basic auth, the JWT-bearer grant's RS256 signature, FCM's bearer token) and answer
with the real services' success and error bodies. Each records what it received."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# --- Twilio -------------------------------------------------------------------------------------

TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "twilio-auth-token-for-tests"


def twilio_error(code: int, message: str, status: int = 400) -> tuple[int, dict[str, Any]]:
    return status, {"code": code, "message": message,
                    "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


INVALID_NUMBER = twilio_error(21211, "The 'To' number +15005550001 is not a valid phone number.")
UNSUBSCRIBED = twilio_error(21610, "Attempt to send to unsubscribed recipient")
TOO_MANY = twilio_error(20429, "Too Many Requests", 429)


class TwilioFake:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.by_number: dict[str, tuple[int, dict[str, Any]]] = {}
        self.queue: list[tuple[int, dict[str, Any]]] = []     # answered first, in order
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.messages)
        return app

    async def messages(self, request: web.Request) -> web.Response:
        raw = await request.text()
        form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        self.requests.append({"path": request.path, "headers": dict(request.headers),
                              "form": form, "raw": raw})
        expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
        authorized = request.headers.get("Authorization") == expected
        if request.match_info["sid"] != TWILIO_SID or not authorized:
            status, body = twilio_error(20003, "Authenticate", 401)
        elif self.queue:
            status, body = self.queue.pop(0)
        elif form.get("To") in self.by_number:
            status, body = self.by_number[form["To"]]
        else:
            status, body = 201, {
                "sid": f"SM{len(self.requests):032x}", "account_sid": TWILIO_SID,
                "to": form.get("To"), "from": form.get("From"), "body": form.get("Body"),
                "messaging_service_sid": form.get("MessagingServiceSid"), "status": "queued",
                "num_segments": "1", "direction": "outbound-api", "error_code": None,
                "uri": f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/SM{len(self.requests)}.json"}
        return web.json_response(body, status=status)


# --- a service account and FCM ------------------------------------------------------------------

FCM_PROJECT = "flowd-test"
CLIENT_EMAIL = "flowd@flowd-test.iam.gserviceaccount.com"


def service_account_key() -> tuple[rsa.RSAPrivateKey, str]:
    """A fresh RSA key, and its PEM as a service-account file holds it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return key, pem


def service_account_file(path: Any, pem: str, token_uri: str) -> str:
    path.write_text(json.dumps({
        "type": "service_account", "project_id": FCM_PROJECT, "private_key_id": "k1d",
        "private_key": pem, "client_email": CLIENT_EMAIL, "client_id": "1234567890",
        "token_uri": token_uri, "auth_uri": "https://accounts.google.com/o/oauth2/auth"}))
    return str(path)


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fcm_error(status: int, state: str, message: str, code: str | None = None
              ) -> tuple[int, dict[str, Any]]:
    error: dict[str, Any] = {"code": status, "message": message, "status": state}
    if code:
        error["details"] = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                             "errorCode": code}]
    return status, {"error": error}


UNREGISTERED = fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
INVALID_ARGUMENT = fcm_error(400, "INVALID_ARGUMENT", "The registration token is not a valid "
                             "FCM registration token", "INVALID_ARGUMENT")
UNAVAILABLE = fcm_error(503, "UNAVAILABLE", "The service is currently unavailable.",
                        "UNAVAILABLE")
SENDER_MISMATCH = fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch",
                            "SENDER_ID_MISMATCH")


class FcmFake:
    """Google's token endpoint (`/token`) and FCM's send (`/v1/projects/…/messages:send`)."""

    def __init__(self, public_key: rsa.RSAPublicKey, expires_in: int = 3599) -> None:
        self.public_key = public_key
        self.expires_in = expires_in
        self.token_requests: list[dict[str, Any]] = []   # the verified JWT's header and claims
        self.sends: list[dict[str, Any]] = []
        self.issued: list[str] = []
        self.revoked: set[str] = set()
        self.by_token: dict[str, tuple[int, dict[str, Any]]] = {}
        self.base_url = ""

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self.token)
        app.router.add_post("/v1/projects/{project}/messages:send", self.send)
        return app

    async def token(self, request: web.Request) -> web.Response:
        form = {k: v[0] for k, v in parse_qs(await request.text()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            header_b64, claims_b64, signature_b64 = form["assertion"].split(".")
            header = json.loads(_b64url_decode(header_b64))
            claims = json.loads(_b64url_decode(claims_b64))
            self.public_key.verify(_b64url_decode(signature_b64),
                                   f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(),
                                   hashes.SHA256())
        except Exception:
            return web.json_response({"error": "invalid_grant",
                                      "error_description": "Invalid JWT Signature."},
                                     status=400)
        self.token_requests.append({"header": header, "claims": claims,
                                    "content_type": request.headers.get("Content-Type")})
        token = f"ya29.test-token-{len(self.issued) + 1}"
        self.issued.append(token)
        return web.json_response({"access_token": token, "expires_in": self.expires_in,
                                  "token_type": "Bearer"})

    async def send(self, request: web.Request) -> web.Response:
        body = await request.json()
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.sends.append({"path": request.path, "bearer": bearer, "body": body,
                           "content_type": request.headers.get("Content-Type")})
        if bearer not in self.issued or bearer in self.revoked:
            status, answer = fcm_error(401, "UNAUTHENTICATED", "Request had invalid "
                                       "authentication credentials.")
        elif body["message"]["token"] in self.by_token:
            status, answer = self.by_token[body["message"]["token"]]
        else:
            status, answer = 200, {"name": f"projects/{request.match_info['project']}/"
                                           f"messages/0:{len(self.sends)}"}
        return web.json_response(answer, status=status)


# --- Slack --------------------------------------------------------------------------------------

SLACK_PATH = "/services/T0001/B0001/s3cr3tp4th"


class SlackFake:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.by_path: dict[str, tuple[int, str]] = {}
        self.base_url = ""

    @property
    def url(self) -> str:
        return f"{self.base_url}{SLACK_PATH}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/services/{tail:.*}", self.post)
        return app

    async def post(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.posts.append({"path": request.path, "headers": dict(request.headers),
                           "body": json.loads(raw)})
        status, text = self.by_path.get(request.path, (200, "ok"))
        return web.Response(text=text, status=status, content_type="text/html",
                            headers={"x-slack-req-id": f"req-{len(self.posts)}"})
