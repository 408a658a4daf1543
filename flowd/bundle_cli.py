"""`python -m flowd export|import PATH`: the bundle verbs of the API (flowd.bundles) on the
configured database file, through the store's transactions — no server needed. An import is
one transaction (BEGIN IMMEDIATE, waiting for a running server's writer like any writer).

A server running on the same file is not told: its trigger index learns about imported
workflows at its next start (POST /v1/import is the way while it runs). That is the price of
working without a server; detecting one reliably from another process is not possible with
SQLite alone, so the help text says so instead."""

from __future__ import annotations

import json
import sys
from typing import Any

from flowd.bundles import apply, dumps, export, prepare
from flowd.clock import Clock
from flowd.config import Config
from flowd.effects.signing import new_secret
from flowd.errors import FlowdError, ValidationError
from flowd.store import SyncStore
from flowd.workflows import WorkflowService


def _public_url(config: Config) -> str:
    server = config.server
    return server.public_url or f"http://{server.host}:{server.port}"


def export_file(store: SyncStore, config: Config, path: str, project: str) -> int:
    try:
        text = dumps(export(store.read(), project, _public_url(config)))
    finally:
        store.close()
    if path == "-":
        sys.stdout.write(text)
    else:
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _ignore(*_: Any) -> None:
    """No server to tell (see the module's docstring)."""


def import_file(store: SyncStore, config: Config, path: str, project: str) -> int:
    clock = Clock()
    try:
        try:
            if path == "-":
                body = json.load(sys.stdin)
            else:
                with open(path, encoding="utf-8") as file:
                    body = json.load(file)
        except (OSError, ValueError) as exc:
            print(f"flowd: cannot read {path}: {exc}", file=sys.stderr)
            return 1
        service = WorkflowService(store, clock, _ignore, _ignore)  # type: ignore[arg-type]
        now = clock.now_ms()
        try:
            prepared = prepare(body)
            with store.transaction() as tx:
                # A new project gets its webhook signing secret with it, as `keys create` does.
                tx.keys.ensure_project(project, now)
                tx.secrets.current(project, now, new_secret)
                result = apply(tx, service, project, prepared, now)
        except ValidationError as exc:
            print(f"flowd: {exc}", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem.path or '(the document)'}: {problem.message}", file=sys.stderr)
            return 1
        except FlowdError as exc:
            print(f"flowd: {exc}", file=sys.stderr)
            return 1
    finally:
        store.close()
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0
