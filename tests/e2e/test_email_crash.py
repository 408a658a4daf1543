"""Crash while emails are in flight: a subprocess server sends one email per run through a
real SMTP server (aiosmtpd in this process) that answers the first ANSWERED messages and then
holds every DATA unanswered, so that at the kill the server has ANSWERED messages recorded
`sent`, `connections` inside an SMTP transaction, and the rest recorded `sending` and waiting
for a connection. After a
`kill -9` and a restart on the same file, every run completes, every message arrives, and no
message whose record said `sent` at the kill arrives again — each with the Message-ID its
record implies, the same before and after the crash."""

from __future__ import annotations

import sqlite3
from collections import Counter

from tests.e2e.conftest import ServerProcess, wait_until
from tests.mail_server import MailServer

RUNS = 60
ANSWERED = 25
CONNECTIONS = 3


def _env(smtp: MailServer) -> dict[str, str]:
    return {"FLOWD_EMAIL_PROVIDER": "smtp", "FLOWD_EMAIL_HOST": "127.0.0.1",
            "FLOWD_EMAIL_PORT": str(smtp.port), "FLOWD_EMAIL_CONNECTIONS": str(CONNECTIONS),
            "FLOWD_EMAIL_TIMEOUT_SECONDS": "60", "FLOWD_EMAIL_FROM": "news@acme.example"}


def test_no_email_recorded_sent_is_sent_again_after_kill9(start_server) -> None:
    with MailServer() as smtp:
        smtp.answer_first = ANSWERED
        server: ServerProcess = start_server(env=_env(smtp), log_name="before-kill.log")
        created = server.post("/v1/workflows", {
            "name": "newsletter", "status": "active",
            "trigger": {"type": "event", "event": "go"},
            "steps": [{"id": "mail", "type": "send_email", "config": {
                "subject": "Issue 1 for {{ contact.id }}", "text": "Hello"}}]})
        assert created.status == 201, created.body
        events = [{"name": "go", "contact_id": f"c{i}",
                   "contact": {"email": f"c{i}@example.com"}} for i in range(RUNS)]
        accepted = server.post("/v1/events", {"batch": events})
        assert accepted.status == 202, accepted.body

        def settled() -> bool:
            sent = server.list_all("/v1/messages?status=sent")
            return smtp.held == CONNECTIONS and len(sent) == ANSWERED
        wait_until(settled, 20, f"{ANSWERED} sent and {CONNECTIONS} held in DATA")
        server.kill9()

        with sqlite3.connect(server.db) as db:
            records = dict(db.execute("SELECT id, status FROM messages").fetchall())
        sent_at_kill = {m for m, status in records.items() if status == "sent"}
        assert len(sent_at_kill) == ANSWERED
        assert Counter(records.values())["sending"] >= CONNECTIONS

        smtp.release()
        restarted = start_server(admin_key=server.key, db=server.db, env=_env(smtp),
                                 log_name="after-restart.log")
        wait_until(lambda: len(restarted.list_all("/v1/runs?status=completed")) == RUNS, 60,
                   "every run completed")
        received = Counter(r.message["Message-ID"] for r in smtp.wait_for(RUNS))
        records = restarted.list_all("/v1/messages")
        assert len(records) == RUNS and all(r["status"] == "sent" for r in records)
        expected = {f"<{r['id']}@acme.example>" for r in records}
        assert set(received) == expected                  # every message, with its own id
        for message_id in sent_at_kill:
            assert received[f"<{message_id}@acme.example>"] == 1
        assert max(received.values()) == 1, received.most_common(3)

        # Without [server] public_url the links point at the address the server listens on
        # (of the server that recorded the message), and the log says so.
        bases = Counter(r.message["List-Unsubscribe"].strip().split("/v1/")[0]
                        for r in smtp.messages)
        assert set(bases) <= {f"<{server.url}", f"<{restarted.url}"}, bases
        assert "set [server] public_url" in restarted.log_text()
