"""An acknowledged event (202) survives SIGKILL of the server right after the acknowledgement."""

from __future__ import annotations

import threading
import urllib.parse

from tests.e2e.conftest import ServerProcess


def test_single_event_survives_kill9(start_server) -> None:
    server: ServerProcess = start_server()
    assert server.get("/healthz", key=None).status == 200
    event = {"name": "order.completed", "contact_id": "user 1/ä", "message_id": "msg-kill9-1",
             "properties": {"total": 42}}

    response = server.post("/v1/events", event)
    server.kill9()  # right after the 202: no chance for a graceful flush

    assert response.status == 202, response.body
    event_id = response.body["id"]
    assert event_id.startswith("evt_") and response.body["duplicate"] is False

    restarted = start_server(admin_key=server.key)
    events = restarted.list_all("/v1/events")
    assert [(e["id"], e["name"], e["contact_id"], e["message_id"], e["properties"])
            for e in events] == [(event_id, "order.completed", "user 1/ä", "msg-kill9-1",
                                  {"total": 42})]
    contact = restarted.get("/v1/contacts/" + urllib.parse.quote(event["contact_id"], safe=""))
    assert contact.status == 200, contact.body
    assert contact.body["id"] == "user 1/ä"
    # The acknowledged message_id is remembered too: a retry is a duplicate of the same event.
    retry = restarted.post("/v1/events", event)
    assert retry.status == 202 and retry.body == {**response.body, "duplicate": True}


def test_500_concurrent_events_survive_kill9(start_server) -> None:
    server: ServerProcess = start_server()
    threads, per_thread = 10, 50
    acknowledged: dict[str, str] = {}  # message_id -> event id
    failures: list[str] = []
    lock = threading.Lock()

    def send(worker: int) -> None:
        for i in range(per_thread):
            message_id = f"m-{worker}-{i}"
            try:
                response = server.post("/v1/events", {
                    "name": "page.viewed", "contact_id": f"c{worker}", "message_id": message_id,
                    "properties": {"i": i}})
            except Exception as exc:  # noqa: BLE001 - reported below
                with lock:
                    failures.append(f"{message_id}: {exc!r}")
                continue
            with lock:
                if response.status == 202:
                    acknowledged[message_id] = response.body["id"]
                else:
                    failures.append(f"{message_id}: {response.status} {response.body}")

    workers = [threading.Thread(target=send, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    server.kill9()  # right after the last 202

    assert not any(w.is_alive() for w in workers), "senders hung"
    assert failures == []
    assert len(acknowledged) == threads * per_thread
    assert len(set(acknowledged.values())) == threads * per_thread

    restarted = start_server(admin_key=server.key)
    stored = restarted.list_all("/v1/events")
    stored_ids = [e["id"] for e in stored]
    assert len(stored_ids) == len(set(stored_ids)), "pagination returned an event twice"
    missing = set(acknowledged.values()) - set(stored_ids)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
    assert {e["message_id"]: e["id"] for e in stored} == acknowledged
    for worker in range(threads):
        assert restarted.get(f"/v1/contacts/c{worker}").status == 200
