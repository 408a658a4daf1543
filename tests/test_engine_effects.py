"""How the engine records an effect's failure, through the HTTP API against real ports on
127.0.0.1: it becomes the attempt's error, whatever the step type, and its `retryable` decides
whether the retry policy applies. (Refused destinations, not retryable: test_engine_ssrf.py.)"""

from __future__ import annotations

import socket

from tests.conftest import Api

RETRY_TWICE = {"max_attempts": 2, "backoff": "PT0.01S"}


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def attempts(run: dict, step_id: str) -> list[dict]:
    return [s for s in run["steps"] if s["step_id"] == step_id]


async def test_a_retryable_effect_failure_is_retried_and_recorded_with_its_code(api: Api):
    url = f"http://127.0.0.1:{closed_port()}/hook"
    await api.workflow({
        "trigger": {"type": "event", "event": "go"},
        "steps": [{"id": "call", "type": "http_request", "config": {"url": url},
                   "retry": RETRY_TWICE}]})
    run = await api.run_until((await api.send("go", "u1"))["runs_started"][0], "failed")
    tried = attempts(run, "call")
    assert [s["attempt"] for s in tried] == [1, 2]
    assert all(s["status"] == "failed" and s["error"]["code"] == "connection_failed" for s in tried)
    assert "127.0.0.1" in tried[0]["error"]["message"]
    assert run["error"]["code"] == "connection_failed"


async def test_an_effect_failure_takes_the_error_branch_like_any_failure(api: Api):
    url = f"http://127.0.0.1:{closed_port()}/hook"
    await api.workflow({
        "trigger": {"type": "event", "event": "go"},
        "steps": [{"id": "call", "type": "webhook", "config": {"url": url},
                   "next": {"error": "fallback"}},
                  {"id": "fallback", "type": "set", "config": {"vars": {"fell_back": True}}}]})
    run = await api.run_until((await api.send("go", "u1"))["runs_started"][0], "completed")
    [call] = attempts(run, "call")
    assert (call["status"], call["branch"], call["error"]["code"]) == (
        "failed", "error", "connection_failed")
    assert [s["step_id"] for s in run["steps"]] == ["call", "fallback"]
