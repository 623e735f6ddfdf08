"""The HTML report opened in headless Chromium (Debian's ``chromium``; ``make chromium`` installs
it): the DOM it builds holds one chart per section with the batch's counts, its script sorts the
table, and opening it requests nothing from the network. The screenshot is kept under
``var/test-artifacts/`` (or ``VOXQUEUE_TEST_ARTIFACTS``), its path printed.

Chromium is offline here: every request goes to a proxy that only records it, and no host name
resolves. Chromium asks its own services (component updates, time, accounts) whatever the
flags; those are told apart by host, and a page that does fetch is seen to (the control).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.workers.report_pages import HOSTILE_ID, Page, batch
from tests.workers.test_report_html import SECTIONS
from workers.report_html import Summary, write_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(
    os.environ.get("VOXQUEUE_TEST_ARTIFACTS")
    or Path(__file__).resolve().parents[2] / "var" / "test-artifacts"
)
OWN_SERVICES = (".google.com", ".googleapis.com", ".gstatic.com", ".googleusercontent.com")
PROBE = "probe.voxqueue.invalid"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium() -> str:
    if CHROMIUM is None:
        reason = "chromium is not installed (`make chromium` installs Debian's package)"
        if IN_CI:
            pytest.fail(reason + "; CI=true: the browser test must run", pytrace=False)
        pytest.skip(reason)
    return CHROMIUM


class Recorder:
    """A proxy that answers nothing and keeps the host of every request sent through it."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.hosts: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    head = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1").split()
                except OSError:
                    continue
                if len(head) >= 2:  # GET http://host/path, CONNECT host:443
                    target = head[1].split("://", 1)[-1]
                    self.hosts.append(target.split("/", 1)[0].rsplit(":", 1)[0])

    def from_pages(self) -> list[str]:
        return [h for h in self.hosts if not h.endswith(OWN_SERVICES)]

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def recorder():
    proxy = Recorder()
    yield proxy
    proxy.close()


def open_page(chromium: str, url: str, proxy: Recorder, profile: Path, *extra: str) -> str:
    """The DOM of ``url`` once loaded and its scripts run."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--proxy-server=127.0.0.1:{proxy.port}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ]
    proc = subprocess.run(
        [chromium, *flags, *extra, "--dump-dom", url],
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc.stdout.decode()


def test_the_page_in_chromium_shows_every_chart_and_fetches_nothing(chromium, recorder, tmp_path):
    summary = Summary()
    for row, seconds, reasons in batch():
        summary.add(row, seconds, reasons)
    page = tmp_path / "report.html"
    with page.open("w", encoding="utf-8") as out:
        write_html(out, summary, batch="lesson <1>")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)

    dom = Page(
        open_page(
            chromium,
            page.as_uri() + "#sort=-seconds",
            recorder,
            tmp_path / "profile",
            "--window-size=1200,1800",
            f"--screenshot={screenshot}",
        )
    )
    print(f"screenshot of the HTML report: {screenshot}")

    assert list(dom.sections) == SECTIONS
    assert all(section["charts"] == 1 for section in dom.sections.values())
    assert dom.bars("states") == {"done": 4, "failed": 2, "rejected": 1}
    assert dom.bars("verdicts") == {"PASS": 3, "REVIEW": 1, "REJECT": 1, "no verdict": 2}
    assert dom.bars("failures") == {
        "soe: auth": 1,
        "shumei: invalid": 1,
        "rejected: audio file not found": 1,
    }
    assert sum(dom.bars("latency").values()) == 6
    assert dom.attributes["jobs"].get("data-sortable") == "yes"  # the script ran, its hash allowed
    assert [cells[0] for cells in dom.rows] == [
        "f",
        "e",
        "d",
        HOSTILE_ID,
        "b",
        "a",
        "g",
    ]  # by seconds, down
    assert "img" not in dom.elements  # the hostile id is text
    assert recorder.from_pages() == []
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    control = tmp_path / "control.html"  # a page that does fetch: the proxy sees it
    control.write_text(f'<!DOCTYPE html><img src="http://{PROBE}/x.png"><p>control</p>')
    open_page(chromium, control.as_uri(), recorder, tmp_path / "profile2")
    assert PROBE in recorder.from_pages()
