"""Helpers for tests/notebooks/test_browser.py: a throwaway JupyterLab server and browser steps.

The server runs from the course's own environment (`sys.executable -m jupyter lab`) on
the loopback interface, without a token, in its own process group, over a temporary
copy of the course's notebooks; its configuration, settings and workspaces live in
temporary folders, so nothing the tests do touches the project or the user's setup.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "browser"  # git-ignored
README_SCREENSHOT = ROOT / "docs" / "img" / "clipping_explorer.png"
LANDING = "notebooks/index.md"  # what `python3 scripts/course.py lab` opens

SERVER_START_S = 90  # a cold JupyterLab on a busy machine takes 10-30 s
RUN_ALL_S = 120  # Run All Cells of one lesson in quick mode, kernel start included
REDRAW_S = 60  # one widget change: kernel callback, figure, re-render
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
README_STATIC_SCREENSHOT = ROOT / "docs" / "img" / "clipping_explorer_static.png"


# --- Chromium -----------------------------------------------------------------------


def chromium_or_reason() -> tuple[str | None, str]:
    """The path of a system Chromium, installing Debian's package when we can.

    Returns (path, "") or (None, why not). Playwright's own browser download is never
    used: the tests drive the distribution's `chromium` through `executable_path`.
    """
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path, ""
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None, (
            "no Chromium on PATH and it cannot be installed here (needs root and "
            "apt-get); install your distribution's `chromium` package to run the "
            "browser tests, or deselect them with -m 'not browser'"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["update"], ["install", "-y", "--no-install-recommends", "chromium"]):
        try:
            done = subprocess.run(
                [apt, *args], env=env, capture_output=True, text=True, timeout=900
            )
        except subprocess.TimeoutExpired:
            return None, f"`apt-get {' '.join(args)}` took more than 15 minutes"
        if done.returncode:
            tail = (done.stdout + done.stderr)[-800:]
            return None, f"`apt-get {' '.join(args)}` failed:\n{tail}"
    path = shutil.which("chromium")
    return path, "" if path else "apt-get installed chromium but it is not on PATH"


BROWSER_ARGS = [
    "--no-sandbox",  # the tests may run as root, where Chromium's sandbox refuses
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--disable-gpu",
]


# --- the JupyterLab server -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_course(dest: Path) -> Path:
    """Copy notebooks/ and solutions/ into `dest`, outputs and widget state removed,
    and the landing page.

    A clean copy opens as a student's would before running it: no stored outputs or
    execution counts (so "all cells ran" is visible as every prompt getting a number)
    and no saved widget state (so no stale, kernel-less explorer is on the page).
    """
    for folder in ("notebooks", "solutions"):
        (dest / folder).mkdir(parents=True)
        for source in sorted((ROOT / folder).glob("*.ipynb")):
            nb = nbformat.read(source, as_version=4)
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs, cell.execution_count = [], None
            nb.metadata.pop("widgets", None)
            nbformat.write(nb, dest / folder / source.name)
    shutil.copy2(ROOT / LANDING, dest / LANDING)
    return dest


def load_course():
    """scripts/course.py as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("course", ROOT / "scripts/course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_lab_config(home: Path) -> dict[str, str]:
    """Temporary Jupyter folders; returns the environment variables that select them.

    - `labconfig/page_config.json` disables the announcements plugin, whose "get
      notified about Jupyter news?" toast would otherwise cover part of the page;
    - user settings: no autosave (the copy is never saved), no news fetching;
    - application settings (`app-settings`, for `--LabApp.app_settings_dir`): the
      defaults `course.py` writes into the course's .venv (Markdown opens rendered).
    """
    config, settings = home / "config", home / "settings"
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps(
            {
                "disabledExtensions": {
                    "@jupyterlab/apputils-extension:announcements": True
                }
            }
        )
    )
    user_settings = {
        "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {
            "autosave": False
        },
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }
    for relative, values in user_settings.items():
        path = settings / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    for folder in ("data", "runtime", "workspaces"):
        (home / folder).mkdir()
    load_course().write_lab_defaults(home / "app-settings" / "overrides.d" / "c.json")
    return {
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_DATA_DIR": str(home / "data"),
    }


@dataclass
class LabServer:
    url: str
    root: Path
    process: subprocess.Popen
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def api(self, path: str) -> object:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as reply:
            return json.load(reply)

    def kernel_idle(self, path: str) -> bool:
        """True when the kernel of the notebook at `path` exists and is idle."""
        for session in self.api("/api/sessions"):
            if session.get("path") == path and session.get("kernel"):
                return session["kernel"].get("execution_state") == "idle"
        return False

    def stop(self) -> None:
        """Stop the server's process group and those of its kernels (each kernel starts
        a session of its own): SIGTERM, then SIGKILL to whatever outlives a grace."""
        children = _descendants(self.process.pid)
        groups = {self.process.pid} | {group for _, group in children}
        for signum, grace_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            for group in groups:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signum)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline:
                server_alive = self.process.poll() is None  # poll() also reaps it
                if not server_alive and not any(
                    process_running(c) for c, _ in children
                ):
                    return
                time.sleep(0.2)


def _descendants(pid: int) -> list[tuple[object, int]]:
    """(process, process group) of each descendant of `pid` (psutil, if installed)."""
    try:
        import psutil  # installed with ipykernel
    except ImportError:  # pragma: no cover; kernels then exit with their parent
        return []
    found = []
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                found.append((child, os.getpgid(child.pid)))
    return found


def process_running(process) -> bool:
    """True while a psutil process runs (a zombie counts as gone)."""
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def start_lab(root: Path, home: Path) -> LabServer:
    """Start `jupyter lab` over `root`, wait until its API answers, or raise."""
    port = free_port()
    env = {
        **os.environ,
        **write_lab_config(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "JUPYTER_PREFER_ENV_PATH": "1",  # the course's kernel, not a user-wide one
        "PPO_LESSONS_QUICK": "1",  # lessons at their test size
        "MPLBACKEND": INLINE_BACKEND,
    }
    args = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
        # no token or password: only for this throwaway server on the loopback
        "--ServerApp.token=", "--ServerApp.password=",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.app_settings_dir={home / 'app-settings'}",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")
    log = home / "jupyter-lab.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            args,
            cwd=root,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, stopped as a whole
        )
    server = LabServer(f"http://127.0.0.1:{port}", root, process, log)
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"jupyter lab exited with {process.returncode}:\n{server.log_tail()}"
            )
        try:
            server.api("/api/status")
            return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(
        f"jupyter lab did not answer within {SERVER_START_S} s:\n{server.log_tail()}"
    )


def execute_stored(source: Path, dest: Path) -> nbformat.NotebookNode:
    """Execute a copy of the notebook `source` as `jupyter nbconvert --execute` does
    (quick mode, inline figures) and write it to `dest` without widget state, as a
    solution is stored; returns it."""
    from nbclient import NotebookClient

    nb = nbformat.read(source, as_version=4)
    env = {"PPO_LESSONS_QUICK": "1", "MPLBACKEND": INLINE_BACKEND}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=RUN_ALL_S, kernel_name="python3").execute(
            cwd=str(source.parent)
        )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    nb.metadata.pop("widgets", None)
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    return nb


# --- browser steps -------------------------------------------------------------------

VISIBLE_NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"
LANDING_VIEW = ".jp-MarkdownViewer .jp-RenderedMarkdown"  # the landing page rendered


def open_landing(page, server: LabServer):
    """Open the landing page at /lab/tree/<LANDING>, as the course's `lab` command
    does; returns its rendered Markdown (found only if it opens as a preview)."""
    page.goto(f"{server.url}/lab/tree/{LANDING}", wait_until="domcontentloaded")
    rendered = page.locator(LANDING_VIEW)
    rendered.locator("h1").first.wait_for(timeout=90_000)
    return rendered


ALL_CELLS_RAN_JS = """() => {
    const prompts = [...document.querySelectorAll(
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')];
    const texts = prompts.map(p => p.textContent.trim());
    if (texts.length === 0 || texts.some(t => t.includes('*'))) return false;
    // every cell numbered: done; nothing queued but a cell unnumbered: stopped
    return texts.every(t => /\\[\\d+\\]/.test(t)) ? 'done' : 'stopped';
}"""

ANY_CELL_QUEUED_JS = """() => [...document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')]
    .some(p => p.textContent.includes('*'))"""


def wait_until(predicate, timeout_s: float, what: str, every_s: float = 0.25) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@dataclass
class Notebook:
    """One notebook open in the browser, and the server it runs on."""

    page: object  # playwright.sync_api.Page
    server: LabServer
    path: str  # relative to the server's root, e.g. "solutions/03_clipping.ipynb"

    @classmethod
    def open(cls, page, server: LabServer, path: str, workspace: str = "") -> Notebook:
        """Open `path` at /lab/tree/<path> (as the course's `lab` command does), or in
        a workspace of its own so that tabs of earlier tests are not restored."""
        prefix = f"/lab/workspaces/{workspace}" if workspace else "/lab"
        page.goto(f"{server.url}{prefix}/tree/{path}", wait_until="domcontentloaded")
        page.locator(f"{VISIBLE_NOTEBOOK} .jp-Cell").first.wait_for(timeout=90_000)
        return cls(page, server, path)

    def kernel_idle(self) -> bool:
        return self.server.kernel_idle(self.path)

    def run_all_cells(self) -> None:
        """Run menu → Run All Cells; wait until every code cell has run, or fail."""
        wait_until(self.kernel_idle, RUN_ALL_S, f"the kernel of {self.path} to start")
        self.page.get_by_role("menuitem", name="Run", exact=True).click()
        self.page.get_by_text("Run All Cells", exact=True).click()
        self.page.wait_for_function(ANY_CELL_QUEUED_JS, timeout=30_000)
        outcome = self.page.wait_for_function(
            ALL_CELLS_RAN_JS, timeout=RUN_ALL_S * 1000
        )
        if outcome.json_value() != "done":
            errors = self.page.locator(
                f"{VISIBLE_NOTEBOOK} .jp-OutputArea-output"
                '[data-mime-type="application/vnd.jupyter.stderr"]'
            ).all_text_contents()
            raise AssertionError(
                f"Run All Cells stopped before the last cell of {self.path}:\n"
                + "\n".join(errors)[-2000:]
            )

    def wait_for_redraw(self, explorer, status: str, expected: str, old: str) -> None:
        """Wait until the status line reads `expected` and a new figure has settled.

        The callback writes the status line before it draws, so the figure is waited
        for on its own: a new image, then the kernel idle (no redraw queued) and the
        image unchanged for a second.
        """
        from playwright.sync_api import expect

        expect(
            explorer.locator(status),
            "the explorer's callback did not rewrite its status line",
        ).to_have_text(expected, timeout=REDRAW_S * 1000)
        wait_until(
            lambda: figure_src(explorer) not in ("", old),
            REDRAW_S,
            "the explorer's callback to draw a new figure",
        )
        last, stable_since = figure_src(explorer), time.monotonic()
        deadline = time.monotonic() + REDRAW_S
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = figure_src(explorer)
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since > 1.0 and self.kernel_idle():
                self.page.wait_for_timeout(200)  # let the browser paint the image
                return
        raise AssertionError(f"the figure kept changing for {REDRAW_S} s")


def slider(explorer, description: str):
    """The ipywidgets slider in `explorer` whose description is exactly `description`."""
    exact = re.compile(rf"^\s*{re.escape(description)}\s*$")
    label = explorer.page.locator(".widget-label", has_text=exact)
    return explorer.locator(".widget-slider").filter(has=label)


def readout(slider_box) -> float:
    """The slider's shown value (its readout is filled just after the slider renders)."""
    from playwright.sync_api import expect

    shown = slider_box.locator(".widget-readout")
    expect(shown).to_have_text(re.compile(r"\S"))
    # textContent, not innerText: JupyterLab skips rendering off-screen cells
    # (content-visibility), and innerText is empty there
    return float(shown.text_content())


def press_on_slider(slider_box, key: str, times: int) -> None:
    """Focus the slider's handle and press an arrow key: one step per press."""
    handle = slider_box.locator(".noUi-handle")
    handle.focus()
    for _ in range(times):
        handle.press(key)


def figure_src(explorer) -> str:
    """The data URL of the figure in the explorer's Output area ("" when none)."""
    img = explorer.locator(".widget-output img")
    return (img.first.get_attribute("src") or "") if img.count() else ""


def save_screenshot(page, name: str) -> Path:
    """A full-page screenshot into artifacts/browser/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


def save_readme_screenshot(page, element, margin: int = 4) -> Path:
    """A screenshot of `element`, centred in the view and without a focus ring."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    element.evaluate("e => e.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(300)  # let the scrolled cells paint
    box = element.bounding_box()
    clip = {  # no margin on the left, where the cell's prompt sits
        "x": box["x"],
        "y": box["y"] - margin,
        "width": box["width"] + margin,
        "height": box["height"] + 2 * margin,
    }
    README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=README_SCREENSHOT, clip=clip)
    return README_SCREENSHOT
