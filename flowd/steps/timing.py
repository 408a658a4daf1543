"""`wait` and `wait_for_event`: the steps that hand the run back to the store until later."""

from __future__ import annotations

from typing import Any

from flowd.conditions import CONDITION, ConditionError, compile_condition
from flowd.durations import parse_duration
from flowd.errors import Problem
from flowd.steps.base import Outcome, StepConfigError, StepContext, StepFailed, StepType
from flowd.templates import has_templates
from flowd.timeutil import deadline, format_ms, parse_time
from flowd.validation import Object, String, text
from flowd.waits import EventWaitSpec, Wait, WaitKind, Wake, WakeReason


def check_duration(config: dict[str, Any], key: str, path: str,
                   issues: list[tuple[str, Problem]]) -> None:
    value = config.get(key)
    if isinstance(value, str) and not has_templates(value):
        try:
            parse_duration(value)
        except ValueError as exc:
            issues.append(("invalid_duration", Problem(f"{path}.{key}", str(exc))))


def duration_at_run_time(config: dict[str, Any], key: str) -> int | None:
    value = config.get(key)
    if value is None:
        return None
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise StepFailed("invalid_duration", f"{key}: {exc}", retryable=False) from None


class WaitStep(StepType):
    name = "wait"
    summary = "Waits for a duration, or until a time."
    waits = True
    schema = Object({"duration": String(min_len=1), "until": String(min_len=1)})

    def compile(self, config: dict[str, Any], path: str) -> None:
        issues: list[tuple[str, Problem]] = []
        if ("duration" in config) == ("until" in config):
            issues.append(("missing_config", Problem(
                path, 'needs exactly one of "duration" (e.g. PT1H) or "until" (a time)')))
        check_duration(config, "duration", path, issues)
        until = config.get("until")
        if isinstance(until, str) and not has_templates(until):
            try:
                parse_time(until)
            except ValueError as exc:
                issues.append(("invalid_config", Problem(f"{path}.until", str(exc))))
        if issues:
            raise StepConfigError(issues)

    async def run(self, ctx: StepContext) -> Outcome:
        if "duration" in ctx.config:
            until = deadline(ctx.now_ms, duration_at_run_time(ctx.config, "duration") or 0)
        else:
            try:
                until = parse_time(str(ctx.config["until"]))
            except ValueError as exc:
                raise StepFailed("invalid_time", f"until: {exc}", retryable=False) from None
        if until <= ctx.now_ms:
            return Outcome("no_wait", output={"until": format_ms(until)})
        return Outcome("waiting", wait=Wait(WaitKind.TIMER, until=until))

    def resume(self, ctx: StepContext, wake: Wake) -> Outcome:
        return Outcome("waited", output={"waited_until": format_ms(ctx.now_ms)})


class WaitForEventStep(StepType):
    name = "wait_for_event"
    summary = ("Waits for an event of the run's contact (`event`), or gives up after "
               "`timeout` (`timeout`).")
    waits = True
    branches = ("event", "timeout")
    schema = Object({"event": text(1, 200), "filter": CONDITION,
                     "timeout": String(min_len=1), "lookback": String(min_len=1)},
                    required=("event",))

    def compile(self, config: dict[str, Any], path: str) -> None:
        issues: list[tuple[str, Problem]] = []
        check_duration(config, "timeout", path, issues)
        check_duration(config, "lookback", path, issues)
        if "filter" in config:
            try:
                compile_condition(config["filter"], f"{path}.filter")
            except ConditionError as exc:
                issues += [("invalid_condition", p) for p in exc.problems]
        if issues:
            raise StepConfigError(issues)

    async def run(self, ctx: StepContext) -> Outcome:
        timeout = duration_at_run_time(ctx.config, "timeout")
        lookback = duration_at_run_time(ctx.config, "lookback") or 0
        # The filter is kept raw: the event is matched inside the transaction that stores it.
        pattern = str(ctx.config["event"])
        spec = EventWaitSpec(pattern, ctx.config.get("filter"),
                             min(ctx.entered_at or ctx.now_ms, ctx.now_ms) - lookback)
        until = deadline(ctx.now_ms, timeout) if timeout is not None else None
        return Outcome("waiting", wait=Wait(WaitKind.EVENT, until=until, event=pattern),
                       event_wait=spec)

    def resume(self, ctx: StepContext, wake: Wake) -> Outcome:
        if wake.reason is WakeReason.EVENT:
            return Outcome("event", branch="event", output=wake.event)
        return Outcome("timeout", branch="timeout")
