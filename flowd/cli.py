"""Command line: `python -m flowd` serves; subcommands manage keys and the schema, export and
import bundles, and back the database up."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Sequence

from aiohttp import web

from flowd import __version__
from flowd.auth import generate_key, hash_key, key_prefix
from flowd.clock import Clock
from flowd.config import Config, load_config
from flowd.effects.signing import new_secret
from flowd.errors import ConfigError
from flowd.store import LATEST_SCHEMA_VERSION as LATEST_VERSION
from flowd.store import LastAdminKey, StoreError, SyncStore
from flowd.store.records import Role
from flowd.timeutil import format_ms

log = logging.getLogger("flowd")
config_log = logging.getLogger("flowd.config")

EXIT_USAGE = 2
MAX_REQUEST_LINE = 16 * 1024


def _common_flags() -> argparse.ArgumentParser:
    # SUPPRESS keeps a subcommand's unset flag from overwriting one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="settings file (default: ./flowd.toml when it exists)")
    common.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS,
                        help="database file (overrides [storage] path)")
    common.add_argument("--host", default=argparse.SUPPRESS, help="overrides [server] host")
    common.add_argument("--port", type=int, default=argparse.SUPPRESS,
                        help="overrides [server] port")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_flags()
    parser = argparse.ArgumentParser(
        prog="python -m flowd", parents=[common],
        description="flowd: durable event-triggered workflow automation on one machine. "
                    "Without a subcommand, serves the HTTP API.")
    parser.add_argument("--version", action="version", version=f"flowd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", parents=[common], help="serve the HTTP API (the default)")
    sub.add_parser("migrate", parents=[common], help="create or upgrade the database schema")
    keys = sub.add_parser("keys", parents=[common], help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = keys_sub.add_parser("create", parents=[common], help="create a key and print it once")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--project", default="default", help="project (created if new)")
    create.add_argument("--name", default="", help="a label for the key")
    keys_sub.add_parser("list", parents=[common], help="list active keys of every project")
    revoke = keys_sub.add_parser("revoke", parents=[common], help="revoke a key by id")
    revoke.add_argument("id")
    bundle_help = (" Works on the database file directly (no server needed, safe beside a "
                   "running one); a server running on it sees imported workflows' triggers "
                   "only after its next start, so prefer POST /v1/import while one runs.")
    export = sub.add_parser("export", parents=[common], help="write a project's workflows, "
                            "audiences and templates as a bundle", description="Write every "
                            "workflow, audience and template of a project as a bundle "
                            "(GET /v1/export)." + bundle_help)
    export.add_argument("path", help="the file to write; - for standard output")
    export.add_argument("--project", default="default", help="project (default: default)")
    imp = sub.add_parser("import", parents=[common], help="import a bundle, or a definition of "
                         "reference 000, 001 or 004", description="Import a bundle or one "
                         "definition of another tool, all or nothing (POST /v1/import)."
                         + bundle_help)
    imp.add_argument("path", help="the file to read; - for standard input")
    imp.add_argument("--project", default="default", help="project (created if new)")
    backup = sub.add_parser(
        "backup", parents=[common], help="copy the database while a server may be writing, "
        "then verify the copy (exit 0: done; 1: the backup failed; 2: bad usage, or PATH "
        "exists without --force)")
    backup.add_argument("path", metavar="PATH", help="where to write the copy")
    backup.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    from flowd.bench.cli import add_arguments as add_bench_arguments

    bench = sub.add_parser("bench", help="measure this machine against flowd's performance "
                                         "targets (starts its own servers)")
    add_bench_arguments(bench)
    return parser


def _config(args: argparse.Namespace) -> Config:
    return load_config(getattr(args, "config", None), {
        "storage.path": getattr(args, "db", None),
        "server.host": getattr(args, "host", None),
        "server.port": getattr(args, "port", None),
    })


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        from flowd.bench.cli import run as run_bench

        return run_bench(args)
    try:
        config = _config(args)
        logging.basicConfig(level=config.server.log_level.upper(), stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for warning in config.warnings:
            config_log.warning("%s", warning)
        if args.command == "migrate":
            return _migrate(config)
        if args.command == "keys":
            return _keys(config, args)
        if args.command in ("export", "import"):
            from flowd.bundle_cli import export_file, import_file

            return (export_file if args.command == "export" else import_file)(
                _open(config), config, args.path, args.project)
        if args.command == "backup":
            return _backup(config, args)
        return _serve(config)
    except ConfigError as exc:
        print(f"flowd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:
        print(f"flowd: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _open(config: Config) -> SyncStore:
    from flowd.app import db_settings

    store = SyncStore(db_settings(config))
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store


def _migrate(config: Config) -> int:
    from flowd.app import db_settings

    store = SyncStore(db_settings(config))
    try:
        for migration in store.migrate():
            print(f"applied migration {migration.version}: {migration.name}")
    finally:
        store.close()
    print(f"{config.storage.path} is at schema version {LATEST_VERSION}")
    return 0


def _keys(config: Config, args: argparse.Namespace) -> int:
    store = _open(config)
    now = Clock().now_ms()
    try:
        if args.keys_command == "create":
            secret = generate_key()
            with store.transaction() as tx:
                # A new project gets its webhook signing secret with it: the server only reads
                # secrets (it makes missing ones at start, and this one may be running).
                tx.keys.ensure_project(args.project, now)
                tx.secrets.current(args.project, now, new_secret)
                key = tx.keys.create(project_id=args.project, role=Role(args.role),
                                     name=args.name, key_hash=hash_key(secret),
                                     prefix=key_prefix(secret), now=now)
            print(f"created {key.id} ({key.role.value} of project {key.project_id}); "
                  "the key is shown only this once:", file=sys.stderr)
            print(secret)
            return 0
        if args.keys_command == "list":
            page = store.read().keys.page(project_id=None, before=None, limit=10_000)
            print(f"{'ID':32} {'PROJECT':16} {'ROLE':7} {'PREFIX':12} {'CREATED':25} NAME")
            for key in page.items:
                print(f"{key.id:32} {key.project_id:16} {key.role.value:7} {key.prefix + '…':12} "
                      f"{format_ms(key.created_at):25} {key.name}")
            return 0
        try:
            with store.transaction() as tx:
                revoked = tx.keys.revoke(key_id=args.id, project_id=None, now=now)
        except LastAdminKey as exc:
            print(f"flowd: cannot revoke {exc.key_id} (admin of project {exc.project_id}): {exc}",
                  file=sys.stderr)
            return 1
        if not revoked:
            print(f"flowd: no active key {args.id}", file=sys.stderr)
            return 1
        print(f"revoked {args.id}")
        return 0
    finally:
        store.close()


def _backup(config: Config, args: argparse.Namespace) -> int:
    from flowd.app import db_settings
    from flowd.store.sqlite.backup import BackupError, DestinationExists, backup

    try:
        result = backup(db_settings(config), args.path, force=args.force)
    except DestinationExists as exc:
        print(f"flowd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BackupError as exc:
        print(f"flowd: {exc}", file=sys.stderr)
        return 1
    print(f"backed up {config.storage.path} to {result.path}: {result.bytes} bytes, "
          f"integrity check ok")
    return 0


def _serve(config: Config) -> int:
    try:
        asyncio.run(_run_server(config))
    except OSError as exc:
        print(f"flowd: cannot listen on {config.server.host}:{config.server.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


async def _run_server(config: Config) -> None:
    from flowd.api import client_faults
    from flowd.api.middleware import SERVICES
    from flowd.app import create_app

    client_faults.install()
    app = create_app(config)
    # aiohttp refuses a request line or header over 8190 bytes with a plain-text 400 of its own,
    # before the API sees it; the longest URL the documented parameters allow (every one at its
    # maxLength, percent-encoded four-byte characters) is shorter than 16 KiB.
    runner = web.AppRunner(app, handle_signals=False,
                           access_log=logging.getLogger("flowd.access") if config.server.access_log else None,
                           shutdown_timeout=config.server.shutdown_timeout,
                           max_line_size=MAX_REQUEST_LINE, max_field_size=MAX_REQUEST_LINE)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.server.host, config.server.port, backlog=1024)
        await site.start()
        for address in runner.addresses:
            url = "http://{}:{}".format(*address[:2]) if ":" not in address[0] else (
                "http://[{}]:{}".format(*address[:2]))
            log.info("flowd %s listening on %s (database %s, settings from %s)",
                     __version__, url, config.storage.path, config.source)
            # Links in messages need the port actually bound (port = 0 picks one).
            app[SERVICES].base_url = app[SERVICES].base_url or url
        if config.email.provider != "outbox" and not config.server.public_url:
            log.warning("emails will carry unsubscribe and tracking links to %s; set "
                        "[server] public_url to the address recipients can reach",
                        app[SERVICES].public_url())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down: no new connections, finishing requests and queued writes")
    finally:
        await runner.cleanup()
    log.info("stopped")
