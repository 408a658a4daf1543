"""Composing a workflow from a prompt (`POST /v1/workflows` with `{"name", "prompt"}`): the
project's language model gets the step-type and trigger-type catalogue (the schemas the server
validates with: flowd.catalogue) and the prompt, and answers with a definition as JSON. The
answer is checked as a request would be (the shape) and as a saved workflow is (its error
issues); if anything is wrong, the model gets the problems and its answer back once to repair
it. What comes out is saved as a draft by the caller — never active.

After the repair, an answer that is not a JSON object at all is `AiBadAnswer` (422
`ai_bad_answer`). A JSON object with parts that do not fit the request shape is kept as far as
it fits: such a trigger or settings become the defaults, such a step is left out, and each
left-out part is a `composed_part_dropped` warning on the draft; what then cannot run is the
draft's `issues`, as for any draft.

Provider failures are not retried here (the client may simply ask again): no provider is
`AiUnavailable` (422 `ai_unavailable`); `ai_rate_limited` is 429 `rate_limited` with the
provider's `Retry-After` (else 60 s); any other provider error (unauthorized, model not found,
timeout, 5xx, a refused destination) is 503 `unavailable` whose message names the code.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from flowd.ai_answers import unfenced
from flowd.catalogue import step_types, trigger_types
from flowd.definition_schema import DEFINITION_FIELDS, MAX_STEPS, STEP
from flowd.definitions import Issue, analyze, normalize
from flowd.effects.base import AI_UNAVAILABLE, Ai, AiAnswer, AiRequest, EffectFailed
from flowd.errors import (
    AiBadAnswer,
    AiUnavailable,
    FlowdError,
    Problem,
    RateLimited,
    Unavailable,
)
from flowd.validation import INVALID

MAX_PROMPT_CHARS = 4000      # reference 001's limit
MAX_PROBLEMS_SHOWN = 50      # fed back to the model for the repair
DEFAULT_RETRY_AFTER_S = 60
SHOWN_ANSWER_CHARS = 500


@dataclass
class Composed:
    """A definition to save as a draft: `trigger`, `settings`, `steps` (each of the request's
    shape), the model's one-line `description`, warnings for parts left out, and what the
    model calls cost."""

    definition: dict[str, Any]
    description: str
    dropped: list[Issue] = field(default_factory=list)
    model: str = ""
    usage: dict[str, int] = field(default_factory=dict)


class Composer:
    def __init__(self, ai: Ai) -> None:
        self._ai = ai

    async def compose(self, project_id: str, prompt: str) -> Composed:
        messages = [{"role": "system", "content": _instructions()},
                    {"role": "user", "content": prompt}]
        first = await self._ask(project_id, messages)
        answer, problems = _judge(first.content)
        last, usage = first, first.usage
        if problems:
            repair = [*messages, {"role": "assistant", "content": first.content},
                      {"role": "user", "content": _repair_request(problems)}]
            last = await self._ask(project_id, repair)
            usage = {k: first.usage.get(k, 0) + last.usage.get(k, 0) for k in first.usage}
            answer, problems = _judge(last.content)
        if answer is None:
            raise AiBadAnswer("the model's answer is not a workflow definition, even after it "
                              f"was asked to repair it: {problems[0]}",
                              [{"path": "prompt", "message": problems[0], "code": "ai_bad_answer",
                                "answer": last.content[:SHOWN_ANSWER_CHARS]}])
        definition, description, dropped = _salvage(answer)
        return Composed(definition, description, dropped, last.model, usage)

    async def _ask(self, project_id: str, messages: list[dict[str, str]]) -> AiAnswer:
        try:
            return await self._ai.complete(project_id, AiRequest(tuple(messages),
                                                                 json_schema={}))
        except EffectFailed as exc:
            raise _http_error(exc) from None


def _http_error(exc: EffectFailed) -> FlowdError:
    if exc.code == AI_UNAVAILABLE:
        return AiUnavailable(exc.message, [Problem("prompt", exc.message, AI_UNAVAILABLE)])
    if exc.code == "ai_rate_limited":
        seconds = (math.ceil(exc.retry_after_ms / 1000) if exc.retry_after_ms
                   else DEFAULT_RETRY_AFTER_S)
        return RateLimited(f"the AI provider is rate-limiting: {exc.message}", max(1, seconds))
    return Unavailable(f"the AI provider could not compose the workflow ({exc.code}): "
                       f"{exc.message}")


@cache
def _instructions() -> str:
    """The system message: what to answer, and the catalogue (the same for every call)."""
    steps = [{k: item[k] for k in ("name", "description", "branches", "config_schema")}
             for item in step_types()]
    triggers = [{k: item[k] for k in ("name", "description", "config_schema")}
                for item in trigger_types()]
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    return f"""You design workflows for flowd, a server that runs event-triggered journeys \
for contacts. Answer with one JSON object and nothing else:
{{"description": "<one sentence>", "trigger": <trigger>, "settings": {{"reentry": \
"once" | "after_completion" | "always"}}, "steps": [<step>, ...]}}
A step is {{"id": "<1-64 letters, digits, _ or ->", "type": "<step type>", "config": {{...}}, \
"next": ...}}. `next` absent: the following step in the list; null: the run ends; a step id; \
or an object mapping branch labels (the type's branches, "default", "error") to step ids.
Strings in a config may hold templates: {{{{ contact.email }}}}, \
{{{{ contact.traits.first_name | default: "there" }}}}, {{{{ event.properties.amount }}}}, \
{{{{ vars.name }}}}, {{{{ steps.<id>.<field> }}}}. A condition is {{"field": \
"event.properties.amount", "op": "gt", "value": 40}}, or {{"all": [...]}}, {{"any": [...]}}, \
{{"not": ...}}. Durations are ISO 8601 (PT1H, P3D).
Step types (config_schema is the JSON Schema of a step's `config`): {dumps(steps)}
Trigger types (config_schema is the whole trigger object): {dumps(triggers)}"""


def _repair_request(problems: list[str]) -> str:
    shown = problems[:MAX_PROBLEMS_SHOWN]
    more = len(problems) - len(shown)
    listed = "\n".join(f"- {p}" for p in shown) + (f"\n- … and {more} more" if more else "")
    return (f"That workflow cannot be used yet:\n{listed}\nAnswer with the whole corrected "
            "workflow as one JSON object in the same form, and nothing else.")


def _judge(content: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The answer as a JSON object (None if it is not one) and what is wrong with it: its
    shape's problems, else the error issues of it as a saved workflow."""
    try:
        answer = json.loads(unfenced(content))
    except ValueError as exc:
        return None, [f"the answer is not JSON ({exc})"]
    if not isinstance(answer, dict):
        return None, ["the answer is JSON but not an object"]
    shape: list[Problem] = []
    for key in ("trigger", "settings", "steps"):
        if key in answer:
            DEFINITION_FIELDS[key].validate(answer[key], key, shape)
    if "steps" not in answer:
        shape.append(Problem("steps", "is required"))
    if shape:
        return answer, [f"{p.path}: {p.message}" for p in shape]
    _, issues = analyze(normalize(answer))
    return answer, [f"{i.path}: {i.code}: {i.message}" for i in issues if i.severity == "error"]


def _salvage(answer: dict[str, Any]) -> tuple[dict[str, Any], str, list[Issue]]:
    """The parts of the answer that fit the request shape; a warning for each left out."""
    dropped: list[Issue] = []

    def keep(key: str, schema: Any, value: Any, default: Any) -> Any:
        problems: list[Problem] = []
        out = schema.validate(value, key, problems)
        if out is INVALID:
            dropped.append(_dropped(key, f"left out ({problems[0].path}: {problems[0].message})"))
            return default
        return out

    trigger = keep("trigger", DEFINITION_FIELDS["trigger"], answer.get("trigger"),
                   {"type": "manual"}) if "trigger" in answer else {"type": "manual"}
    settings = keep("settings", DEFINITION_FIELDS["settings"], answer.get("settings"),
                    {}) if "settings" in answer else {}
    raw_steps = answer.get("steps")
    steps: list[Any] = []
    if not isinstance(raw_steps, list):
        dropped.append(_dropped("steps", "left out: the answer has no list of steps"))
        raw_steps = []
    for i, raw in enumerate(raw_steps[:MAX_STEPS]):
        step = keep(f"steps[{i}]", STEP, raw, None)
        if step is not None:
            steps.append(step)
    if len(raw_steps) > MAX_STEPS:
        dropped.append(_dropped("steps", f"steps after the first {MAX_STEPS} were left out"))
    description = answer.get("description")
    if not isinstance(description, str) or len(description) > 5000:
        description = ""
    return {"trigger": trigger, "settings": settings, "steps": steps}, description, dropped


def _dropped(path: str, message: str) -> Issue:
    return Issue("warning", "composed_part_dropped", f"the model's {path} was {message}", path)
