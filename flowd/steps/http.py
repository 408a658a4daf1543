"""`webhook` (signed, Standard Webhooks) and `http_request` (unsigned): calls out through the
HTTP effect (`ctx.effects.http`: on the server, the one SSRF-guarded client)."""

from __future__ import annotations

import json
from typing import Any

from flowd.effects.signing import delivery_id
from flowd.errors import Problem
from flowd.steps.base import Outcome, StepConfigError, StepContext, StepFailed, StepType
from flowd.steps.timing import check_duration, duration_at_run_time
from flowd.validation import Enum, Json, MapOf, Object, String

DEFAULT_TIMEOUT_MS = 10_000
MAX_TIMEOUT_MS = 300_000
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _check_url(config: dict[str, Any], path: str) -> None:
    issues: list[tuple[str, Problem]] = []
    url = config["url"]
    if "{{" not in url and not url.lower().startswith(("http://", "https://")):
        issues.append(("invalid_config", Problem(f"{path}.url", "must be an http:// or https:// URL")))
    check_duration(config, "timeout", path, issues)
    if issues:
        raise StepConfigError(issues)


class HttpStep(StepType):
    name = "http_request"
    summary = "Calls an HTTP endpoint (any method, unsigned); the response is the output."
    calls_out = True
    signed = False
    schema = Object({
        "url": String(min_len=1, max_len=4096),
        "method": Enum(("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")),
        "headers": MapOf(String(max_len=8192), max_keys=100),
        "body": Json(),
        "timeout": String(min_len=1),
    }, required=("url",))

    def compile(self, config: dict[str, Any], path: str) -> None:
        _check_url(config, path)

    def _method(self, config: dict[str, Any]) -> str:
        return config.get("method", "GET")

    async def run(self, ctx: StepContext) -> Outcome:
        config = ctx.config
        timeout_ms = min(duration_at_run_time(config, "timeout") or DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS)
        headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
        body = None
        if "body" in config:
            body = config["body"] if isinstance(config["body"], str) else _dumps(config["body"])
            headers.setdefault("Content-Type", "application/json")
        payload = body.encode() if body is not None else None
        if self.signed:
            msg_id = delivery_id(ctx.run_id, ctx.step_id, ctx.visit)
            timestamp = ctx.now_ms // 1000
            headers["webhook-id"] = msg_id
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = await ctx.effects.signer.signature(
                ctx.project_id, msg_id, timestamp, payload or b"")
        # A refused destination or a call without a response raises EffectFailed, which the
        # engine records; only the answer's status is this step's to judge.
        response = await ctx.effects.http.request(
            self._method(config), str(config["url"]), headers=headers, body=payload,
            timeout=timeout_ms / 1000)
        output: dict[str, Any] = {"status": response.status, "body": response.body}
        if not self.signed:
            output["headers"] = response.headers
        if not 200 <= response.status < 300:
            raise StepFailed("http_status", f"{config['url']} answered HTTP {response.status}",
                             output=output)
        return Outcome(f"http_{response.status}", output=output)


class WebhookStep(HttpStep):
    name = "webhook"
    summary = "POSTs a signed JSON body (Standard Webhooks) to a URL."
    signed = True
    schema = Object({**HttpStep.schema.fields, "method": Enum(("POST", "PUT", "PATCH", "DELETE", "GET"))},
                    required=("url",))

    def _method(self, config: dict[str, Any]) -> str:
        return config.get("method", "POST")
