"""Set up the course and open it, or set it up and run every test.

    python3 scripts/course.py lab     # set up, then open the course in JupyterLab
                                      # (prints the landing page's URL; Ctrl-C stops)
    python3 scripts/course.py test    # set up, then run ruff and the whole test suite
    python3 scripts/course.py test --fast  # set up, then only the fast tier (< 1 min)
    python3 scripts/course.py setup   # only set up

Needs only Python 3.11 or newer. Everything goes into a virtual environment `.venv`
inside the project (ignored by git); running the command again reuses it and installs
only what changed (requirements.txt or pyproject.toml). Extra arguments after `test`
go to pytest (e.g. `-k gae`, `-m slow`); after `lab`, to JupyterLab. The test tiers
(tests/README.md): `test --fast` (pytest's `-m fast` over tests/: the lessons' functions,
their checks, the package's shape; no notebooks, no browser, no learning runs), `test`
(ruff, then everything but `slow`), `test -m slow`.

COURSE_EXTRAS=box2d,mujoco (either or both) also installs Gymnasium's Box2D and MuJoCo
envs, which the LunarLander and MuJoCo presets need (the same as
`pip install -e ".[box2d,mujoco]"`); the course itself does not.

PyTorch: on a machine without an NVIDIA GPU the CPU wheel torch==2.13.0 is installed
first; with one (or with COURSE_TORCH=cuda), the default PyPI build (CUDA) of the
range in requirements.txt. COURSE_TORCH=cpu forces the CPU choice. A torch already
in .venv is kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".course-installed"
CPU_TORCH = "torch==2.13.0"
LANDING = "notebooks/index.md"  # opened rendered, as "Markdown Preview"
# JupyterLab reads every overrides.d/*.json of its application settings as defaults
# (a user's own settings still win); this file is the course's, in its own .venv
LAB_DEFAULTS_FILE = VENV / "share/jupyter/lab/settings/overrides.d/ppo-lessons.json"
LAB_DEFAULTS = {
    # Markdown files (the landing page) open rendered, links clickable, no kernel;
    # "Open With > Editor" still edits them
    "@jupyterlab/docmanager-extension:plugin": {
        "defaultViewers": {"markdown": "Markdown Preview"}
    }
}


def say(message: str) -> None:
    print(f"[course] {message}", flush=True)


def run(args: list[str], **kwargs) -> None:
    say("$ " + " ".join(str(a) for a in args))
    subprocess.run([str(a) for a in args], check=True, **kwargs)


def has_module(module: str) -> bool:
    probe = subprocess.run(
        [str(PYTHON), "-c", f"import {module}"], capture_output=True, check=False
    )
    return probe.returncode == 0


def torch_choice() -> str:
    choice = os.environ.get("COURSE_TORCH", "auto").strip().lower()
    if choice not in {"auto", "cpu", "cuda"}:
        sys.exit(f"COURSE_TORCH must be auto, cpu or cuda, got {choice!r}")
    if choice == "auto":
        choice = "cuda" if shutil.which("nvidia-smi") else "cpu"
    return choice


def requirements_digest() -> str:
    digest = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


EXTRAS = ("box2d", "mujoco")  # pyproject.toml's optional dependencies


def course_extras() -> list[str]:
    """The extras named in COURSE_EXTRAS (e.g. "box2d,mujoco"), checked."""
    names = [n.strip() for n in os.environ.get("COURSE_EXTRAS", "").split(",")]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in EXTRAS]
    if unknown:
        sys.exit(
            f"COURSE_EXTRAS={os.environ['COURSE_EXTRAS']!r}: unknown extra "
            f"{', '.join(map(repr, unknown))}; the extras are {', '.join(EXTRAS)}"
        )
    return sorted(set(names))


def setup() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 (run by any system python)
        sys.exit(
            f"the course needs Python 3.11 or newer, this is {sys.version.split()[0]}"
        )
    if not PYTHON.exists():
        say(f"creating the virtual environment {VENV.relative_to(ROOT)}/")
        venv.EnvBuilder(with_pip=True, clear=VENV.exists()).create(VENV)
    else:
        say(f"reusing the virtual environment {VENV.relative_to(ROOT)}/")
    pip = [PYTHON, "-m", "pip", "install", "--disable-pip-version-check"]
    if not has_module("torch"):
        choice = torch_choice()
        say(f"installing PyTorch ({choice} build)")
        run(pip + [CPU_TORCH if choice == "cpu" else "torch>=2.4,<3"])
    extras = course_extras()
    digest = requirements_digest() + "".join(f" +{extra}" for extra in extras)
    if STAMP.exists() and STAMP.read_text() == digest and has_module("ppo_lessons"):
        say("dependencies are up to date")
        return
    say("installing the course's dependencies (requirements.txt)")
    run(pip + ["-r", ROOT / "requirements.txt"])
    say("installing the ppo_lessons package (editable)")
    run(pip + ["--no-deps", "-e", ROOT])
    if extras:  # the same as pip install -e ".[box2d,mujoco]" without the deps again
        say(f"installing the extras {', '.join(extras)} (COURSE_EXTRAS)")
        run(pip + [f"gymnasium[{','.join(extras)}]>=1.0,<2"])
    STAMP.write_text(digest)
    say("set-up complete")


def write_lab_defaults(path: Path = LAB_DEFAULTS_FILE) -> Path:
    """Write the course's JupyterLab defaults (LAB_DEFAULTS) to `path` if they differ."""
    text = json.dumps(LAB_DEFAULTS, indent=2) + "\n"
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path


def course_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV)
    env["JUPYTER_PREFER_ENV_PATH"] = "1"  # the course's kernel, not a user-wide one
    return env


def lab_args(extra: list[str]) -> list[str]:
    """`jupyter lab` over the project, opening the landing page; as root (most
    containers) with --allow-root, without which JupyterLab refuses to start."""
    args = [BIN / "jupyter", "lab", f"--ServerApp.root_dir={ROOT}", LANDING, *extra]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
        say(
            "running as root (as in most containers): adding --allow-root, without "
            "which JupyterLab refuses to start"
        )
        args.append("--allow-root")
    return [str(a) for a in args]


def landing_url(server: subprocess.Popen, env: dict[str, str]) -> str | None:
    """The URL of the landing page on the server started as `server`, from the
    jpserver-<pid>.json file Jupyter writes once it listens (None if it exited)."""
    runtime = subprocess.run(
        [str(BIN / "jupyter"), "--runtime-dir"], capture_output=True, text=True, env=env
    ).stdout.strip()
    info_file = Path(runtime) / f"jpserver-{server.pid}.json"
    while server.poll() is None:
        if info_file.exists():
            try:
                info = json.loads(info_file.read_text())
            except json.JSONDecodeError:  # caught while Jupyter writes it
                info = None
            if info:
                token = f"?token={info['token']}" if info.get("token") else ""
                return f"{info['url'].rstrip('/')}/lab/tree/{LANDING}{token}"
        time.sleep(0.2)
    return None


def stop_group(server: subprocess.Popen, grace_s: float = 20.0) -> None:
    """Stop JupyterLab's process group: SIGTERM (it shuts its kernels down), then
    SIGKILL if it is still there after `grace_s`."""
    if os.name == "nt":
        server.terminate()
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(grace_s)
    except subprocess.TimeoutExpired:
        if os.name == "nt":
            server.kill()
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def lab(extra: list[str]) -> int:
    """Run JupyterLab until it exits, Ctrl-C or SIGTERM; print the landing page's URL.

    JupyterLab runs in a process group of its own, so that stopping this command
    stops it and everything it started, whatever signal arrives here.
    """
    say(f"starting JupyterLab on the course's landing page, {LANDING}")
    env = course_env()
    group = {"start_new_session": True} if os.name != "nt" else {}
    server = subprocess.Popen(lab_args(extra), cwd=ROOT, env=env, **group)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        url = landing_url(server, env)
        if url:
            say(f"the course's landing page (open it in a browser): {url}")
            say("stop JupyterLab with Ctrl-C")
        return server.wait()
    except KeyboardInterrupt:
        say("Ctrl-C: stopping JupyterLab")
        return 130
    finally:
        if server.poll() is None:
            stop_group(server)
        signal.signal(signal.SIGTERM, previous)


def test(extra: list[str]) -> int:
    fast = "--fast" in extra
    extra = [a for a in extra if a != "--fast"]
    env = course_env()
    env.setdefault("PPO_LESSONS_QUICK", "1")  # notebooks at their test size
    env.setdefault("OMP_NUM_THREADS", "1")  # parallel workers, one thread each
    env.setdefault("MPLBACKEND", "Agg")
    steps = [
        ("ruff check (style and lint, .py and .ipynb)", [BIN / "ruff", "check", "."]),
        ("ruff format --check", [BIN / "ruff", "format", "--check", "."]),
    ]
    for title, args in [] if fast else steps:
        say(title)
        if subprocess.run([str(a) for a in args], cwd=ROOT, env=env).returncode:
            say(f"FAILED: {title}")
            return 1
    workers = str(max(2, min(4, os.cpu_count() or 2)))
    marker = (
        []
        if any(a == "-m" or a.startswith("-m") for a in extra)
        else ["-m", "fast" if fast else "not slow"]
    )
    paths = ["tests"] if fast else [
        "tests", "notebooks", "solutions", "--nbval-lax", "--nbval-cell-timeout=900",
    ]  # fmt: skip
    args = [
        PYTHON, "-m", "pytest", *paths,
        "-n", workers, "--dist", "loadfile", *marker, *extra,
    ]  # fmt: skip
    say(
        "pytest: the fast tier (lessons, checks, the package's shape)"
        if fast
        else "pytest: unit tests, notebooks (nbval), browser tests"
    )
    return subprocess.run([str(a) for a in args], cwd=ROOT, env=env).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"lab", "test", "setup"}:
        print(__doc__)
        return 2
    command, extra = argv[0], argv[1:]
    try:
        setup()
    except subprocess.CalledProcessError as error:
        say(f"set-up failed: {error}")
        return 1
    write_lab_defaults()
    if command == "lab":
        return lab(extra)
    if command == "test":
        return test(extra)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
