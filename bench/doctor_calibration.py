"""Calibrate the PPO doctor on the spread of healthy runs, and check it on broken ones.

    python bench/doctor_calibration.py record cartpole-torch --seeds 1 2 3 --out runs.json
    python bench/doctor_calibration.py record broken --out broken.json
    python bench/doctor_calibration.py report runs.json ... --held-out held.json \
        --png docs/img/doctor_calibration.png
    python bench/doctor_calibration.py replay-noise

`record` trains runs and stores the per-update metrics the doctor reads (columns, 4
significant digits, NaN as null: the format of the tests/data/doctor_*.json files):

- cartpole-torch: CartPole-v1 with the CLI's defaults on the batched torch env, one
  population (`ppo_lessons.population.train_population`) of all the seeds;
- cartpole-gym: the same settings on Gymnasium's vector env, one `train` per seed;
- cli-torch: what the CLI trains with `--env-backend torch` and no other flag, the
  batched env's fast CartPole-v1 settings (`ppo_lessons.presets.FAST_PRESETS`, 150,000
  steps unless `--total-steps` says otherwise), one population of all the seeds;
- acrobot, pendulum, mountaincar-continuous: the presets on the torch env (one
  population each; the fast settings where there are some), with the preset's budget
  unless `--total-steps` says otherwise;
- mountaincar: the MountainCar-v0 preset on Gymnasium's vector env (it has no batched
  env), one `train` per seed;
- preset: the preset of `--env-id` (LunarLander-v3, Hopper-v5, ...: those without a
  batched env) on Gymnasium's vector env, one `train` per seed; with `--env-backend
  torch` its fast settings on the batched env (CartPoleNoVel-v1's GRU preset);
- broken: CartPole-v1 on the torch env, seed 1, each run broken in one way: learning
  rate 100x too high and 1000x too low, 1000 epochs per update (8 updates, the learning
  rate not annealed), vf_coef 0, clip range 0.001, and the entropy bonus added with
  the wrong sign at weight 0.5 (`--only NAME ...` records some of them).

`report` reads stored runs, computes each rule's statistic (`rule_statistics`) and
prints a table of the healthy runs' range against the threshold (the calibration runs
and the `--held-out` ones apart), the held-out runs by preset with their false alarms,
and the findings of every broken run; with `--png` it draws one panel per statistic
(calibration runs as dots, held-out runs as open circles, broken runs as crosses, the
threshold as a line). The findings are the trainer's: made with the env's solved
threshold. Every run takes one torch thread unless
`--torch-threads` says otherwise. `replay-noise` measures the replay error
(`replay_mismatch`) of float32 recomputation and of a recurrent policy replayed wrongly.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppo_lessons import doctor  # noqa: E402
from ppo_lessons.doctor import diagnose  # noqa: E402
from ppo_lessons.doctor_rules import first_sustained  # noqa: E402
from ppo_lessons.envs import solved_threshold  # noqa: E402

FIELDS = (
    "update", "episodic_return", "episodic_length", "approx_kl", "clip_fraction",
    "entropy", "explained_variance", "value_loss", "policy_loss", "replay_error",
)  # fmt: skip


def compact(history: list[dict]) -> dict[str, list]:
    """The doctor's fields of a history as columns, 4 significant digits, NaN: null."""

    def number(v):
        if isinstance(v, int):
            return v
        return None if not math.isfinite(v) else float(f"{v:.4g}")

    # replay_error only where the trainer wrote it (a null would read as a NaN)
    fields = [k for k in FIELDS if k != "replay_error" or k in history[0]]
    return {k: [number(row[k]) for row in history] for k in fields}


def rows(columns: dict[str, list] | list[dict]) -> list[dict]:
    """A stored run's columns (or rows, as the older tests/data files hold them)
    back as the trainer's rows (null: NaN)."""
    if isinstance(columns, list):
        return [
            {k: (math.nan if v is None else v) for k, v in row.items()}
            for row in columns
        ]
    n = len(columns["update"])
    return [
        {k: (math.nan if v[i] is None else v[i]) for k, v in columns.items()}
        for i in range(n)
    ]


def findings(env_id: str, history: list[dict]) -> list[str]:
    """The doctor's findings on a stored run, as the trainer's: with its env's solved
    threshold."""
    return [
        f.problem for f in diagnose(history, reward_threshold=solved_threshold(env_id))
    ]


def run_record(name: str, result_history, config, **extra) -> dict:
    return {
        "name": name,
        "env_id": config.env_id,
        "env_backend": config.env_backend,
        "seed": config.seed,
        "total_steps": config.total_steps,
        **extra,
        "history": compact(result_history),
    }


def record_population(config, seeds, variants=None, name=None, **extra) -> list[dict]:
    from ppo_lessons.population import train_population

    result = train_population(config, seeds, variants, progress=False)
    return [
        run_record(name or m.variant, m.history, m.config, **extra)
        for m in result.members
    ]


def wrong_sign_ppo_loss(*args):
    """ppo_loss with the entropy bonus added with the wrong sign: + ent_coef · H."""
    import ppo_lessons.update as update

    terms = update.ppo_loss_terms(*args)
    return terms.loss + 2 * args[10] * terms.entropy


EPOCHS = "1000 epochs (no annealing)"
WRONG_SIGN = "entropy bonus, wrong sign (0.5)"


def record(group, seeds, total_steps, threads, only=(), env_id=None, backend=None):
    from ppo_lessons.presets import FAST_PRESETS, preset
    from ppo_lessons.trainer import train
    from ppo_lessons.trainer_config import PPOConfig

    common = dict(torch_threads=threads, device="cpu")
    if group == "cartpole-torch":
        config = PPOConfig(
            env_id="CartPole-v1", env_backend="torch",
            total_steps=total_steps or 200_000, **common,
        )  # fmt: skip
        return record_population(config, seeds, name="healthy", settings="defaults")
    if group == "cartpole-gym":
        out = []
        for seed in seeds:
            config = PPOConfig(
                env_id="CartPole-v1", seed=seed, total_steps=total_steps or 200_000,
                **common,
            )  # fmt: skip
            history = train(config, progress=False).history
            out.append(run_record("healthy", history, config, settings="CLI defaults"))
        return out
    if group == "cli-torch":  # `--env-backend torch` starts from FAST_PRESETS
        config = preset("CartPole-v1", env_backend="torch", **common)
        if total_steps:
            config = config.replace(total_steps=total_steps)
        return record_population(
            config, seeds, name="healthy", settings="CLI defaults (fast preset)"
        )
    if group in ("acrobot", "pendulum", "mountaincar-continuous"):
        env_id = {
            "acrobot": "Acrobot-v1",
            "pendulum": "Pendulum-v1",
            "mountaincar-continuous": "MountainCarContinuous-v0",
        }[group]
        config = preset(env_id, env_backend="torch", **common)
        if total_steps:
            config = config.replace(total_steps=total_steps)
        fast = env_id in FAST_PRESETS
        settings = "fast preset" if fast else "preset"
        return record_population(config, seeds, name="healthy", settings=settings)
    if group in ("mountaincar", "preset"):  # one `train` per seed
        if group == "mountaincar":  # no batched env: Gymnasium's
            env_id, backend = "MountainCar-v0", "gymnasium"
        if env_id is None:
            raise SystemExit("record preset needs --env-id")
        backend = backend or "gymnasium"
        fast = backend == "torch" and env_id in FAST_PRESETS
        out = []
        for seed in seeds:
            config = preset(env_id, env_backend=backend, seed=seed, **common)
            if total_steps:
                config = config.replace(total_steps=total_steps)
            history = train(config, progress=False).history
            settings = "fast preset" if fast else "preset"
            out.append(run_record("healthy", history, config, settings=settings))
            print(config.env_id, seed, "recorded", flush=True)
        return out
    if group == "broken":
        steps = total_steps or 10_240
        base = PPOConfig(
            env_id="CartPole-v1", env_backend="torch", total_steps=steps, **common
        )
        variants = {
            "learning rate 0.1 (100x)": {"learning_rate": 0.1},
            "learning rate 1e-6 (1/1000)": {"learning_rate": 1e-6},
            "vf_coef 0": {"vf_coef": 0.0},
            "clip_coef 0.001": {"clip_coef": 0.001},
        }
        variants = {k: v for k, v in variants.items() if not only or k in only}
        out = record_population(base, seeds, variants) if variants else []
        if (
            not only or EPOCHS in only
        ):  # update_epochs is shared: a population of its own
            epochs = base.replace(
                update_epochs=1000, anneal_lr=False, total_steps=8 * base.batch_size
            )
            out += record_population(epochs, seeds, name=EPOCHS)
        if not only or WRONG_SIGN in only:  # ent_coef >= 0 in PPOConfig: flip the loss
            for seed in seeds:
                config = base.replace(seed=seed, ent_coef=0.5)
                fns = {"ppo_loss": wrong_sign_ppo_loss}
                result = train(config, progress=False, functions=fns)
                out.append(run_record(WRONG_SIGN, result.history, config))
        return out
    raise SystemExit(f"unknown group {group!r}")


# ---------------------------------------------------------------- the statistics


# statistic -> (the rule fires when it is "above" or "below", the threshold)
THRESHOLDS: dict[str, tuple[str, float]] = {
    "median approx KL": ("above", doctor.KL_HIGH),
    "largest approx KL": ("above", doctor.KL_JUMP),
    "median clip fraction": ("above", doctor.CLIP_HIGH),
    "median |policy loss|": ("above", doctor.POLICY_LOSS_HIGH),
    "held early entropy / start, any": ("below", 0.1),
    "held early entropy / start": ("below", 0.1),
    "held early entropy drop per dim": ("above", doctor.COLLAPSE_DROP),
    # read only when a collapse is held: excused when the returns had come this far
    # towards the task's solved threshold by the collapse, and this far by the end
    "returns' share of the way to solved, at the collapse": (
        "below",
        doctor.LEARNED_AT_COLLAPSE,
    ),
    "returns' share of the way to solved": ("below", doctor.NEAR_SOLVED),
    "late entropy / start": ("above", 0.95),
    "late explained variance": ("below", doctor.EV_LOW),
    "held value loss / early": ("above", 100.0),  # and above 1e3
    "value loss at time limit / without": ("above", doctor.TIME_LIMIT_RATIO),
    "median |approx KL|": ("below", doctor.KL_LOW),
}
# statistics drawn on a log axis (value: the floor smaller values are drawn at)
LOG_FLOOR = {
    "median approx KL": 1e-7,
    "largest approx KL": 1e-7,
    "median |policy loss|": 1e-5,
    "held value loss / early": 1e-1,
    "value loss at time limit / without": 1e-2,
    "median |approx KL|": 1e-7,
}


def rule_statistics(
    history: list[dict], reward_threshold: float | None = None
) -> dict[str, float]:
    """Each rule's statistic on one history, computed as `ppo_lessons.doctor` reads
    it (nan where the rule does not read this run). The entropy-collapse statistics
    are the level held for `doctor.sustain(n)` consecutive updates of the first
    quarter: in any window ("any"), and in the windows that rule judges (before the
    returns rose, or every window when the collapse lasts into the second half);
    a collapse held there is excused when the returns' share of the way to the
    task's solved threshold (`doctor.solved_share`; read only then) had reached
    `doctor.LEARNED_AT_COLLAPSE` by the update in which the collapse held and reaches
    `doctor.NEAR_SOLVED` by the end."""
    series = doctor._series
    nan = math.nan
    out = dict.fromkeys(THRESHOLDS, nan)
    kl = [v for _, v in series(history, "approx_kl")]
    if len(kl) >= 3:
        out["median approx KL"] = median(kl)
        out["largest approx KL"] = max(kl)
        out["median |approx KL|"] = median(abs(v) for v in kl)
    clip = [v for _, v in series(history, "clip_fraction")]
    if len(clip) >= 3:
        out["median clip fraction"] = median(clip)
    loss = [abs(v) for _, v in series(history, "policy_loss")]
    if len(loss) >= 3:
        out["median |policy loss|"] = median(loss)
    entropy = series(history, "entropy")
    if len(entropy) >= 8:
        start = entropy[0][1]
        early = entropy[: max(2, len(entropy) // 4)]
        n = doctor.sustain(len(entropy))
        dims = doctor.action_dims(start)
        held, drop = [], []
        if start > 0 and len(early) >= n:  # every window, learned or not
            out["held early entropy / start, any"] = (
                min(
                    max(v for _, v in early[i : i + n])
                    for i in range(len(early) - n + 1)
                )
                / start
            )
        for i in range(len(early) - n + 1):
            window = [v for _, v in early[i : i + n]]
            second = median(v for _, v in entropy[len(entropy) // 2 :])
            lasts = doctor._collapsed(start, second)
            if not lasts and doctor._learned_by(history, early[i + n - 1][0]):
                break
            held.append(max(window))
        if held and start > 0:
            out["held early entropy / start"] = min(held) / start
        if held:
            drop = (start - min(held)) / dims
            out["held early entropy drop per dim"] = drop
        if held and doctor._collapsed(start, min(held)):  # read with a collapse
            # the update that ends the first window the rule finds collapsed
            first = first_sustained(early, lambda v: doctor._collapsed(start, v), n)
            collapse = early[first + n - 1][0]
            then = doctor.solved_share(history, reward_threshold, until=collapse)
            end = doctor.solved_share(history, reward_threshold)
            if then is not None:
                out["returns' share of the way to solved, at the collapse"] = then
            if end is not None:
                out["returns' share of the way to solved"] = end
        late = [v for _, v in entropy[-max(2, len(entropy) // 4) :]]
        if start > doctor.COLLAPSED_NATS:
            out["late entropy / start"] = min(late) / start
    ev = [(u, v) for u, v in series(history, "explained_variance") if math.isfinite(v)]
    flat = doctor.flat_targets(history)
    second = ev[len(ev) // 2 :]
    late_ev = [v for u, v in second if u not in flat]
    if len(ev) >= 8 and len(late_ev) >= max(4, len(second) / 2):
        out["late explained variance"] = median(late_ev)
    vloss = series(history, "value_loss")
    if len(vloss) >= 8:
        base = max(median([v for _, v in vloss[: max(3, len(vloss) // 5)]]), 1e-3)
        n = doctor.sustain(len(vloss))
        values = [v for _, v in vloss]
        # the rule also asks for a value loss above 1e3: below, the ratio counts 0
        held = [min(values[i : i + n]) for i in range(len(values) - n + 1)]
        out["held value loss / early"] = max(v / base if v > 1e3 else 0.0 for v in held)
    lengths = series(history, "episodic_length")
    finite = [v for _, v in lengths if math.isfinite(v)]
    if finite:
        cap, by_update = max(finite), dict(vloss)
        cut = [by_update[u] for u, v in lengths if v >= cap and u in by_update]
        uncut = [by_update[u] for u, v in lengths if math.isnan(v) and u in by_update]
        peak = max((v for _, v in vloss if math.isfinite(v)), default=0.0)
        flat = median(cut) < doctor.FLAT_TARGETS * peak if cut else True
        if len(cut) >= 3 and len(uncut) >= 3 and not flat:
            ratio = median(cut) / max(median(uncut), 1e-12)
            out["value loss at time limit / without"] = ratio
    return out


def preset_label(run: dict) -> str:
    """Which settings a stored run trained with, its env, backend and budget: the
    rows of the report's false alarms by preset."""
    backend = run.get("env_backend", "gymnasium")
    settings = run.get("settings", "preset")
    steps = run.get("total_steps") or run.get("steps")
    return f"{run['env_id']} ({backend}), {settings}, {steps:,} steps"


def late_return(history: list[dict]) -> float:
    """Mean episodic return of the last quarter of the updates in which episodes
    ended (nan when none did)."""
    ret = [r.get("episodic_return") for r in history]
    ret = [v for v in ret if isinstance(v, int | float) and math.isfinite(v)]
    late = ret[-max(1, len(ret) // 4) :]
    return sum(late) / len(late) if late else math.nan


def seed_ranges(seeds) -> str:
    """1 2 3 5 -> '1-3, 5'."""
    out, run = [], []
    for seed in sorted(s for s in seeds if s is not None):
        if run and seed == run[-1] + 1:
            run.append(seed)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [seed]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(out)


def report(paths: list[str], png: str | None, held_out: list[str] = ()) -> None:
    """The tables of docs/doctor.md: each rule's statistic over the healthy runs of
    `paths` (the calibration) and, apart, of `held_out`; the held-out runs by preset
    with their false alarms (every healthy run's when none are held out); the
    broken runs' findings. The picture draws held-out runs as open circles."""
    runs = []
    sources = [(p, False) for p in paths] + [(p, True) for p in held_out]
    for path, is_held_out in sources:
        data = json.loads(Path(path).read_text())
        for run in data["runs"]:
            history = rows(run["history"])
            if "name" not in run:  # the preset histories: healthy, but Ant's 10 epochs
                ant10 = run["env_id"] == "Ant-v5" and run.get("update_epochs", 10) == 10
                run["name"] = "Ant-v5, 10 epochs" if ant10 else "healthy"
            runs.append(
                {
                    "label": f"{run['env_id']} ({run.get('env_backend', 'gymnasium')})",
                    "preset": preset_label(run),
                    "name": run["name"],
                    "healthy": run["name"] == "healthy",
                    "stats": rule_statistics(history, solved_threshold(run["env_id"])),
                    "findings": findings(run["env_id"], history),
                    "seed": run.get("seed"),
                    "late_return": late_return(history),
                    "held_out": is_held_out,
                }
            )
    thresholds = THRESHOLDS
    healthy = [r for r in runs if r["healthy"]]
    print(f"{len(healthy)} healthy runs, {len(runs) - len(healthy)} broken\n")
    for group_name, held in (("calibration", False), ("held-out", True)):
        group = [r for r in healthy if r["held_out"] == held]
        if not group:
            continue
        print(
            f"| statistic | fires when | {group_name} healthy runs ({len(group)}): "
            "min / median / max | threshold |\n| --- | --- | --- | --- |"
        )
        for key, (side, threshold) in thresholds.items():
            values = [r["stats"][key] for r in group if math.isfinite(r["stats"][key])]
            if values:
                spread = f"{min(values):.3g} / {median(values):.3g} / {max(values):.3g}"
            else:
                spread = "-"
            print(f"| {key} | {side} | {spread} | {threshold:g} |")
        print()
    if any(r["held_out"] for r in healthy):
        healthy = [r for r in healthy if r["held_out"]]
    alarms = [r for r in healthy if r["findings"]]
    # with k of n runs named, the rate's one-sided 95% upper bound; for k = 0 it is
    # 1 - 0.05^(1/n) (the rule of three: about 3/n)
    print(
        "\n| healthy runs | seeds | runs | named | rate ruled out (95%) | last-quarter "
        "return |\n| --- | --- | ---: | ---: | ---: | --- |"
    )
    for label in sorted({r["preset"] for r in healthy}):
        group = [r for r in healthy if r["preset"] == label]
        named = sum(bool(r["findings"]) for r in group)
        bound = f"above {1 - 0.05 ** (1 / len(group)):.1%}" if not named else "-"
        ret = [r["late_return"] for r in group if math.isfinite(r["late_return"])]
        spread = f"{min(ret):.4g} to {max(ret):.4g}" if ret else "-"
        print(
            f"| {label} | {seed_ranges(r['seed'] for r in group)} | {len(group)} | "
            f"{named} | {bound} | {spread} |"
        )
    print(f"\nfalse alarms: {len(alarms)} of {len(healthy)} healthy runs", end="")
    if not alarms:  # the pooled one-sided 95% bound
        print(f": a rate above {1 - 0.05 ** (1 / len(healthy)):.1%} ruled out", end="")
    print()
    for r in alarms:
        print(f"  {r['label']}: {r['findings']}")
    print("\nbroken runs:")
    for r in runs:
        if not r["healthy"]:
            print(f"  {r['name']}: {r['findings']}")
    if png:
        draw(runs, thresholds, png)


def draw(runs, thresholds, png: str) -> None:
    """One panel per statistic that some healthy run reads: healthy runs as dots, one
    row per env (and backend), broken runs as crosses, the threshold as a red line;
    log axes clip at their floor (a KL of 0 is drawn at 1e-7)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def finite(r, key):
        v = r["stats"][key]
        return math.isfinite(v) and not (key in LOG_FLOOR and v == 0 and r["healthy"])

    keys = [k for k in thresholds if any(finite(r, k) for r in runs if r["healthy"])]
    cols = 3
    nrows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 2.9 * nrows))
    labels = sorted({r["label"] for r in runs if r["healthy"]})
    # tab20's dark shades, then its light ones: neighbours differ in hue (20
    # colours; more envs would repeat one)
    palette = plt.cm.tab20.colors[0::2] + plt.cm.tab20.colors[1::2]
    colours = {label: palette[i % len(palette)] for i, label in enumerate(labels)}
    broken = sorted({r["name"] for r in runs if not r["healthy"]})
    names = [lab.replace(" (", ", ").rstrip(")") for lab in labels] + broken
    for ax, key in zip(axes.flat, keys, strict=False):
        side, threshold = thresholds[key]
        floor = LOG_FLOOR.get(key)

        def shown(values, floor=floor):
            return [max(v, floor) for v in values] if floor else values

        for i, label in enumerate(labels):
            for held in (False, True):  # calibration filled, held-out open
                values = [
                    r["stats"][key]
                    for r in runs
                    if r["healthy"]
                    and r["label"] == label
                    and r["held_out"] == held
                    and finite(r, key)
                ]
                colour = colours[label]
                ax.scatter(shown(values), [i] * len(values), s=12, alpha=0.6,
                           facecolors="none" if held else colour,
                           edgecolors=colour)  # fmt: skip
        for j, name in enumerate(broken):
            values = [
                r["stats"][key]
                for r in runs
                if r["name"] == name and math.isfinite(r["stats"][key])
            ]
            ax.scatter(shown(values), [len(labels) + j] * len(values), marker="x",
                       color="black")  # fmt: skip
        ax.axvline(threshold, color="red", lw=1)
        ax.set_title(f"{key} (named {side} {threshold:g})", fontsize=8)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names, fontsize=5.5)
        if floor:
            ax.set_xscale("log")
            ax.set_xlim(left=floor / 2)  # the floor and the threshold both in view
        ax.tick_params(axis="x", labelsize=6)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.suptitle(
        "The doctor's statistics: healthy runs (dots: calibration filled, held-out "
        "open), broken runs (x), threshold (red)",
        fontsize=9,
    )
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


def replay_noise(seed: int = 0) -> dict[str, float]:
    """The largest |log π recomputed − log π stored| of a rollout when nothing is wrong
    (float32, same parameters, other batch shapes) and when a recurrent policy is
    replayed wrongly: what REPLAY_TOLERANCE sits between.

    Categorical (4 -> 2) and Gaussian (17 -> 6) MLP policies: log π of 2048 samples
    in one batch, recomputed in shuffled minibatches of 64. A GRU policy (4 -> 64 ->
    2) stepped through 128 steps of 8 envs one step at a time, as a rollout does,
    then replayed as whole sequences: from the rollout's initial state (zeros), from
    another initial state, and with the time and env axes mixed."""
    import torch

    torch.manual_seed(seed)
    nn = torch.nn
    out = {}
    for name, (n_in, n_out) in {"categorical": (4, 2), "gaussian": (17, 6)}.items():
        net = nn.Sequential(
            nn.Linear(n_in, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
            nn.Linear(64, n_out),
        )  # fmt: skip

        def log_prob(x, a, net=net, name=name, n_out=n_out):
            if name == "categorical":
                return torch.distributions.Categorical(logits=net(x)).log_prob(a)
            normal = torch.distributions.Normal(net(x), 0.5 * torch.ones(n_out))
            return normal.log_prob(a).sum(-1)

        with torch.no_grad():
            obs = 3 * torch.randn(2048, n_in)
            logits = net(obs)
            if name == "categorical":
                actions = torch.distributions.Categorical(logits=logits).sample()
            else:
                actions = logits + 0.5 * torch.randn_like(logits)
            stored = log_prob(obs, actions)
            again = torch.empty_like(stored)
            order = torch.randperm(2048)
            for k in range(0, 2048, 64):
                idx = order[k : k + 64]
                again[idx] = log_prob(obs[idx], actions[idx])
        out[f"{name} MLP, minibatches of 64"] = (again - stored).abs().max().item()
    gru, head = nn.GRU(4, 64), nn.Linear(64, 2)
    steps, envs = 128, 8
    with torch.no_grad():
        obs, h = torch.randn(steps, envs, 4), torch.zeros(1, envs, 64)
        stored, actions = [], []
        for t in range(steps):
            y, h = gru(obs[t : t + 1], h)
            dist = torch.distributions.Categorical(logits=head(y[0]))
            actions.append(dist.sample())
            stored.append(dist.log_prob(actions[-1]))
        stored, actions = torch.stack(stored), torch.stack(actions)
        replays = {
            "GRU replayed from its initial state": (obs, torch.zeros(1, envs, 64)),
            "GRU replayed from another initial state": (
                obs, 0.5 * torch.randn(1, envs, 64),
            ),
            "GRU replayed with time and env axes mixed": (
                obs.transpose(0, 1).reshape(steps, envs, 4), torch.zeros(1, envs, 64),
            ),
        }  # fmt: skip
        for name, (x, h0) in replays.items():
            logits = head(gru(x, h0)[0])
            again = torch.distributions.Categorical(logits=logits).log_prob(actions)
            out[name] = (again - stored).abs().max().item()
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="train runs and store their histories")
    rec.add_argument(
        "group",
        choices=[
            "cartpole-torch",
            "cartpole-gym",
            "cli-torch",
            "acrobot",
            "pendulum",
            "mountaincar",
            "mountaincar-continuous",
            "preset",
            "broken",
        ],  # fmt: skip
    )
    rec.add_argument("--env-id", default=None, help="preset: which env's preset")
    rec.add_argument("--env-backend", default=None, choices=["gymnasium", "torch"])
    rec.add_argument("--seeds", type=int, nargs="+", default=[1])
    rec.add_argument("--total-steps", type=int, default=None)
    rec.add_argument("--torch-threads", type=int, default=1)
    rec.add_argument("--out", required=True)
    rec.add_argument("--only", nargs="+", default=(), help="broken: these runs only")
    rep = sub.add_parser("report", help="rule statistics of stored runs")
    rep.add_argument("paths", nargs="+")
    rep.add_argument("--png", default=None)
    rep.add_argument("--held-out", nargs="+", default=[], help="held-out runs")
    sub.add_parser("replay-noise", help="the replay error with and without a bug")
    args = parser.parse_args(argv)
    if args.command == "replay-noise":
        for name, error in replay_noise().items():
            print(f"{name}: {error:.2g}")
        print(f"REPLAY_TOLERANCE: {doctor.REPLAY_TOLERANCE:g}")
        return
    if args.command == "record":
        runs = record(
            args.group,
            args.seeds,
            args.total_steps,
            args.torch_threads,
            args.only,
            args.env_id,
            args.env_backend,
        )
        command = "python bench/doctor_calibration.py " + " ".join(sys.argv[1:])
        Path(args.out).write_text(
            json.dumps({"source": command, "runs": runs}, separators=(",", ":"))
        )
        for run in runs:
            found = findings(run["env_id"], rows(run["history"]))
            print(run["name"], run["env_id"], run["seed"], found)
    else:
        report(args.paths, args.png, args.held_out)


if __name__ == "__main__":
    main()
