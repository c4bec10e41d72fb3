"""The web console (issue #17) in a real browser against the real stack: Debian's headless
Chromium, driven by Playwright for Python (never a browser Playwright downloads).

A person's session, step by step: open /console (its CSP header), see the health header,
see the API's 401 until a key is typed (by keyboard), upload three images of which the API
rejects one (over THUMBNAIL_MAX_UPLOAD_BYTES: its 413 message appears verbatim), watch two
jobs succeed with their thumbnails in the grid (sizes and bytes as the API says), open a
rendition (an image of the API's size), delete a job (by keyboard; gone in the API too),
filter by status, drop five more files on the drop zone and page through the jobs, narrow
the window. Every wait is bounded; no request leaves 127.0.0.1.

Screenshots go to test-artifacts/console/ (not in git). CONSOLE_DOCS_SCREENSHOT=1 also
writes docs/console.png, the one docs/console.md shows.
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import pyvips

from tests.service import images
from tests.service.conftest import API_KEY
from tests.service.stack import Stack

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "console"
DOCS_SCREENSHOT = ROOT / "docs" / "console.png"
CHROMIUM = "/usr/bin/chromium"
# Root (no sandbox), no GPU, and none of Chromium's own outbound traffic (updates, sync,
# field trials, QUIC probes): this machine's network is closed, and the test says so below.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
MAX_UPLOAD = 300_000
SERVICE_ENV = {
    "THUMBNAIL_CONSOLE_ENABLED": "true",
    "THUMBNAIL_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
}
EXPECTED_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
TIMES = "\N{MULTIPLICATION SIGN}"  # the page writes sizes as 512 TIMES 341
WAIT_MS = 30_000  # the longest any single step may take


def _gradient(width: int, height: int, blue: int) -> pyvips.Image:
    """A colour gradient: a thumbnail that is visibly the picture, not a flat swatch."""
    xyz = pyvips.Image.xyz(width, height)
    red = xyz[0] * (255 / width)
    green = xyz[1] * (255 / height)
    return red.bandjoin([green, (red * 0 + blue)]).cast("uchar")


def _chromium_or_skip() -> None:
    if Path(CHROMIUM).exists():
        return
    why = f"{CHROMIUM} is not installed (`make system-deps` installs Debian's chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(why)  # CI must run the browser test, never skip it
    pytest.skip(why)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    made = {
        "harbour.jpg": images.encode(_gradient(900, 600, 200), "jpg", Q=90),
        "meadow.png": images.encode(_gradient(640, 800, 40), "png"),
        # Incompressible pixels: well over the limit, so the API answers 413.
        "too-large.png": images.encode(images.noise(700, 700), "png"),
    }
    assert len(made["too-large.png"]) > 2 * MAX_UPLOAD
    assert all(len(data) < MAX_UPLOAD for name, data in made.items() if name != "too-large.png")
    paths = {}
    for name, data in made.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    return paths


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A fresh Chromium profile (its own empty user-data-dir) in a persistent context."""
    _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 900},
            locale="en-US",
            timezone_id="UTC",
        )
        context.set_default_timeout(WAIT_MS)
        try:
            yield context
        finally:
            context.close()


def _screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _job_card(page: Any, file_name: str) -> Any:
    return page.locator("#jobs > li.job").filter(
        has=page.get_by_role("heading", name=re.compile(re.escape(file_name)))
    )


def test_console_in_a_real_browser(
    worker_stack: Stack,
    browser: Any,
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    started = time.monotonic()
    base = worker_stack.base_url
    api = httpx.Client(base_url=base, headers={"X-API-Key": API_KEY}, timeout=30)
    requests: list[str] = []
    problems: list[str] = []
    browser.on("request", lambda request: requests.append(request.url))
    page = browser.pages[0] if browser.pages else browser.new_page()
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: problems.append(message.text)
        if "Content Security Policy" in message.text
        else None,
    )
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)

    # -- the page, its headers, the health header -------------------------------------------
    response = page.goto(f"{base}/console")
    assert response is not None and response.status == 200
    headers = response.headers
    assert headers["content-security-policy"] == EXPECTED_CSP
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    expect(page).to_have_title("Thumbnail console")
    health = page.locator("#health-details")
    for dependency in ("PostgreSQL", "Redis", "MinIO"):
        expect(health).to_contain_text(dependency)
    expect(health).to_contain_text("1 alive")
    expect(health).to_contain_text(re.compile(r"Queue\s*\d+ ready, \d+ delayed"))
    expect(page.locator("#health-summary")).to_have_text("All dependencies reachable")

    # -- no key yet: the API's own 401 message; then a key, typed with the keyboard ---------
    expect(page.locator("#jobs-state")).to_contain_text("missing or invalid X-API-Key header")
    reached = []
    for _ in range(12):  # Tab from the top of the page: the key field, later the file input
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id")
        reached.append(focused)
        if focused == "api-key":
            page.keyboard.type(API_KEY)
            page.keyboard.press("Enter")  # submits the key form
        if focused == "files":
            break
    assert "api-key" in reached and reached[-1] == "files", reached
    expect(page.locator("#key-state")).to_contain_text("A key is in use")
    expect(page.locator("#jobs-state")).to_have_text("No jobs here.")
    assert page.evaluate("sessionStorage.getItem('thumbnail-console.api-key')") == API_KEY
    assert page.evaluate("localStorage.length") == 0 and browser.cookies() == []

    # -- three files, one of them too large -------------------------------------------------
    page.locator("#sizes").fill("small,medium")
    page.locator("#files").set_input_files([str(p) for p in files.values()])
    rejected = page.locator('#uploads li[data-file="too-large.png"]')
    expect(rejected).to_contain_text(
        re.compile(rf"Rejected: HTTP 413: .*limited to {MAX_UPLOAD} bytes")
    )
    for name in ("harbour.jpg", "meadow.png"):
        card = _job_card(page, name)
        expect(card).to_have_attribute("data-status", "succeeded", timeout=60_000)
        expect(page.locator(f'#uploads li[data-file="{name}"]')).to_contain_text(
            "succeeded: 2 thumbnails"
        )
        job_id = card.get_attribute("data-job-id")
        job = api.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "succeeded"
        for thumbnail in job["thumbnails"]:
            item = card.locator(f'li.thumbnail[data-name="{thumbnail["name"]}"]')
            expect(item).to_contain_text(f"{thumbnail['width']}{TIMES}{thumbnail['height']}")
            expect(item).to_contain_text(f"{thumbnail['bytes']:,} bytes")
            image = item.locator("img")
            expect(image).to_have_attribute("src", re.compile(r"^blob:"))
            page.wait_for_function(
                "image => image.complete && image.naturalWidth > 0", arg=image.element_handle()
            )
            assert image.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [
                thumbnail["width"], thumbnail["height"]
            ]
    # The rejected file made no job: two in the API, both succeeded.
    assert [j["status"] for j in api.get("/v1/jobs").json()["items"]] == ["succeeded"] * 2
    page.evaluate("document.activeElement.blur()")
    jobs_shot = _screenshot(page, "1-jobs.png")

    # -- open a rendition: an image of the size the API says --------------------------------
    harbour = _job_card(page, "harbour.jpg")
    harbour_job = api.get(f"/v1/jobs/{harbour.get_attribute('data-job-id')}").json()
    medium = next(t for t in harbour_job["thumbnails"] if t["name"] == "medium")
    harbour.get_by_role("button", name=re.compile(r"^Open medium")).click()
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    expect(page.locator("#viewer-caption")).to_have_text(
        f"{medium['width']}{TIMES}{medium['height']} JPEG, {medium['bytes']:,} bytes"
    )
    page.wait_for_function("document.querySelector('#viewer-image').naturalWidth > 0")
    assert page.locator("#viewer-image").evaluate(
        "i => [i.naturalWidth, i.naturalHeight]"
    ) == [medium["width"], medium["height"]]
    _screenshot(page, "2-rendition.png")
    with page.expect_popup() as popup_info:
        page.locator("#viewer-open").click()
    popup = popup_info.value
    popup.wait_for_load_state()
    assert popup.url.startswith("blob:http://127.0.0.1:")
    popup.wait_for_function("document.images.length && document.images[0].naturalWidth > 0")
    assert popup.evaluate("[document.images[0].naturalWidth, document.images[0].naturalHeight]") \
        == [medium["width"], medium["height"]]
    popup.close()
    page.keyboard.press("Escape")  # the dialog closes on Escape
    expect(viewer).to_be_hidden()

    # -- delete a job with the keyboard: Tab from its last thumbnail to Delete, Enter -------
    meadow = _job_card(page, "meadow.png")
    meadow_id = meadow.get_attribute("data-job-id")
    meadow.locator("button.thumb").last.focus()
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert focused.startswith("Delete meadow.png"), focused
    page.keyboard.press("Enter")
    expect(meadow).to_have_count(0)
    assert dialogs and "meadow.png" in dialogs[-1]
    gone = api.get(f"/v1/jobs/{meadow_id}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "job_not_found"
    expect(page.locator("#announcer")).to_have_text("Deleted meadow.png.")

    # -- filter by status -------------------------------------------------------------------
    jobs = page.locator("#jobs > li.job")
    page.locator("#status-filter").select_option("failed")
    expect(jobs).to_have_count(0)
    expect(page.locator("#jobs-state")).to_have_text("No jobs here.")
    page.locator("#status-filter").select_option("succeeded")
    expect(jobs).to_have_count(1)
    expect(_job_card(page, "harbour.jpg")).to_have_count(1)
    page.locator("#status-filter").select_option("")

    # -- drop five files on the drop zone, then page through six jobs, five a page -----------
    tiny = base64.b64encode(images.encode(images.two_halves(64, 48), "png")).decode()
    data_transfer = page.evaluate_handle(
        """tiny => {
            const bytes = Uint8Array.from(atob(tiny), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            for (let i = 1; i <= 5; i++) {
                transfer.items.add(new File([bytes], `dropped-${i}.png`, {type: "image/png"}));
            }
            return transfer;
        }""",
        tiny,
    )
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": data_transfer})
    for i in range(1, 6):
        expect(page.locator(f'#uploads li[data-file="dropped-{i}.png"]')).to_contain_text(
            "succeeded", timeout=60_000
        )
    page.locator("#per-page").select_option("5")
    expect(jobs).to_have_count(5)
    expect(page.locator("#page-label")).to_have_text("Page 1")
    expect(page.locator("#newer")).to_be_disabled()
    page.locator("#older").click()
    expect(page.locator("#page-label")).to_have_text("Page 2")
    expect(jobs).to_have_count(1)
    expect(_job_card(page, "harbour.jpg")).to_have_count(1)  # the oldest
    expect(page.locator("#older")).to_be_disabled()
    page.locator("#newer").click()
    expect(page.locator("#page-label")).to_have_text("Page 1")
    expect(jobs).to_have_count(5)
    page.locator("#per-page").select_option("10")
    expect(jobs).to_have_count(6)

    # -- narrow: no sideways scrolling -------------------------------------------------------
    page.set_viewport_size({"width": 380, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 380, page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > 381)
            .map(e => `${e.tagName}#${e.id}.${e.className}`)"""
    )  # what sticks out, if anything
    _screenshot(page, "3-narrow.png")
    page.set_viewport_size({"width": 1200, "height": 900})

    # -- nothing left the machine, nothing broke the policy -----------------------------------
    outside = [
        url for url in requests
        if urlsplit(url).scheme not in ("blob", "data") and urlsplit(url).hostname != "127.0.0.1"
    ]
    assert not outside, outside
    assert any(url.endswith("/console/console.js") for url in requests)
    assert not problems, problems

    if os.environ.get("CONSOLE_DOCS_SCREENSHOT") == "1":  # a palette PNG: a third the bytes
        pyvips.Image.new_from_file(str(jobs_shot)).pngsave(
            str(DOCS_SCREENSHOT), palette=True, compression=9
        )
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\nconsole browser test: {elapsed:.1f}s in Chromium {browser.browser.version} "
            f"({len(requests)} requests, all to 127.0.0.1; screenshots in {ARTIFACTS})"
        )
