"""Fixtures and helpers for the browser test of the node's web page.

(Not a conftest.py: tests/reference imports its conftest by that name, and a
second conftest module would shadow it when both folders run together.)

They start the real `ocellus` binary with its HTTP API and drive Debian's
headless Chromium through Selenium and the system chromedriver.

Locations (same rule as tests/reference and the Rust `ocellus-testdata` crate):

* the binary: env `OCELLUS_BIN`, default `<repo>/target/release/ocellus`;
* the shared data: env `OCELLUS_TEST_DATA`, default `<repo>/../shared/data`;
* the browser: `chromium` (or `chromium-browser`) on PATH, and
  `/usr/bin/chromedriver` (or `chromedriver` on PATH); `scripts/setup --tests`
  installs both;
* the screenshots: env `OCELLUS_SCREENSHOTS`, default `<repo>/docs/screenshots`.

When any of them is missing the tests are skipped with the reason, except
under `CI=true` (or `CI=1`), where that is a failure.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def in_ci() -> bool:
    """Whether we run under CI, where missing inputs must fail, not skip."""
    return os.environ.get("CI", "").lower() in ("true", "1")


def missing(reason: str):
    """Skips (outside CI) or fails (under CI) with `reason`."""
    if in_ci():
        pytest.fail(f"{reason}; under CI=true it is required", pytrace=False)
    print(f"skipping the browser test: {reason}")
    pytest.skip(reason)


# ---------------------------------------------------------------- the node


@dataclass
class Node:
    """A running `ocellus serve`: its HTTP base URL and its output so far."""

    proc: subprocess.Popen
    url: str
    data_dir: Path
    lines: list[str] = field(default_factory=list)


def start_node(ocellus_bin: Path, data: Path, extra: list[str] | None = None, timeout: float = 60) -> Node:
    """Starts a node on free ports; returns once it printed its HTTP address."""
    cmd = [
        str(ocellus_bin), "serve",
        "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
        "--data-dir", str(data), "--workers", "2",
        *(extra or []),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []

    def pump():
        # Keeps reading so that the node never blocks on a full pipe.
        for line in proc.stdout:
            seen.append(line.rstrip("\n"))
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(left, 0.01))
        except queue.Empty:
            line = ""
        if line is None or left <= 0:
            proc.kill()
            out = "\n".join(seen)
            pytest.fail(f"`{' '.join(cmd)}` printed no `http on` line within {timeout} s:\n{out}")
        m = re.search(r"http on (https?://\S+)", line or "")
        if m:
            return Node(proc=proc, url=m.group(1).rstrip("/"), data_dir=data, lines=seen)


def stop_node(node: Node):
    node.proc.terminate()
    try:
        node.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        node.proc.kill()
        node.proc.wait()


# ---------------------------------------------------------------- the browser


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = "/usr/bin/chromedriver" if os.access("/usr/bin/chromedriver", os.X_OK) else shutil.which("chromedriver")
    if not browser or not driver:
        missing("Chromium or chromedriver not found (scripts/setup --tests installs chromium chromium-driver)")
    return browser, driver


def make_driver(width: int = 1200, height: int = 800):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("the Python package selenium is not installed (pip install -r tests/browser/requirements.txt)")
    browser, driver_path = _chromium()
    profile = tempfile.mkdtemp(prefix="ocellus-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1",
        f"--window-size={width},{height}", f"--user-data-dir={profile}",
    ):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    drv.set_page_load_timeout(30)
    drv.set_script_timeout(30)
    drv._ocellus_profile = profile  # removed by close_driver
    return drv


def close_driver(drv):
    try:
        drv.quit()
    finally:
        shutil.rmtree(drv._ocellus_profile, ignore_errors=True)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def ocellus_bin() -> Path:
    path = Path(os.environ.get("OCELLUS_BIN", REPO / "target" / "release" / "ocellus"))
    if not (path.is_file() and os.access(path, os.X_OK)):
        missing(
            f"ocellus binary not found at {path} "
            "(build it with `cargo build --release -p ocellus` or set OCELLUS_BIN)"
        )
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("OCELLUS_TEST_DATA", REPO.parent / "shared" / "data"))
    if not (path / "README.md").is_file():
        missing(f"test data not found at {path} (set OCELLUS_TEST_DATA to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    path = Path(os.environ.get("OCELLUS_SCREENSHOTS", REPO / "docs" / "screenshots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def node(ocellus_bin):
    # OCELLUS_WEB_URL: test the page of a node already running there instead
    # (for working on the page; the key test still starts its own node).
    url = os.environ.get("OCELLUS_WEB_URL")
    if url:
        yield Node(proc=None, url=url.rstrip("/"), data_dir=Path("."))
        return
    with tempfile.TemporaryDirectory(prefix="ocellus-web-") as tmp:
        n = start_node(ocellus_bin, Path(tmp))
        yield n
        stop_node(n)


@pytest.fixture(scope="module")
def browser():
    drv = make_driver()
    yield drv
    close_driver(drv)
