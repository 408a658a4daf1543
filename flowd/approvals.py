"""Approval decisions: the links that decide them, and deciding — by a link (no API key: the
token is the capability) or by an editor through `POST /v1/runs/{id}/resume`.

A decision is one unit: the conditional update of the approval (of concurrent decisions exactly
one changes the row; the rest see it decided) and the wake of the run waiting on it. If the
run no longer waits for it (cancelled, or its wait already ended by expiry), nothing is
recorded and the decider hears 410. Looking at an approval changes nothing: mail scanners and
link previews fetch every link in a message.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from flowd.clock import Clock
from flowd.errors import Conflict, Gone, NotFound
from flowd.links import approval_token, token_hash
from flowd.store import Store, Transaction
from flowd.store.records import Approval, RunStatus
from flowd.throttle import FailureThrottle
from flowd.timeutil import format_ms
from flowd.waits import WaitKind, Wake, WakeReason

DECISIONS = ("approved", "rejected")
MAX_COMMENT = 2000


@dataclass(frozen=True)
class ApprovalView:
    """What a link shows: the approval, whom the link names, and the workflow's name."""

    approval: Approval
    approver: str | None
    workflow_name: str
    now: int

    def to_json(self) -> dict[str, Any]:
        return {**self.approval.to_json(self.now), "workflow_name": self.workflow_name,
                "approver": self.approver}


class ApprovalDesk:
    def __init__(self, store: Store, clock: Clock, public_url: Callable[[], str],
                 on_runs_due: Callable[[list[str]], None],
                 throttle: FailureThrottle | None = None) -> None:
        self._store = store
        self._clock = clock
        self._public_url = public_url
        self._on_runs_due = on_runs_due
        self._key = b""
        # Too many unknown tokens from one client: it is guessing (429).
        self.throttle = throttle or FailureThrottle(clock, limit=20, window_ms=60_000)

    async def start(self) -> None:
        now = self._clock.now_ms()
        self._key = await self._store.write(lambda tx: tx.secrets.server_key(
            "approvals", now, lambda: secrets.token_bytes(32)))

    # -- the links (the ApprovalLinks effect) ------------------------------------------------

    def token(self, approval_id: str, approver: str | None) -> str:
        assert self._key, "ApprovalDesk.start() loads the key"
        return approval_token(self._key, approval_id, approver)

    def url(self, token: str) -> str:
        return f"{self._public_url().rstrip('/')}/v1/approvals/{token}"

    # -- deciding --------------------------------------------------------------------------

    async def view(self, token: str, client: str) -> ApprovalView:
        return await self._by_token(token, client, self._store.read,
                                    lambda tx, found: found[0])

    async def decide_by_token(self, token: str, decision: str, comment: str | None,
                              client: str) -> ApprovalView:
        """The decision of whoever holds the link: the approver it names (or `link`)."""
        now = self._clock.now_ms()

        def decide(tx: Transaction, found: tuple[Approval, str | None]) -> Approval:
            approval, approver = found
            return self._decide(tx, approval, decision, comment, approver or "link", None, now)

        return await self._by_token(token, client, self._store.write, decide)

    async def _by_token(self, token: str, client: str,
                        run: Callable[[Callable[[Transaction], Any]], Awaitable[Any]],
                        act: Callable[[Transaction, tuple[Approval, str | None]], Approval]
                        ) -> ApprovalView:
        """Look a link's token up (in a read or a unit of work, `run`), `act` on what it
        names, and show the approval as `act` leaves it. An unknown token counts against the
        client (and a client with too many such is refused before anything is looked up)."""
        self.throttle.check(client)
        now = self._clock.now_ms()

        def unit(tx: Transaction) -> ApprovalView | None:
            found = tx.approvals.by_token(token_hash(token))
            if found is None:
                return None
            approval = act(tx, found)
            workflow = tx.workflows.get(approval.project_id, approval.workflow_id)
            return ApprovalView(approval, found[1], workflow.name if workflow else "", now)

        view = await run(unit)
        if view is None:
            self.throttle.failed(client)
            raise NotFound("no such approval link")
        return view

    async def decide_for_run(self, project_id: str, run_id: str, decision: str,
                             data: dict[str, Any] | None, decided_by: str) -> None:
        """An editor decides the approval the run waits at (`POST /v1/runs/{id}/resume`)."""
        now = self._clock.now_ms()

        def unit(tx: Transaction) -> None:
            run = tx.runs.get(project_id, run_id)
            if run is None:
                raise NotFound("no such run")
            wait = run.wait
            if wait is None or wait.kind is not WaitKind.APPROVAL or wait.ref is None \
                    or run.status not in (RunStatus.WAITING, RunStatus.PAUSED):
                kind = f" ({wait.kind.value})" if wait is not None else ""
                raise Conflict(f"the run is not waiting for an approval: it is "
                               f"{run.status.value}{kind}")
            approval = tx.approvals.get(wait.ref)
            if approval is None:
                raise Conflict("the run's approval is not recorded")
            comment = data.get("comment") if data else None
            self._decide(tx, approval, decision,
                         comment if isinstance(comment, str) else None, decided_by, data, now)

        await self._store.write(unit)

    def _decide(self, tx: Transaction, approval: Approval, decision: str, comment: str | None,
                decided_by: str, data: dict[str, Any] | None, now: int) -> Approval:
        if approval.decision is not None:
            raise AlreadyDecided(approval)
        if now >= approval.expires_at:
            raise Gone("the approval expired at " + format_ms(approval.expires_at))
        if not tx.approvals.decide(approval.id, decision, comment, decided_by, now):
            # Another decision committed between the read and this update (not possible with
            # one writer, but the update's condition is what makes it so).
            raise AlreadyDecided(tx.approvals.get(approval.id) or approval)
        outcome: dict[str, Any] = {"approval_id": approval.id, "decision": decision,
                                   "comment": comment, "decided_by": decided_by,
                                   "decided_at": format_ms(now)}
        if data:
            outcome["data"] = data
        if not tx.runs.wake_for(approval.run_id, WaitKind.APPROVAL, approval.id,
                                Wake(WakeReason.DECISION, data=outcome), now):
            # The run stopped waiting (cancelled, failed, or its wait ended): raising undoes
            # the decision with the rest of the unit.
            raise Gone("the run no longer waits for this approval")
        tx.after_commit.append(lambda: self._on_runs_due([approval.run_id]))
        decided = tx.approvals.get(approval.id)
        assert decided is not None
        return decided


class AlreadyDecided(Conflict):
    def __init__(self, approval: Approval) -> None:
        super().__init__(f"the approval was already decided: {approval.decision} by "
                         f"{approval.decided_by} at {format_ms(approval.decided_at)}")
        self.approval = approval

