"""The process that runs code steps' JavaScript: QuickJS (the `quickjs-ng` package), one script
at a time, each in a runtime of its own that is thrown away afterwards.

The server starts it as `python -I sandbox_worker.py MEMORY_LIMIT MAX_STACK_SIZE MAX_OUTPUT`
(`flowd.effects.sandbox` does) with an empty environment, and talks to it over stdin/stdout in
frames: a message is a fixed number of parts, each a 4-byte big-endian length and its bytes.

  worker → server, once started:   [b"ready"]
  server → worker, per script:     [timeout in ms (ASCII), source (UTF-8), input JSON (UTF-8)]
  worker → server, per script:     [b"ok", output JSON]  or  [error code, message (UTF-8)]

It imports nothing of flowd (only the standard library and quickjs), so it starts fast and
the code it runs is next to nothing but QuickJS. Why a process and not a thread: QuickJS's
time limit counts the CPU time of the whole process (C `clock()`), so in the server's process
a script's limit would fire early whenever other threads are busy — a process of its own makes
it the script's CPU time, exactly — and a crash of the interpreter takes only this process.

A script's failures are answered, never raised: `code_error` (syntax, or an uncaught throw),
`code_timeout`, `code_memory`, `code_output_too_large`. The worker exits when its stdin
closes (the server stopped, or died).
"""

from __future__ import annotations

import re
import struct
import sys
import time
from typing import BinaryIO

# The source is the body of this function: line 1 is the wrapper, the source starts on line 2.
# So a location `<input>:L:C` with L >= 2 is the source's line L - 1 (the harness below is one
# line long: its own locations are all on line 1). A source that closes the wrapper's brace
# itself is still JavaScript run in the same sandbox; it only gives its own function a funny
# shape.
PREFIX = "(function (event, contact, vars, steps) {\n"
SUFFIX = "\n})"
# Checking the syntax (flowd.effects.sandbox.syntax_error) puts this before the wrapper: the
# whole script is compiled before any of it runs, and the first statement throws, so nothing
# of the source ever runs.
CHECK_PREFIX = "throw 0; "

# Takes JSON.parse and JSON.stringify before the source can replace them, parses the input
# inside the sandbox (no host object ever enters it), calls the body and answers the JSON text
# of what it returned (undefined, a function, a symbol: nothing, the output is null).
HARNESS = (
    "((parse, stringify, Promise_) => (body, input) => { const i = parse(input); "
    "const r = body(i.event, i.contact, i.vars, i.steps); "
    "if (r instanceof Promise_) throw new TypeError("
    "'a code step returns its value: a Promise (async code) is not supported'); "
    "return r === undefined ? undefined : stringify(r); })(JSON.parse, JSON.stringify, Promise)")

MAX_MESSAGE = 1000           # characters of an error message sent back
_LOCATION = re.compile(r"<input>:(\d+):\d+")
FRAME = struct.Struct(">I")   # the length before each part of a message


def read_message(stream: BinaryIO, parts: int) -> list[bytes] | None:
    """One message of `parts` parts; None at the end of the stream."""
    message = []
    for _ in range(parts):
        header = stream.read(FRAME.size)
        if len(header) < FRAME.size:
            return None
        (size,) = FRAME.unpack(header)
        body = stream.read(size)
        if len(body) < size:
            return None
        message.append(body)
    return message


def encode_message(parts: list[bytes]) -> bytes:
    return b"".join(FRAME.pack(len(part)) + part for part in parts)


def write_message(stream: BinaryIO, parts: list[bytes]) -> None:
    stream.write(encode_message(parts))
    stream.flush()


def describe(text: str) -> str:
    """An uncaught exception as people read it: its message, and the source line it came
    from (`TypeError: cannot read property 'x' of null (line 3)`)."""
    head, _, stack = text.partition("\n    at ")
    if not stack:   # not an Error: QuickJS adds the value's (absent) stack after a newline
        head = head.removesuffix("\nundefined").rstrip("\n")
    where = ""
    for match in _LOCATION.finditer(stack):
        line = int(match.group(1))
        if line >= 2:
            where = f" (line {line - 1})"   # QuickJS's columns point at odd places
            break
    return (head[:MAX_MESSAGE] or "an exception without a message") + where


class Limits:
    def __init__(self, memory_limit: int, max_stack_size: int, max_output: int) -> None:
        self.memory_limit = memory_limit
        self.max_stack_size = max_stack_size
        self.max_output = max_output


def run(limits: Limits, timeout_ms: int, source: str, input_json: str) -> tuple[str, str]:
    """(code, text): ("ok", the output's JSON) or a failure's code and message."""
    import quickjs  # here, not at the top: the server imports this module for its constants

    budget = timeout_ms / 1000
    context = quickjs.Context()   # a runtime of its own: nothing is kept from one run to the next
    context.set_memory_limit(limits.memory_limit)
    context.set_max_stack_size(limits.max_stack_size)
    started = time.process_time()

    def left() -> float:
        # QuickJS starts the clock again at every eval or call: each gets what is left.
        return max(budget - (time.process_time() - started), 0.001)

    try:
        context.set_time_limit(left())
        harness = context.eval(HARNESS)
        context.set_time_limit(left())
        body = context.eval(PREFIX + source + SUFFIX)
        context.set_time_limit(left())
        output = harness(body, input_json)
    except quickjs.JSException as exc:
        return _failure(str(exc), time.process_time() - started, budget, limits)
    if output is None:
        return "ok", "null"
    if not isinstance(output, str):   # only if the harness were broken: say so, do not guess
        return "code_error", "the script's value could not be turned into JSON"
    size = len(output.encode())
    if size > limits.max_output:
        return "code_output_too_large", (f"the returned value is {size:,} bytes of JSON; at "
                                         f"most {limits.max_output:,} are kept")
    return "ok", output


def _failure(text: str, used: float, budget: float, limits: Limits) -> tuple[str, str]:
    # The interrupt cannot be caught by the script; an InternalError it throws itself can, and
    # comes long before its time is up.
    if text.startswith("InternalError: interrupted") and used >= budget * 0.9:
        return "code_timeout", f"the script used its {budget:g} s of CPU time and was stopped"
    # QuickJS throws null when it has no memory left even for the error (a script that throws
    # null itself is told the same: there is no telling the two apart afterwards).
    if text.startswith("InternalError: out of memory") or text.rstrip("\n") == "null":
        return "code_memory", (f"the script needed more than its {limits.memory_limit:,} bytes "
                               "of memory")
    # A string past QuickJS's longest (2^30 - 1 characters) is refused before it is allocated:
    # it is the same failure, a script asking for more memory than it may have.
    if text.startswith(("RangeError: invalid string length", "InternalError: string too long")):
        return "code_memory", ("the script asked for a string longer than the 2^30 - 1 "
                               "characters QuickJS can hold")
    return "code_error", describe(text)


def _cap_address_space(memory_limit: int) -> None:
    """A second wall behind QuickJS's own accounting: the whole process may not map more than
    it has now plus a few times the scripts' limit (Linux; elsewhere QuickJS's limit alone)."""
    try:
        import resource
        with open("/proc/self/status") as status:
            vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
        cap = vm + 4 * memory_limit + 256 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (ImportError, OSError, StopIteration, ValueError):
        pass


def main(argv: list[str]) -> int:
    limits = Limits(*(int(arg) for arg in argv[1:4]))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    # Whatever else might print goes to stderr: stdout carries frames only.
    sys.stdout = sys.stderr
    import quickjs  # noqa: F401  (now: "ready" means it is there, and its mappings are counted)
    _cap_address_space(limits.memory_limit)
    write_message(stdout, [b"ready"])
    while (request := read_message(stdin, 3)) is not None:
        timeout, source, input_json = request
        try:
            code, text = run(limits, int(timeout), source.decode(), input_json.decode())
        except MemoryError:
            code, text = "code_memory", "the script's memory could not be allocated"
        except Exception as exc:   # the worker answers every request, whatever happened
            code, text = "code_error", f"the sandbox failed: {type(exc).__name__}"
        write_message(stdout, [code.encode(), text.encode("utf-8", "replace")])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
