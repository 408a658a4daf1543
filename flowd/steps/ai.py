"""`ai`: ask the project's language model (`ctx.effects.ai`) to generate text, decide between
options (the choice is the branch label), or extract typed fields from text.

The prompt's templates are rendered by the engine before the step runs, so what a model sees
of the contact is exactly what the prompt (and `system`) name; nothing else is attached.

Outcomes:
- an answer that fits: outcome `generated` / `decided` / `extracted`, output `{"text"}`,
  `{"choice"}` or `{"fields"}` with `model` and `usage`; `save_to` stores that value in the
  run's variables or the contact's traits, committed with the step;
- an answer that does not fit (a choice outside `options`, JSON that is not JSON, a field
  missing or of another type): asked again once, with the reason; a second miss fails the
  attempt with `ai_bad_answer` (not retried);
- no provider (neither the project's nor the server's), or a retryable provider error
  (`ai_rate_limited`, `ai_provider_error`) on the step's last attempt: outcome
  `ai_unavailable`, branch `unavailable` — mapped in `next`, or else the default path — and
  the output says why (`{"reason": <code>, "message"}`). Earlier attempts' retryable errors are
  retried per the step's `retry` (no sooner than a 429's `Retry-After`);
- `ai_unauthorized`, `ai_model_not_found`, `ai_bad_request`, `destination_not_allowed`:
  the attempt fails, not retried (a configuration to fix, not an outage to wait out).
"""

from __future__ import annotations

from typing import Any

from flowd import ai_answers
from flowd.ai_answers import FIELD_NAME, FIELD_TYPES, BadAnswer
from flowd.contact_fields import CONTACT_FIELDS
from flowd.effects.base import AI_UNAVAILABLE, AiAnswer, AiRequest, EffectFailed
from flowd.errors import Problem
from flowd.steps.base import Outcome, StepConfigError, StepContext, StepFailed, StepType
from flowd.validation import INVALID, Array, Enum, MapOf, Number, Object, String

FLAVORS = ("generate", "decide", "extract")
SAVE_TO = r"(vars|contact\.traits)\.[A-Za-z0-9_-]{1,64}"
RESERVED_OPTIONS = ("unavailable", "error", "default")
_OUTCOMES = {"generate": "generated", "decide": "decided", "extract": "extracted"}
_FIELD_NAME = String(pattern=FIELD_NAME)


class AiStep(StepType):
    name = "ai"
    summary = ("Asks the project's language model: generate text (or JSON with `fields`), "
               "decide between `options` (the choice is the branch label), or extract typed "
               "`fields` from text; `save_to` keeps the answer in vars or contact traits. "
               "Without a provider, or when it stays unreachable, the step takes its "
               "`unavailable` branch (else the default path).")
    branches = ("unavailable",)   # and, for decide, its options: see branch_labels()
    optional_branches = ("unavailable",)
    calls_out = True
    schema = Object({
        "flavor": Enum(FLAVORS),
        "prompt": String(min_len=1, max_len=32_000, description=(
            "Templated; the only contact data sent is what its templates name.")),
        "system": String(max_len=32_000, description="Instructions before the prompt."),
        "options": Array(String(min_len=1, max_len=100), min_items=2, max_items=50,
                         description="decide: the choices, each a branch label of `next`."),
        "fields": MapOf(Enum(FIELD_TYPES), max_keys=50, description=(
            "extract (and generate, for a JSON answer): field name → type; a trailing `?` "
            "allows null.")),
        "save_to": String(pattern=SAVE_TO, pattern_message=(
            "must be vars.<name> or contact.traits.<name>"), description=(
            "vars.<name> or contact.traits.<name>: where the text, the choice or the fields "
            "object is stored.")),
        "model": String(min_len=1, max_len=200, description="Overrides the configured model."),
        "temperature": Number(min=0, max=2),
    }, required=("flavor", "prompt"))

    def compile(self, config: dict[str, Any], path: str) -> None:
        flavor = config["flavor"]
        issues: list[tuple[str, Problem]] = []
        if flavor == "decide" and "options" not in config:
            issues.append(("missing_config", Problem(f"{path}.options",
                                                     "decide needs its options")))
        if flavor == "extract" and not config.get("fields"):
            issues.append(("missing_config", Problem(f"{path}.fields",
                                                     "extract needs the fields to extract")))
        if flavor != "decide" and "options" in config:
            issues.append(("invalid_config", Problem(f"{path}.options",
                                                     "only decide takes options")))
        if flavor == "decide" and "fields" in config:
            issues.append(("invalid_config", Problem(f"{path}.fields",
                                                     "decide answers with one of its options")))
        options = config.get("options") or []
        for i, option in enumerate(options):
            if option in RESERVED_OPTIONS or option in options[:i]:
                issues.append(("invalid_config", Problem(
                    f"{path}.options[{i}]", f"option {option!r} is reserved or repeated")))
        for name in config.get("fields") or {}:
            if _FIELD_NAME.validate(name, "", []) is INVALID:
                issues.append(("invalid_config", Problem(
                    f"{path}.fields.{name}", "a field name is a letter or _ then letters, "
                    "digits or _ (at most 64)")))
        if issues:
            raise StepConfigError(issues)

    def branch_labels(self, config: dict[str, Any]) -> tuple[str, ...]:
        options = config.get("options")
        labels = tuple(o for o in options if isinstance(o, str)) if isinstance(
            options, list) else ()
        return (*labels, *self.branches)

    async def run(self, ctx: StepContext) -> Outcome:
        config = ctx.config
        if ctx.effects.ai is None:
            return _unavailable(AI_UNAVAILABLE, "this server has no AI effect")
        if config.get("save_to", "").startswith("contact.") and ctx.contact_id is None:
            raise StepFailed("no_contact", "this run has no contact to save the answer to",
                             retryable=False)
        try:
            value, answer, usage = await _ask(ctx, config)
        except EffectFailed as exc:
            if exc.code == AI_UNAVAILABLE or (exc.retryable and ctx.final_attempt):
                return _unavailable(exc.code, exc.message)
            raise
        key = "choice" if config["flavor"] == "decide" else (
            "fields" if ai_answers.wants_json(config) else "text")
        outcome = Outcome(_OUTCOMES[config["flavor"]],
                          branch=value if key == "choice" else None,
                          output={key: value, "model": answer.model, "usage": usage})
        _save(outcome, config.get("save_to"), value)
        return outcome


async def _ask(ctx: StepContext, config: dict[str, Any]) -> tuple[Any, AiAnswer, dict[str, int]]:
    """The checked answer, the answer it came in, and the tokens of both calls."""
    assert ctx.effects.ai is not None
    messages = ai_answers.messages(config)
    request = AiRequest(tuple(messages), json_schema=ai_answers.answer_schema(config),
                        model=config.get("model"), temperature=config.get("temperature"))
    answer = await ctx.effects.ai.complete(ctx.project_id, request)
    try:
        return ai_answers.check(config, answer.content), answer, answer.usage
    except BadAnswer as exc:
        first_problem = str(exc)
    again = AiRequest((*request.messages, {"role": "assistant", "content": answer.content},
                       {"role": "user", "content": ai_answers.corrective(config, first_problem)}),
                      json_schema=request.json_schema, model=request.model,
                      temperature=request.temperature)
    second = await ctx.effects.ai.complete(ctx.project_id, again)
    usage = {k: answer.usage.get(k, 0) + second.usage.get(k, 0)
             for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    try:
        return ai_answers.check(config, second.content), second, usage
    except BadAnswer as exc:
        raise StepFailed("ai_bad_answer", f"the model's answer did not fit, twice: {exc}",
                         retryable=False, output={
                             "answer": second.content[:ai_answers.SHOWN_ANSWER_CHARS],
                             "model": second.model, "usage": usage}) from None


def _unavailable(code: str, message: str) -> Outcome:
    return Outcome(AI_UNAVAILABLE, branch="unavailable",
                   output={"reason": code, "message": message})


def _save(outcome: Outcome, save_to: str | None, value: Any) -> None:
    if not save_to:
        return
    if save_to.startswith("vars."):
        outcome.vars_patch = {save_to.removeprefix("vars."): value}
        return
    patch = CONTACT_FIELDS.validate({"traits": {save_to.removeprefix("contact.traits."): value}},
                                    "save_to", [])
    if patch is INVALID:   # a value no trait can hold (nested too deep)
        raise StepFailed("invalid_contact_value", "the answer cannot be stored as a trait",
                         retryable=False)
    outcome.contact_patch = patch
