"""The screenshots script works (into a temporary directory: docs/ changes only on purpose)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser

from tests.browser.conftest import LiveServer
from tests.browser.screenshots import VIEWPORTS, seed_showcase, take_screenshots

PNG = b"\x89PNG\r\n\x1a\n"


def test_screenshots_of_the_main_pages(
    browser: Browser, live_server: LiveServer, tmp_path: Path
) -> None:
    live_server.seed(lambda s: seed_showcase(s, now=live_server.clock.now()))
    written = take_screenshots(browser, live_server, tmp_path / "shots")
    names = {path.name for path in written}
    assert len(names) == len(written)
    for page in (
        "login",
        "overview",
        "causes",
        "cause",
        "job",
        "audit",
        "systems",
        "aborted",
        "invoice",
        "practice",
    ):
        assert {f"{page}{suffix}.png" for suffix, _, _ in VIEWPORTS} <= names
    for path in written:
        assert path.read_bytes().startswith(PNG)
