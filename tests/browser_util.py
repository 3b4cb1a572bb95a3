"""Helpers shared by the browser tests (test_browser, test_viewer_browser, test_book_pages)."""

from __future__ import annotations

import time


def wait_for(cond, timeout: float = 10.0, what: str = "condition"):
    """Poll ``cond()`` every 0.1 s until it is truthy (returned) or ``timeout`` s pass."""
    end = time.time() + timeout
    while time.time() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
