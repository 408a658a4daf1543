"""Schemathesis hooks for the fuzz test (loaded by `st run` through SCHEMATHESIS_HOOKS).

* Values for the document's own string formats, whose rules a JSON Schema cannot state: a time
  zone that exists, a cursor this server could have handed out.
* `positive_data_acceptance_beyond_schema` replaces schemathesis' `positive_data_acceptance`,
  identical but for one documented case: a 422 whose every problem names a rule beyond the
  schema (`details[].code`: a workflow issue, a step id the workflow does not have, a rule such
  as "contact needs contact_id" that generators do not read from `dependentSchemas`). Schema-
  valid data that the server refuses for anything else still fails the run.
* One `ast.parse` at a time: hypothesis parses source files (to describe lambdas) in
  schemathesis' worker threads, and CPython 3.11 before gh-106905's fix can fail two
  concurrent parses with a spurious "AST constructor recursion depth mismatch" SystemError —
  a crash of the tool, not a finding about flowd.
"""

from __future__ import annotations

import ast
import threading
import zoneinfo

import schemathesis
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import expand_status_codes

from flowd.store.records import encode_cursor

_parse_lock = threading.Lock()
_parse = ast.parse


def _one_parse_at_a_time(*args, **kwargs):  # type: ignore[no-untyped-def]
    with _parse_lock:
        return _parse(*args, **kwargs)


ast.parse = _one_parse_at_a_time

schemathesis.openapi.format("iana-time-zone",
                            st.sampled_from(sorted(zoneinfo.available_timezones())))
schemathesis.openapi.format("flowd-cursor",
                            st.integers(min_value=0, max_value=2**62).map(encode_cursor))


@schemathesis.check
def positive_data_acceptance_beyond_schema(ctx, response, case):  # type: ignore[no-untyped-def]
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    allowed = expand_status_codes(ctx.config.positive_data_acceptance.expected_statuses or [])
    if response.status_code in allowed:
        return None
    if response.status_code == 422:
        details = response.json()["error"]["details"]
        if details and all("code" in detail for detail in details):
            return None
    raise AssertionError(f"Schema-valid data was refused with {response.status_code} for a "
                         f"rule the schema states: {response.text[:500]}")
