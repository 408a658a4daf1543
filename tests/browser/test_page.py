"""The page as a whole: its weight, its Content Security Policy at work, and that it loads with
no error on any view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.conftest import PageProblems

STATIC = Path(__file__).resolve().parents[2] / "static"
WEIGHT_BUDGET = 200 * 1024   # issue 13: all static files, uncompressed


def test_all_static_files_together_stay_within_the_page_weight_budget() -> None:
    files = sorted(p for p in STATIC.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    print(f"\npage weight: {total / 1024:.1f} KiB in {len(files)} files (budget 200 KiB)")
    assert total <= WEIGHT_BUDGET


def test_the_policy_refuses_a_script_injected_into_the_page(admin_page: Any,
                                                            page_problems: PageProblems) -> None:
    # What an HTML-injection bug would lead to: a script element in the document. The CSP
    # (script-src 'self', no 'unsafe-inline') must stop it from running.
    page_problems.allowed.append("Content Security Policy")
    ran = admin_page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.__injected = true";
        document.body.append(script);
        const img = document.createElement("img");
        img.setAttribute("src", "x");
        img.setAttribute("onerror", "window.__handler = true");
        document.body.append(img);
        return new Promise((resolve) => setTimeout(
            () => resolve([window.__injected === true, window.__handler === true]), 200));
    }""")
    assert ran == [False, False]


def test_every_section_loads_without_errors(admin_page: Any) -> None:
    for section in ("workflows", "gallery", "runs", "contacts", "events", "messages"):
        admin_page.goto(f"/#/{section}")
        admin_page.wait_for_selector(f"main[data-view={section}][data-ready]")
