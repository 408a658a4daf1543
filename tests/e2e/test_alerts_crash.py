"""A kill -9 between an alert's record and its delivery loses nothing: a subprocess server
records a run.failed alert and POSTs it to a receiver in this process that holds the request
unanswered; the server is killed; after a restart on the same file the alert arrives again with
the same webhook-id and signature scheme, is answered, and the record says delivered."""

from __future__ import annotations

import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from flowd.effects.signing import verify
from tests.e2e.conftest import ServerProcess, wait_until

ENV = {"FLOWD_HTTP_ALLOW_PRIVATE_NETWORKS": "true"}


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST and, while `holding`, answers none
    (until released)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.holding = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"headers": {k.lower(): v for k, v in
                                                      self.headers.items()}, "body": body})
                if receiver.holding.is_set():
                    receiver.release.wait(30)
                    return      # the connection is gone by then: nothing to answer
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_an_alert_recorded_before_a_kill9_is_delivered_after_the_restart(start_server) -> None:
    with Receiver() as receiver:
        receiver.holding.set()
        server: ServerProcess = start_server(env=ENV, log_name="before-kill.log")
        hook = server.post("/v1/webhooks", {"url": receiver.url, "events": ["run.failed"]})
        assert hook.status == 201, hook.body
        created = server.post("/v1/workflows", {
            "name": "doomed", "status": "active", "trigger": {"type": "event", "event": "go"},
            "steps": [{"id": "call", "type": "http_request",
                       "config": {"url": "http://127.0.0.1:1/"}}]})
        assert created.status == 201, created.body
        accepted = server.post("/v1/events", {"name": "go", "contact_id": "u1"})
        assert accepted.status == 202, accepted.body
        wait_until(lambda: receiver.requests, 20, "the alert's first attempt to arrive")
        server.kill9()

        with sqlite3.connect(server.db) as db:
            [(delivery_id, status)] = db.execute(
                "SELECT id, status FROM alert_deliveries").fetchall()
        assert status == "pending"
        [first] = receiver.requests
        assert first["headers"]["webhook-id"] == delivery_id

        receiver.holding.clear()
        restarted = start_server(admin_key=server.key, db=server.db, env=ENV,
                                 log_name="after-restart.log")

        def delivered() -> list[dict[str, Any]]:
            listed = restarted.get(f"/v1/webhooks/{hook.body['id']}/deliveries").body["data"]
            return [d for d in listed if d["status"] == "delivered"]
        [delivery] = wait_until(delivered, 30, "the alert to be delivered after the restart")
        assert delivery["id"] == delivery_id and delivery["last_status_code"] == 204
        again = receiver.requests[1:]
        assert [r["headers"]["webhook-id"] for r in again] == [delivery_id]
        assert again[0]["body"] == first["body"]
        verify(hook.body["secret"], again[0]["headers"], again[0]["body"],
               now_s=int(again[0]["headers"]["webhook-timestamp"]))
        body = json.loads(again[0]["body"])
        assert body["type"] == "run.failed"
        [run] = restarted.get("/v1/runs?status=failed").body["data"]
        assert body["data"]["run_id"] == run["id"]
