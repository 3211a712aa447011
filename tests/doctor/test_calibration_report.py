"""bench/doctor_calibration.py's report, the one docs/doctor.md prints: it reads the
stored runs, counts the held-out false alarms as the replay test does, and draws the
picture with held-out runs apart from the calibration."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


def test_report_counts_the_held_out_runs_and_draws_them(tmp_path, capsys):
    bench = runpy.run_path(str(ROOT / "bench" / "doctor_calibration.py"))
    held_out = DATA / "doctor_healthy_held_out.json"
    png = tmp_path / "doctor.png"
    bench["main"](
        ["report", str(DATA / "doctor_healthy_calibration.json"),
         str(DATA / "doctor_broken_cartpole.json"),
         "--held-out", str(held_out), "--png", str(png)]
    )  # fmt: skip
    out = capsys.readouterr().out
    n_held = len(json.loads(held_out.read_text())["runs"])
    n_calibration = len(
        json.loads((DATA / "doctor_healthy_calibration.json").read_text())["runs"]
    )
    assert f"calibration healthy runs ({n_calibration})" in out
    assert f"held-out healthy runs ({n_held})" in out
    assert f"false alarms: 0 of {n_held} healthy runs: a rate above" in out
    assert "entropy bonus, wrong sign (0.5): [" in out and "'entropy_collapse'" in out
    assert png.stat().st_size > 10_000
