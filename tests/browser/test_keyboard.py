"""A keyboard-only pass: sign in, create a workflow, add its first step on the canvas and
activate it without touching the mouse — Tab, typing and Enter only — with the focus visible
on every control it stops at."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import unique
from tests.e2e.conftest import ServerProcess

MAX_TABS = 80


def tab_to(page: Any, *, css: str | None = None, text: str | None = None) -> None:
    """Press Tab until the focused element matches `css` or has the text `text`."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        found = page.evaluate("""([css, text]) => {
            const el = document.activeElement;
            if (!el || el === document.body) return false;
            return css ? el.matches(css) : el.textContent.trim() === text;
        }""", [css, text])
        if found:
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", f"no visible focus on {css or text}"
            return
    raise AssertionError(f"Tab never reached {css or text}")


def test_create_add_a_step_and_activate_with_the_keyboard_only(page: Any,
                                                               flowd: ServerProcess) -> None:
    name = unique("Keyboard only")
    page.goto("/#/signin")
    page.wait_for_selector("main[data-view=signin][data-ready]")
    tab_to(page, css='input[name="key"]')
    page.keyboard.type(flowd.key)
    page.keyboard.press("Enter")
    page.wait_for_selector("main[data-view=workflows][data-ready]")

    tab_to(page, text="New workflow")
    page.keyboard.press("Enter")
    tab_to(page, css='input[name="name"]')
    page.keyboard.type(name)
    tab_to(page, css='input[name="event"]')
    page.keyboard.type("keyboard.done")
    page.keyboard.press("Enter")
    page.wait_for_selector("main[data-view=editor][data-ready] .graph-node")

    tab_to(page, css='.graph-node[data-step-id="trigger"]')
    page.keyboard.press("Enter")
    tab_to(page, css='select[name="new_type"]')
    page.keyboard.type("exit")   # a select picks the option that starts with what is typed
    tab_to(page, text="Add step")
    page.keyboard.press("Enter")
    page.wait_for_selector(".graph-node:not([data-step-id=trigger])")

    tab_to(page, css='[data-action="activate"]')
    page.keyboard.press("Enter")
    page.wait_for_selector(".editor-meta .status-active")

    found = [w for w in flowd.list_all("/v1/workflows") if w["name"] == name]
    assert len(found) == 1
    workflow = flowd.get(f"/v1/workflows/{found[0]['id']}").body
    assert workflow["status"] == "active"
    assert workflow["trigger"] == {"type": "event", "event": "keyboard.done"}
    assert [step["type"] for step in workflow["steps"]] == ["exit"]
