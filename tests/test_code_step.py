"""The `code` step: JavaScript in QuickJS worker processes (flowd.effects.sandbox).

Through the API: what a script sees and returns, failures as distinct codes in the trace, a
script that loops for ever while the server goes on answering, the syntax check on save, and
the dry run. Against the sandbox itself: memory and stack limits, escapes tried and refused,
nothing kept from one run to the next, and a worker that overruns its wall-clock bound killed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from flowd.effects.base import EffectFailed
from flowd.effects.sandbox import ProcessSandbox, SandboxLimits
from tests.conftest import Api

INPUT = json.dumps({"event": {"properties": {"n": 2}}, "contact": {"id": "ada"}, "vars": {},
                    "steps": {}})


@pytest.fixture
async def sandbox():
    box = ProcessSandbox(SandboxLimits(workers=1, memory_limit=32 << 20,
                                       max_stack_size=256 << 10, max_timeout_ms=10_000))
    yield box
    await box.close()


async def outcome(box: ProcessSandbox, source: str, timeout_ms: int = 1000) -> tuple[str, Any]:
    """("ok", the output) or (the failure's code, its message)."""
    try:
        return "ok", json.loads(await box.run(source, INPUT, timeout_ms))
    except EffectFailed as exc:
        assert not exc.retryable, exc.code
        return exc.code, exc.message


async def fire(api: Api, steps: list[dict[str, Any]], payload: dict[str, Any] | None = None,
               contact_id: str = "ada") -> dict[str, Any]:
    workflow = await api.workflow({"trigger": {"type": "manual"}, "steps": steps})
    status, run = await api.post(f"/v1/workflows/{workflow['id']}/runs",
                                 json={"contact_id": contact_id, "payload": payload or {}})
    assert status == 201, run
    return run


def code(step_id: str, source: str, **config: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "code",
            "config": {"language": "javascript", "source": source, **config}}


# ----------------------------------------------------------------------------- through the API


async def test_a_script_builds_its_output_from_the_run_data(api: Api) -> None:
    status, _ = await api.put("/v1/contacts/ada", json={"traits": {"plan": "pro"}})
    assert status in (200, 201)
    source = ("// {{ contact.id }} is JavaScript here, not a template\n"
              "const seen = '{{ vars.x }}';\n"
              "return {total: event.properties.n * vars.k, plan: contact.traits.plan,\n"
              "        before: steps.first.k, seen, keys: Object.keys(steps)};")
    run = await fire(api, [{"id": "first", "type": "set", "config": {"vars": {"k": 21}}},
                           code("calc", source), code("nothing", "let x = 1;")],
                     payload={"n": 2})
    done = await api.run_until(run["id"], "completed", "failed")
    assert done["status"] == "completed", done
    calc, nothing = done["steps"][1], done["steps"][2]
    assert calc["output"] == {"total": 42, "plan": "pro", "before": 21, "seen": "{{ vars.x }}",
                              "keys": ["first"]}
    assert calc["outcome"] == "returned" and calc["input"]["source"] == source
    assert nothing["output"] is None      # undefined: no output


async def test_failures_are_distinct_codes_in_the_trace_and_never_retried(api: Api) -> None:
    retry = {"max_attempts": 3, "backoff": "PT0.01S"}
    run = await fire(api, [
        {**code("throws", "const a = 1;\nthrow new Error('no ' + a)"), "retry": retry,
         "on_error": "continue"},
        {**code("big", "return 'x'.repeat(1100000)"), "on_error": "continue"},
        {**code("huge", 'return "x".repeat(1 << 30)'), "on_error": "continue"},
        {**code("deep", "function f(n) { return f(n + 1) + 1 }\nreturn f(0)"),
         "on_error": "continue"},
        code("after", "return 'still here'")])
    done = await api.run_until(run["id"], "completed", "failed")
    assert done["status"] == "completed", done
    errors = {e["step_id"]: (e["attempt"], e["error"]) for e in done["steps"] if e["error"]}
    assert errors["throws"][0] == 1      # a script's failure is not retried
    assert errors["throws"][1] == {"code": "code_error", "message": "Error: no 1 (line 2)"}
    assert errors["big"][1]["code"] == "code_output_too_large"
    assert "1,100,002 bytes" in errors["big"][1]["message"]
    assert errors["huge"][1]["code"] == "code_memory"
    assert errors["deep"][1]["code"] == "code_error"
    assert "Maximum call stack size exceeded" in errors["deep"][1]["message"]
    assert done["steps"][-1]["output"] == "still here"


async def test_a_script_that_loops_for_ever_is_stopped_while_the_server_answers(api: Api) -> None:
    run = await fire(api, [code("spin", "for (;;) {}", timeout="PT1S")])
    answered_while_running = 0
    while (current := await api.run(run["id"]))["status"] in ("pending", "running"):
        async with api.client.get("/healthz") as response:
            assert response.status == 200
            answered_while_running += 1
        await asyncio.sleep(0.02)
    assert answered_while_running > 0    # the event loop was never held by the script
    assert current["status"] == "failed"
    assert current["error"]["code"] == "code_timeout"
    assert "1 s of CPU time" in current["error"]["message"]
    # The worker came back: the next script runs on it.
    again = await fire(api, [code("ok", "return 1")], contact_id="bob")
    assert (await api.run_until(again["id"], "completed"))["steps"][0]["output"] == 1


async def test_a_syntax_error_is_an_issue_on_save(api: Api) -> None:
    status, body = await api.post("/v1/workflows", json={
        "name": "typo", "trigger": {"type": "manual"},
        "steps": [code("a", "const x = 1;\nreturn {x: }"),
                  code("b", 'import * as std from "std";\nreturn 1'),
                  code("c", "return 1", timeout="PT0S")]})
    assert status == 201, body
    issues = {(i["path"], i["code"]): i["message"] for i in body["issues"]}
    assert issues[("steps[0].config.source", "invalid_config")].startswith("SyntaxError")
    assert "(line 2)" in issues[("steps[0].config.source", "invalid_config")]
    assert issues[("steps[1].config.source", "invalid_config")].startswith("SyntaxError")
    assert ("steps[2].config.timeout", "invalid_config") in issues
    assert not any(i["code"] == "unknown_field" for i in body["issues"])   # not templates
    status, body = await api.post("/v1/workflows", json={
        "name": "typo", "status": "active", "trigger": {"type": "manual"},
        "steps": [code("a", "return {x: }")]})
    assert status == 422, body


async def test_a_test_run_runs_the_script_and_lists_no_effect(api: Api) -> None:
    status, result = await api.post("/v1/workflows/test-run", json={"definition": {
        "trigger": {"type": "manual"}, "steps": [code("calc", "return {n: event.properties.n + 1}")]},
        "event": {"properties": {"n": 41}}})
    assert status == 200, result
    assert result["trace"][0]["output"] == {"n": 42}
    assert result["effects"] == []


# ----------------------------------------------------------------------------- the sandbox


async def test_memory_and_stack_limits_fail_the_script_not_the_process(sandbox) -> None:
    # A real 1 GB string (the longest QuickJS has), and one past that length.
    assert (await outcome(sandbox, 'return "x".repeat((1 << 30) - 1).length'))[0] == "code_memory"
    assert (await outcome(sandbox, 'return "x".repeat(1 << 30)'))[0] == "code_memory"
    assert (await outcome(sandbox, "const a = []; for (;;) a.push({n: a.length})"))[0] == \
        "code_memory"
    assert (await outcome(sandbox, "new ArrayBuffer(1 << 30)"))[0] == "code_memory"
    code_, message = await outcome(sandbox, "const f = n => f(n + 1) + 1;\nreturn f(0)")
    assert code_ == "code_error" and "Maximum call stack size exceeded (line 1)" in message
    assert await outcome(sandbox, "return event.properties.n") == ("ok", 2)   # still serving


async def test_escapes_are_refused(sandbox) -> None:
    refused = {
        "require('fs')": "ReferenceError: require is not defined",
        "fetch('http://127.0.0.1/')": "ReferenceError: fetch is not defined",
        "new XMLHttpRequest()": "ReferenceError: XMLHttpRequest is not defined",
        "return process.env": "ReferenceError: process is not defined",
        "return std.open('/etc/passwd', 'r')": "ReferenceError: std is not defined",
        "return os.exec(['id'])": "ReferenceError: os is not defined",
        "return Deno.readTextFileSync('/etc/passwd')": "ReferenceError: Deno is not defined",
        'import * as std from "std";\nreturn 1': "SyntaxError",
    }
    for source, expected in refused.items():
        code_, message = await outcome(sandbox, source)
        assert (code_, message.startswith(expected)) == ("code_error", True), (source, message)
    # import() makes a promise that never loads anything: no module loader exists.
    code_, message = await outcome(sandbox, "return import('std')")
    assert (code_, "Promise" in message) == ("code_error", True)
    # Nothing of the host among the globals: the ECMAScript built-ins only.
    ok, names = await outcome(sandbox, "return Object.getOwnPropertyNames(globalThis)")
    assert ok == "ok" and set(names) <= ECMASCRIPT_GLOBALS, set(names) - ECMASCRIPT_GLOBALS


async def test_nothing_is_kept_from_one_run_to_the_next(sandbox) -> None:
    polluted = ("Object.prototype.polluted = 1; event.__proto__.viaInput = 1;\n"
                "Array.prototype.push = null; JSON.stringify = () => 'hijacked';\n"
                "globalThis.leak = 'kept?'; return 1")
    assert await outcome(sandbox, polluted) == ("ok", 1)   # its own harness kept JSON safe
    seen = await outcome(sandbox, "return [({}).polluted, ({}).viaInput, typeof leak, "
                                  "typeof [].push]")
    assert seen == ("ok", [None, None, "undefined", "function"])


async def test_a_worker_past_its_wall_clock_bound_is_killed_and_replaced() -> None:
    class Impatient(SandboxLimits):
        def wall_timeout(self, timeout_ms: int) -> float:
            return 0.2   # far less than the script's CPU time: the server gives up first

    box = ProcessSandbox(Impatient(workers=1, memory_limit=32 << 20, max_stack_size=256 << 10,
                                   max_timeout_ms=10_000))
    try:
        assert (await outcome(box, "for (;;) {}", timeout_ms=5000))[0] == "code_timeout"
        assert not box._idle and not box._live    # killed and reaped, not handed out again
        assert await outcome(box, "return 7") == ("ok", 7)   # a new worker
    finally:
        await box.close()


ECMASCRIPT_GLOBALS = {
    "Object", "Function", "Array", "Number", "parseFloat", "parseInt", "Infinity", "NaN",
    "undefined", "Boolean", "String", "Symbol", "Date", "Promise", "RegExp", "Error",
    "AggregateError", "EvalError", "RangeError", "ReferenceError", "SyntaxError", "TypeError",
    "URIError", "InternalError", "SuppressedError", "globalThis", "JSON", "Math", "Intl",
    "ArrayBuffer", "SharedArrayBuffer", "Atomics", "DataView", "Uint8Array", "Int8Array",
    "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array",
    "Float16Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array", "Map",
    "BigInt", "Set", "WeakMap", "WeakSet", "WeakRef", "FinalizationRegistry", "Proxy", "Reflect",
    "decodeURI", "decodeURIComponent", "encodeURI", "encodeURIComponent", "escape", "unescape",
    "eval", "isFinite", "isNaN", "Iterator", "DisposableStack", "AsyncDisposableStack",
    "queueMicrotask",
    # Web-platform names QuickJS-ng adds, none of which reaches outside the runtime: an error
    # class, base64, and a clock.
    "DOMException", "btoa", "atob", "performance",
}
