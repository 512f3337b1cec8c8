"""The node's web page in a real browser (headless Chromium via Selenium).

One node serves the page; the tests run in order on the same page:

1. Filters: pick a photo, compose `blur=3`, run it as a job, see the queue
   events and the result beside the original with a download link; the
   result's bytes are those of `ocellus filter --local` with the same ops.
2. Faces: enroll a person from several photos (one outcome per photo),
   see them listed, recognize another photo of them and find the name.
3. Status: the node id of /v1/status, and the peers table.
4. Keyboard and phone width: arrow keys move between the tabs; at 375 px
   no tab scrolls sideways.
5. Keys: on a node with keys the page asks for one, keeps it in
   sessionStorage (never localStorage) and sends it on every call.

Screenshots of the three tabs go to docs/screenshots (see conftest.py).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from ocellus_web import (  # noqa: F401 (fixtures)
    browser,
    close_driver,
    data_dir,
    make_driver,
    node,
    ocellus_bin,
    screenshot_dir,
    start_node,
    stop_node,
)

WAIT = 60  # seconds, for any one thing to appear
PHOTO = "photos/skimage_astronaut.png"
PERSON = "barack_obama"
ENROLL = ["fr_obama.jpg", "fr_obama3.jpg", "fr_obama_small.jpg"]
PROBE = "fr_obama2.jpg"


def wait(drv, cond, what: str, timeout: float = WAIT):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(drv, timeout, poll_frequency=0.1).until(
        lambda d: cond(d), message=f"timed out after {timeout} s waiting for {what}"
    )


def by_id(drv, id_):
    from selenium.webdriver.common.by import By

    return drv.find_element(By.ID, id_)


def screenshot(drv, path: Path, max_height: int = 1400):
    """Saves a PNG of the page, 1200 px wide and as tall as it is (at most
    max_height), shrunk to 256 colours with Pillow (when present) if large."""
    height = drv.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": 1200, "height": min(max(height, 600), max_height), "deviceScaleFactor": 1, "mobile": False}
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        drv.execute_script("window.scrollTo(0, 0)")
        drv.save_screenshot(str(path))
    finally:
        drv.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    if path.stat().st_size > 300_000:
        try:
            from PIL import Image
        except ImportError:
            return
        img = Image.open(path).convert("RGB")
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


def blob_bytes(drv, url: str) -> bytes:
    """The bytes behind a blob: URL of the page."""
    b64 = drv.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        fetch(arguments[0]).then(r => r.arrayBuffer()).then(buf => {
          const u = new Uint8Array(buf); let s = '';
          for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode.apply(null, u.subarray(i, i + 0x8000));
          done(btoa(s));
        }).catch(e => done('ERROR ' + e));
        """,
        url,
    )
    assert not b64.startswith("ERROR"), b64
    return base64.b64decode(b64)


@pytest.fixture(scope="module")
def page(browser, node):
    browser.get(node.url + "/")
    wait(browser, lambda d: len(d.find_elements("css selector", "#f-op option")) > 0, "the list of operations")
    return browser


def test_filters(page, node, data_dir, ocellus_bin, screenshot_dir):
    from selenium.webdriver.support.ui import Select

    photo = data_dir / PHOTO
    assert by_id(page, "tab-filters").get_attribute("aria-selected") == "true"
    names = [o.get_attribute("value") for o in Select(by_id(page, "f-op")).options]
    for op in ("blur", "resize", "crop", "grayscale"):
        assert op in names

    by_id(page, "f-file").send_keys(str(photo))
    wait(page, lambda d: len(d.find_elements("css selector", "#f-inputs li")) == 1, "the thumbnail")
    Select(by_id(page, "f-op")).select_by_value("blur")
    param = by_id(page, "f-param")
    assert param.get_attribute("placeholder") == "SIGMA"
    param.clear()
    param.send_keys("3")
    by_id(page, "f-add").click()
    assert by_id(page, "f-pipeline").text == "blur=3"
    assert by_id(page, "f-step-0-param").get_attribute("value") == "3"
    by_id(page, "f-run").click()

    status = wait(page, lambda d: d.find_elements("id", "f-status-0"), "the job card")[0]
    wait(page, lambda d: status.get_attribute("data-state") in ("done", "failed"), "the job to end")
    assert status.get_attribute("data-state") == "done", status.text
    events = status.get_attribute("data-events").split()
    assert events[0] == "accepted" and "started" in events and events[-1] == "result", events
    assert status.text.startswith("Done"), status.text
    assert by_id(page, "f-progress").text.startswith(photo.name + ": Done")

    result = by_id(page, "f-result-0")
    wait(page, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", result), "the result image")
    assert page.execute_script("return arguments[0].naturalWidth", result) == 512
    link = by_id(page, "f-download-0")
    assert link.is_displayed()
    href = link.get_attribute("href")
    assert href.startswith("blob:") and href == result.get_attribute("src")
    assert link.get_attribute("download") == "skimage_astronaut-ocellus.png"
    got = blob_bytes(page, href)

    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [str(ocellus_bin), "filter", "--local", "--ops", "blur=3", "-o", out, str(photo)],
            check=True, capture_output=True, timeout=60,
        )
        want = (Path(out) / photo.name).read_bytes()
    assert got == want, f"page result ({len(got)} bytes) differs from `ocellus filter --local` ({len(want)} bytes)"

    # The queue text, as the page words it (the format of the issue).
    text = page.execute_script(
        "return [queueText('position', {position: 2, queue_length: 5, processing: [3], eta_s: 1.8}, 5),"
        " queueText('position', {position: 1, queue_length: 1, processing: [], eta_s: 0.2}, 9),"
        " queueText('started', {job: 5}, 5)]"
    )
    assert text == ["Now processing #3; yours is #5 (about 2 s)", "Now processing nothing; yours is #9 (about 1 s)", "Running #5…"]
    assert by_id(page, "f-progress").get_attribute("aria-live") == "polite"
    screenshot(page, screenshot_dir / "filters.png")


def test_faces(page, node, data_dir, screenshot_dir):
    folder = data_dir / "people" / PERSON
    by_id(page, "tab-faces").click()
    assert by_id(page, "panel-faces").is_displayed()
    assert not by_id(page, "panel-filters").is_displayed()

    by_id(page, "e-name").send_keys(PERSON)
    by_id(page, "e-file").send_keys("\n".join(str(folder / f) for f in ENROLL))
    by_id(page, "e-run").click()
    outcomes = wait(
        page, lambda d: d.find_elements("css selector", "#e-outcomes li") or None, "the per-photo outcomes", timeout=90
    )
    assert len(outcomes) == len(ENROLL)
    for li, name in zip(outcomes, ENROLL):
        assert name in li.text
        assert li.get_attribute("data-accepted") in ("true", "false")
        assert ("accepted" in li.text) == (li.get_attribute("data-accepted") == "true")
    accepted = [li.get_attribute("data-accepted") for li in outcomes].count("true")
    assert accepted == len(ENROLL), [li.text for li in outcomes]  # `ocellus enroll` takes all three
    progress = by_id(page, "e-progress").text
    assert f"{accepted} of {len(ENROLL)} photos accepted" in progress, progress
    on_file = re.search(r"(\d+) faces on file", progress).group(1)
    row = wait(page, lambda d: d.find_elements("css selector", f'#p-list tr[data-name="{PERSON}"]'), "the person listed")[0]
    assert row.find_elements("css selector", "td")[1].text == on_file

    by_id(page, "r-file").send_keys(str(folder / PROBE))
    by_id(page, "r-run").click()
    faces = wait(page, lambda d: d.find_elements("css selector", "#r-results li") or None, "the recognized faces", timeout=90)
    names = [li.get_attribute("data-name") for li in faces]
    assert PERSON in names, [li.text for li in faces]
    assert "distance 0." in faces[names.index(PERSON)].text
    boxes = page.find_elements("css selector", "#r-boxes .box")
    assert len(boxes) == len(faces)
    assert PERSON in boxes[names.index(PERSON)].text
    assert by_id(page, "r-photo").is_displayed()
    # Each box sits over its face: where the node found it, scaled to the
    # photo as shown (the CSP refuses style attributes; a box placed by one
    # would sit at the photo's corner).
    photo = by_id(page, "r-photo")
    shown = photo.rect
    natural = page.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", photo)
    scale = shown["width"] / natural[0]
    m = re.search(r"(\d+)×(\d+) at (\d+),(\d+)", faces[names.index(PERSON)].text)
    w, h, x, y = (int(v) for v in m.groups())
    box = boxes[names.index(PERSON)].rect
    for got, want in [
        (box["x"] - shown["x"], x * scale),
        (box["y"] - shown["y"], y * scale),
        (box["width"], w * scale),
        (box["height"], h * scale),
    ]:
        assert abs(got - want) <= 3, (box, shown, (x, y, w, h), scale)
    screenshot(page, screenshot_dir / "faces.png")


def test_status(page, node, screenshot_dir):
    with urllib.request.urlopen(node.url + "/v1/status", timeout=10) as r:
        status = json.load(r)
    by_id(page, "tab-status").click()
    wait(page, lambda d: by_id(d, "s-node-id").text == status["node_id"], "the node id")
    assert f" of {status['workers']}" in by_id(page, "s-workers").text
    assert "waiting" in by_id(page, "s-queue").text
    rows = page.find_elements("css selector", "#s-peers tr")
    assert [r.get_attribute("data-node") for r in rows] == [p["node_id"] for p in status["peers"]]
    assert by_id(page, "s-no-peers").is_displayed() == (not status["peers"])  # standalone: none
    first = by_id(page, "s-updated").text
    wait(page, lambda d: by_id(d, "s-updated").text != first, "the status to refresh", timeout=10)
    jobs_done = int(by_id(page, "s-jobs").text.split("/")[0])
    assert jobs_done >= 3  # the filter, the enroll and the recognize jobs
    screenshot(page, screenshot_dir / "status.png")


def test_keyboard_and_phone_width(page):
    from selenium.webdriver.common.keys import Keys

    by_id(page, "tab-status").send_keys(Keys.ARROW_RIGHT)  # wraps to the first
    wait(page, lambda d: by_id(d, "tab-filters").get_attribute("aria-selected") == "true", "Filters selected")
    assert page.switch_to.active_element == by_id(page, "tab-filters")
    by_id(page, "tab-filters").send_keys(Keys.ARROW_RIGHT)
    wait(page, lambda d: by_id(d, "tab-faces").get_attribute("aria-selected") == "true", "Faces selected")
    assert by_id(page, "tab-filters").get_attribute("tabindex") == "-1"
    assert by_id(page, "panel-faces").is_displayed()

    size = page.get_window_size()
    try:
        page.set_window_size(375, 800)
        for tab in ("filters", "faces", "status"):
            by_id(page, "tab-" + tab).click()
            width = page.execute_script("return document.documentElement.clientWidth")
            scroll = page.execute_script("return document.documentElement.scrollWidth")
            assert scroll <= width + 1, f"{tab}: the page is {scroll} px wide in a {width} px window"
    finally:
        page.set_window_size(size["width"], size["height"])
    # Every form control has a label.
    unlabelled = page.execute_script(
        "return [...document.querySelectorAll('input, select')].filter(e =>"
        " !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.id)"
    )
    assert unlabelled == []


def test_key_is_asked_and_kept_in_session_storage(ocellus_bin):
    with tempfile.TemporaryDirectory(prefix="ocellus-web-keys-") as tmp:
        out = subprocess.run(
            [str(ocellus_bin), "keys", "add", "--scopes", "admin", "--data-dir", tmp, "web-test"],
            check=True, capture_output=True, text=True, timeout=30,
        )
        key = out.stdout.strip().splitlines()[0].strip()  # printed alone, once
        n = start_node(ocellus_bin, Path(tmp))
        drv = make_driver()
        try:
            drv.get(n.url + "/")
            dialog = by_id(drv, "key-dialog")
            wait(drv, lambda d: dialog.get_attribute("open") is not None, "the key dialog")
            by_id(drv, "key-input").send_keys("wrong-key")
            by_id(drv, "key-submit").click()
            wait(drv, lambda d: "refused" in by_id(d, "key-message").text, "the wrong key refused")
            by_id(drv, "key-input").send_keys(key)
            by_id(drv, "key-submit").click()
            wait(drv, lambda d: len(d.find_elements("css selector", "#f-op option")) > 0, "the operations, with the key")
            assert drv.execute_script("return sessionStorage.getItem('ocellus.key')") == key
            assert drv.execute_script("return localStorage.length") == 0
            by_id(drv, "tab-status").click()
            wait(drv, lambda d: by_id(d, "s-node-id").text not in ("", "…"), "the status, with the key")
            assert "API keys required" in by_id(drv, "s-security").text
        finally:
            close_driver(drv)
            stop_node(n)
