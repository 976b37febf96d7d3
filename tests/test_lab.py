"""`make lab`: JupyterLab rooted at the repository (notebooks, runs and reports reachable),
opened at the notebooks, with the news pop-up and update checks off."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOKEN = "salescast-test"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def lab():
    """``make lab`` serving on a free port, without a browser; its address."""
    port = free_port()
    extra = (
        f"--no-browser --port={port} --ServerApp.port_retries=0 --IdentityProvider.token={TOKEN}"
    )
    process = subprocess.Popen(
        ["make", "-s", "-o", ".venv/.installed", "lab", f"LAB_ARGS={extra}"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=1)
                break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, process.stderr.read().decode()
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def get(url: str):
    return json.load(urllib.request.urlopen(f"{url}?token={TOKEN}", timeout=10))


def test_lab_is_rooted_at_the_repository_and_opens_at_the_notebooks(lab):
    root = {entry["name"] for entry in get(f"{lab}/api/contents")["content"]}
    assert {"notebooks", "helpers", "README.md", "Makefile"} <= root
    notebooks = {entry["name"] for entry in get(f"{lab}/api/contents/notebooks")["content"]}
    assert "05_report.ipynb" in notebooks

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(f"{lab}/?token={TOKEN}", timeout=10)
    assert redirect.value.headers["Location"].split("?")[0].endswith("/lab/tree/notebooks")


def test_lab_asks_for_no_news_and_checks_no_updates(lab):
    settings = get(f"{lab}/lab/api/settings/@jupyterlab/apputils-extension:notification")
    defaults = settings["schema"]["properties"]  # overrides.json replaces the defaults
    assert defaults["fetchNews"]["default"] == "false"  # JupyterLab's own is "none": it asks
    assert defaults["checkForUpdates"]["default"] is False
    assert get(f"{lab}/lab/api/update") == {"notification": None}  # NeverCheckForUpdate
