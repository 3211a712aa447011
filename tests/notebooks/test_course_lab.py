"""`python3 scripts/course.py lab`: the real command, with a real JupyterLab.

It must print a URL that opens the course's landing page (not Jupyter's launcher at
the project root), also with --no-browser; start as root (adding --allow-root and
saying why); and leave no JupyterLab or kernel behind when it is stopped with Ctrl-C
or SIGTERM.

Bugs these tests catch: the generic Jupyter URL printed instead of the landing page's,
a URL without its token (a login page), the course's JupyterLab defaults (Markdown
opened rendered) not reaching the server it starts, JupyterLab refusing to start as root, a
`jupyter-lab` (or its kernel) still running after the command was stopped.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from support import browser as bs

pytestmark = pytest.mark.browser  # starts a real JupyterLab (~10-30 s each)

URL_LINE = re.compile(r"\[course\] the course's landing page.*?: (\S+)")
START_S = 120


def _start(tmp_path, *extra: str) -> tuple[subprocess.Popen, dict]:
    """The command in its own session, as a terminal runs it in its own group."""
    env = {**os.environ, **bs.write_lab_config(tmp_path / "jupyter")}
    env.pop("PPO_LESSONS_QUICK", None)
    args = [sys.executable, str(bs.ROOT / "scripts" / "course.py"), "lab", *extra]
    log = (tmp_path / "course-lab.log").open("w")
    command = subprocess.Popen(
        args,
        cwd=bs.ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return command, {"log": tmp_path / "course-lab.log", "env": env}


def _wait_for_url(command: subprocess.Popen, log) -> str:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if match := URL_LINE.search(text):
            return match[1]
        if command.poll() is not None:
            raise AssertionError(f"course.py lab exited early:\n{text[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"no landing-page URL within {START_S} s:\n{text[-3000:]}")


def _children(pid: int) -> list:
    import psutil

    return psutil.Process(pid).children(recursive=True)


def _api(url: str, path: str) -> object:
    """GET `path` of the server whose landing-page URL (token included) is `url`."""
    base, token = url.split("/lab/tree/")[0], url.split("token=")[1]
    with urllib.request.urlopen(f"{base}{path}?token={token}", timeout=30) as reply:
        return json.load(reply)


def _start_kernel(url: str) -> None:
    """A kernel session for a lesson, as opening it in a browser starts."""
    base, token = url.split("/lab/tree/")[0], url.split("token=")[1]
    lesson = "notebooks/00_setup_and_gymnasium.ipynb"
    request = urllib.request.Request(
        f"{base}/api/sessions?token={token}",
        data=json.dumps(
            {"path": lesson, "type": "notebook", "kernel": {"name": "python3"}}
        ).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        assert reply.status == 201


def _gone(processes, timeout_s: float = 30) -> list:
    deadline = time.monotonic() + timeout_s
    alive = processes
    while time.monotonic() < deadline:
        alive = [p for p in alive if bs.process_running(p)]
        if not alive:
            return []
        time.sleep(0.5)
    return alive


@pytest.mark.parametrize("stop", ["SIGTERM", "Ctrl-C"])
def test_no_browser_prints_the_landing_url_and_stopping_stops_everything(
    tmp_path, stop
):
    command, run = _start(tmp_path, "--no-browser", f"--port={bs.free_port()}")
    started = []
    try:
        url = _wait_for_url(command, run["log"])
        assert f"/lab/tree/{bs.LANDING}?token=" in url, url
        with urllib.request.urlopen(url, timeout=30) as reply:  # the token logs in
            assert reply.status == 200
            assert "JupyterLab" in reply.read().decode(errors="replace")
        assert _api(url, f"/api/contents/{bs.LANDING}")["type"] == "file"
        # the course's defaults reached this JupyterLab: Markdown opens rendered
        docmanager = _api(
            url, "/lab/api/settings/@jupyterlab/docmanager-extension:plugin"
        )
        viewers = docmanager["schema"]["properties"]["defaultViewers"]["default"]
        assert viewers.get("markdown") == "Markdown Preview", viewers
        _start_kernel(url)
        started = _children(command.pid)
        assert any("ipykernel" in " ".join(p.cmdline()) for p in started), started
        log = run["log"].read_text()
        if os.geteuid() == 0:
            assert "adding --allow-root" in log
        else:
            assert "--allow-root" not in log
        # Ctrl-C in a terminal: SIGINT to the command's (foreground) process group
        if stop == "SIGTERM":
            command.send_signal(signal.SIGTERM)
        else:
            os.killpg(command.pid, signal.SIGINT)
        command.wait(60)
        left = _gone(started)
        assert not left, f"still running after {stop}: {[p.cmdline() for p in left]}"
    finally:  # whatever the outcome, nothing of this test outlives it
        if command.poll() is None:
            os.killpg(command.pid, signal.SIGKILL)
        for process in started:
            if bs.process_running(process):
                process.kill()
