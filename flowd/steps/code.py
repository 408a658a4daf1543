"""`code`: a JavaScript function body run in the sandbox (`ctx.effects.sandbox`); the JSON it
returns is the step's output.

The body sees `event`, `contact` (null for a run without one), `vars` and `steps` — the run's
data as templates see it, handed over as JSON — and nothing else. Its source is never a
template (`{{` is JavaScript there). The source's syntax is checked when the workflow is saved
(compiled, never run: flowd.effects.sandbox.syntax_error), so a typo is an issue on save, not a
failed run.

A script's failures are the sandbox's (`code_error`, `code_timeout`, `code_memory`,
`code_output_too_large`) and none is retried: the same source on the same data fails the same
way. `on_error` and an `error` branch still apply, as to any failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flowd.durations import parse_duration
from flowd.effects.sandbox import syntax_error
from flowd.errors import Problem
from flowd.steps.base import Outcome, StepConfigError, StepContext, StepFailed, StepType
from flowd.validation import MAX_JSON_DEPTH, Enum, Json, Object, String

DEFAULT_TIMEOUT_MS = 1000
# The most a step may ask for; the server cuts it further to its [code] max_timeout.
MAX_TIMEOUT_MS = 300_000
MAX_SOURCE_CHARS = 100_000
RECORDED_SOURCE_CHARS = 1000   # a longer source is not repeated in every visit's trace entry

# ASCII: JavaScript reads every escape, an unpaired surrogate in the run's data included.
_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode
_ANY_JSON = Json()   # its check bounds the output's depth as any JSON in a definition is


@dataclass(frozen=True)
class CompiledCode:
    timeout_ms: int


class CodeStep(StepType):
    name = "code"
    summary = ("Runs a JavaScript function body in a sandbox with event, contact, vars and "
               "steps; the JSON it returns is the output.")
    calls_out = True      # awaits a worker process: under the engine's step timeout
    reads_scope = True    # the script reads the run's data (and its contact)
    literal = frozenset({"language", "source", "timeout"})
    schema = Object({
        "language": Enum(("javascript",)).described("The only one: javascript (the default)."),
        "source": String(min_len=1, max_len=MAX_SOURCE_CHARS).described(
            "The body of a function of (event, contact, vars, steps): `return {…}`. Not a "
            "template."),
        "timeout": String(min_len=1).described(
            "CPU time the script may use (ISO 8601 duration, default PT1S; at most the "
            "server's [code] max_timeout)."),
    }, required=("source",))

    def compile(self, config: dict[str, Any], path: str) -> CompiledCode:
        issues: list[tuple[str, Problem]] = []
        timeout_ms = DEFAULT_TIMEOUT_MS
        if "timeout" in config:
            try:
                timeout_ms = parse_duration(config["timeout"])
            except ValueError as exc:
                issues.append(("invalid_duration", Problem(f"{path}.timeout", str(exc))))
            else:
                if not 0 < timeout_ms <= MAX_TIMEOUT_MS:
                    issues.append(("invalid_config", Problem(
                        f"{path}.timeout", "must be longer than zero and at most PT5M")))
        problem = syntax_error(config["source"])
        if problem is not None:
            issues.append(("invalid_config", Problem(f"{path}.source", problem)))
        if issues:
            raise StepConfigError(issues)
        return CompiledCode(timeout_ms)

    def recorded_input(self, config: dict[str, Any]) -> Any:
        source = config.get("source")
        if isinstance(source, str) and len(source) > RECORDED_SOURCE_CHARS:
            return {**config, "source": f"[{len(source):,} characters]"}
        return config

    async def run(self, ctx: StepContext) -> Outcome:
        sandbox = ctx.effects.sandbox
        if sandbox is None:
            raise StepFailed("sandbox_unavailable", "this server has no code sandbox",
                             retryable=False)
        roots = ctx.scope.roots
        payload = _dumps({"event": roots.get("event"),
                          "contact": roots.get("contact") if ctx.contact_id else None,
                          "vars": roots.get("vars") or {}, "steps": roots.get("steps") or {}})
        text = await sandbox.run(ctx.config["source"], payload, ctx.compiled.timeout_ms)
        problems: list[Problem] = []
        try:
            output = _ANY_JSON.validate(json.loads(text), "output", problems)
        except RecursionError:   # deeper than Python's own parser goes
            problems.append(Problem("output", "too deep"))
        if problems:
            raise StepFailed("code_error", f"the returned value nests deeper than "
                             f"{MAX_JSON_DEPTH} levels", retryable=False)
        return Outcome("returned", output=output)
