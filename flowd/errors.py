"""The one error hierarchy. Every error a client can see carries its HTTP status and code.

The API middleware renders any `FlowdError` as the contract's envelope
`{"error": {"code", "message", "details"}}`; anything else becomes a logged 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: where (a JSON path like `batch[3].name`) and what."""

    path: str
    message: str
    # A problem with a rule the request schemas cannot state (a workflow issue, a step id the
    # workflow does not have, a time zone that does not exist) names the rule; within a
    # workflow it is also the code.
    code: str | None = None

    def to_json(self) -> dict[str, str]:
        if self.code is None:
            return {"path": self.path, "message": self.message}
        return {"path": self.path, "message": self.message, "code": self.code}


class FlowdError(Exception):
    status = 500
    code = "internal"
    # True when the request's body may be left unread on the connection, which then cannot
    # carry another request.
    closes_connection = False

    def __init__(self, message: str, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers: dict[str, str] = {}

    def to_json(self) -> dict[str, Any]:
        details = [d.to_json() if isinstance(d, Problem) else d for d in self.details]
        return {"error": {"code": self.code, "message": self.message, "details": details}}


class BadRequest(FlowdError):
    status, code = 400, "bad_request"


class MalformedBody(BadRequest):
    """aiohttp could not decode the body (bad gzip, bad chunking); its rest stays unread."""

    closes_connection = True


class ClientDisconnected(BadRequest):
    """The client hung up before sending its whole body: nobody is left to read the answer."""

    closes_connection = True


class Unauthorized(FlowdError):
    status, code = 401, "unauthorized"


class Forbidden(FlowdError):
    status, code = 403, "forbidden"


class NotFound(FlowdError):
    status, code = 404, "not_found"


class MethodNotAllowed(FlowdError):
    status, code = 405, "method_not_allowed"


class Conflict(FlowdError):
    status, code = 409, "conflict"


class Gone(FlowdError):
    status, code = 410, "gone"


class RequestTimeout(FlowdError):
    """The request body stopped arriving (an extension of the contract's code list)."""

    status, code = 408, "request_timeout"
    closes_connection = True


class PayloadTooLarge(FlowdError):
    status, code = 413, "payload_too_large"
    closes_connection = True


class ValidationError(FlowdError):
    status, code = 422, "validation_error"

    def __init__(self, problems: list[Problem], message: str | None = None) -> None:
        if message is None:
            first = problems[0]
            where = f" at {first.path}" if first.path else ""
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            message = f"invalid request{where}: {first.message}{more}"
        super().__init__(message, list(problems))
        self.problems = problems


class AiUnavailable(FlowdError):
    """Composing from a prompt needs a language model, and the project has none (neither its
    own nor the server's `[ai]`)."""

    status, code = 422, "ai_unavailable"


class AiBadAnswer(FlowdError):
    """The model's answer could not be used, even after it was asked to repair it."""

    status, code = 422, "ai_bad_answer"


class RateLimited(FlowdError):
    status, code = 429, "rate_limited"

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.headers["Retry-After"] = str(retry_after_seconds)


class Internal(FlowdError):
    status, code = 500, "internal"


class Unavailable(FlowdError):
    status, code = 503, "unavailable"


class ConfigError(Exception):
    """A bad setting: the server refuses to start and prints this one line (exit code 2)."""
