"""Audiences as the rest of flowd uses them: create, replace and delete (not while a running
workflow names one), and evaluate — the count, a page of members, whether one contact is a
member (a messaging step's check at send time), and every member's id (a schedule's fire, a bulk
job) — each at the moment of the call, through the one evaluator of flowd.audiences and the
store. Nothing is cached but the compiled filter of an audience's current version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowd.audiences import AudienceFilter, AudienceQuery, compile_filter
from flowd.clock import Clock
from flowd.config import AudiencesConfig
from flowd.definitions import uses_audience
from flowd.effects.base import EffectFailed
from flowd.errors import Conflict, NotFound, Problem, ValidationError
from flowd.store import Store, Transaction
from flowd.store.records import Audience, AudienceTooCostly, NameTaken, Page

# Compiled filters kept, by (audience id, updated_at). Reads run on the store's threads: a plain
# dict is safe to share under the GIL, and emptying it when full is bound enough.
_CACHE_SIZE = 256


@dataclass(frozen=True)
class AudienceLimits:
    max_python_rows: int     # contacts one evaluation may decide in Python
    max_members: int         # members a schedule fire or a bulk job takes

    @classmethod
    def of(cls, config: AudiencesConfig) -> AudienceLimits:
        return cls(config.max_python_rows, config.max_members)


class TooManyMembers(Exception):
    def __init__(self, audience: Audience, limit: int) -> None:
        super().__init__(f"the audience {audience.name!r} has more than {limit:,} members "
                         "([audiences] max_members)")
        self.audience = audience
        self.limit = limit


def too_costly(error: AudienceTooCostly) -> ValidationError:
    """The 422 for a filter that would need more contacts decided in Python than allowed."""
    message = (f"evaluating this filter needs at least {error.needed:,} contacts checked one by "
               f"one, more than [audiences] max_python_rows ({error.limit:,}): narrow it with "
               "conditions SQL decides, or raise the setting")
    parts = error.parts or ("filter",)
    return ValidationError([Problem(part, "decided in Python for each contact that reaches it "
                                          "(SQL cannot decide it exactly)", "audience_too_costly")
                            for part in parts], message=message)


class AudienceService:
    def __init__(self, store: Store, clock: Clock, limits: AudienceLimits) -> None:
        self._store = store
        self._clock = clock
        self.limits = limits
        self._filters: dict[tuple[str, int], AudienceFilter] = {}

    # -- evaluation ------------------------------------------------------------------------

    def query(self, audience: Audience, now: int) -> AudienceQuery:
        """The audience's filter at `now` (a relative time like -P7D counts from it)."""
        key = (audience.id, audience.updated_at)
        compiled = self._filters.get(key)
        if compiled is None:
            if len(self._filters) >= _CACHE_SIZE:
                self._filters.clear()
            compiled = self._filters[key] = compile_filter(audience.filter)
        return compiled.query(now)

    async def in_audience(self, project_id: str, audience: str, contact_id: str | None) -> bool:
        """The messaging steps' check at send time (by id or name); an unknown audience fails
        the step rather than sending to everyone."""
        now = self._clock.now_ms()

        def read(tx: Transaction) -> bool | None:
            found = tx.audiences.get(project_id, audience)
            if found is None:
                return None
            if contact_id is None:
                return False   # a run without a contact is in no audience
            return tx.audiences.contains(project_id, self.query(found, now), contact_id)

        member = await self._store.read(read)
        if member is None:
            raise EffectFailed("unknown_audience", f"no audience has the id or name {audience!r}",
                               retryable=False)
        return member

    def member_ids_in(self, tx: Transaction, audience: Audience, now: int) -> list[str]:
        """Every member's id, oldest contact first, inside the caller's unit: TooManyMembers
        past [audiences] max_members, AudienceTooCostly past max_python_rows."""
        limit = self.limits.max_members
        ids = tx.audiences.member_ids(audience.project_id, self.query(audience, now),
                                      limit=limit, max_python=self.limits.max_python_rows)
        if len(ids) > limit:
            raise TooManyMembers(audience, limit)
        return ids

    async def count(self, project_id: str, audience_id: str) -> int:
        now = self._clock.now_ms()

        def read(tx: Transaction) -> int:
            audience = _existing(tx, project_id, audience_id)
            return tx.audiences.count(project_id, self.query(audience, now),
                                      max_python=self.limits.max_python_rows)
        try:
            return await self._store.read(read)
        except AudienceTooCostly as error:
            raise too_costly(error) from None

    async def members(self, project_id: str, audience_id: str, *, before: int | None,
                      limit: int) -> Page:
        now = self._clock.now_ms()

        def read(tx: Transaction) -> Page:
            audience = _existing(tx, project_id, audience_id)
            return tx.audiences.members(project_id, self.query(audience, now), before=before,
                                        limit=limit, max_python=self.limits.max_python_rows)
        try:
            return await self._store.read(read)
        except AudienceTooCostly as error:
            raise too_costly(error) from None

    # -- the stored audiences ----------------------------------------------------------------

    async def get(self, project_id: str, audience_id: str) -> Audience:
        return await self._store.read(lambda tx: _existing(tx, project_id, audience_id))

    async def page(self, project_id: str, *, before: int | None, limit: int) -> Page:
        return await self._store.read(
            lambda tx: tx.audiences.page(project_id, before=before, limit=limit))

    async def create(self, project_id: str, body: dict[str, Any]) -> Audience:
        compile_filter(body["filter"])   # 422 with paths before anything is written
        now = self._clock.now_ms()
        try:
            return await self._store.write(lambda tx: tx.audiences.create(
                project_id=project_id, name=body["name"],
                description=body.get("description", ""), filter=body["filter"], now=now))
        except NameTaken:
            raise Conflict(f"an audience named {body['name']!r} exists") from None

    async def replace(self, project_id: str, audience_id: str, body: dict[str, Any]) -> Audience:
        compile_filter(body["filter"])
        now = self._clock.now_ms()

        def unit(tx: Transaction) -> Audience:
            audience = _existing(tx, project_id, audience_id)
            return tx.audiences.update(audience, name=body["name"],
                                       description=body.get("description", ""),
                                       filter=body["filter"], now=now)
        try:
            return await self._store.write(unit)
        except NameTaken:
            raise Conflict(f"an audience named {body['name']!r} exists") from None

    async def delete(self, project_id: str, audience_id: str) -> None:
        def unit(tx: Transaction) -> None:
            audience = _existing(tx, project_id, audience_id)
            users = [w for w in tx.workflows.running(project_id)
                     if uses_audience(w.definition, audience.id, audience.name)]
            if users:
                names = ", ".join(f"{w.name} ({w.id})" for w in users)
                raise Conflict(f"active or paused workflows name this audience: {names}",
                               [{"workflow_id": w.id, "name": w.name} for w in users])
            tx.audiences.delete(audience.id)

        await self._store.write(unit)


def _existing(tx: Transaction, project_id: str, audience_id: str) -> Audience:
    audience = tx.audiences.get(project_id, audience_id)
    if audience is None or audience.id != audience_id:   # the resource path takes an id
        raise NotFound("no such audience")
    return audience
