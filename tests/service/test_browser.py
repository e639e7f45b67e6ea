"""End to end in Debian's chromium (Playwright, no browser download): upload the sample, run a tiny job
to completion, download the synthetic trace, open the report. Screenshots go to the test's temporary folder,
or to docs/img/ when TRACESYNTH_UPDATE_SCREENSHOTS=1 (how the docs' pictures are refreshed)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from service_helpers import TINY

from tracesynth.io import read_trace

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"

pytestmark = pytest.mark.browser


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it as root: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def test_upload_train_download_report_in_the_browser(browser, server_factory, sample, tmp_path):
    server = server_factory("--token", "lab-token")
    page = browser.new_page(viewport={"width": 1100, "height": 900}, accept_downloads=True)
    page.goto(server.url + "/")
    assert page.locator("input[name=token]").is_visible()  # the token guards the pages too
    page.fill("input[name=token]", "lab-token")
    page.click("button[type=submit]")
    page.set_input_files("#upload-file", str(sample))
    page.click("#upload-form button[type=submit]")
    page.wait_for_url("**/uploads/*", timeout=30_000)
    assert page.locator("#summary-records").inner_text() == "2000"
    shots = DOCS_IMG if os.environ.get("TRACESYNTH_UPDATE_SCREENSHOTS") == "1" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "service-upload.png"), full_page=True)
    page.fill("input[name=epochs]", "2")
    page.select_option("select[name=size_mode]", "count")
    page.fill("input[name=size_value]", "300")
    page.click("summary")
    page.fill("textarea[name=overrides]", json.dumps({**TINY, "chunking": {"n_chunks": 1}}))
    page.click("#job-form button[type=submit]")
    page.wait_for_url("**/jobs/*", timeout=30_000)
    page.wait_for_selector("#results:not([hidden])", timeout=240_000)
    assert page.locator("#job-state").inner_text() == "done"
    page.wait_for_timeout(600)  # let the progress bar's width transition finish
    page.screenshot(path=str(shots / "service.png"), full_page=True)

    with page.expect_download() as info:
        page.click("#download")
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    assert target.suffix == ".pcap"
    assert abs(len(read_trace(target).table) - 300) <= 6

    if page.locator("#report").is_visible():
        with page.context.expect_page() as popup:
            page.click("#report")
        report = popup.value
        report.wait_for_load_state()
        assert "<img" in report.content() or "<svg" in report.content()
    else:
        assert "report failed" in page.locator("#job-error").inner_text()
