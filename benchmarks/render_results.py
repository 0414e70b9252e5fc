"""Render the tables of benchmarks/RESULTS.md from the benchmarks' JSON, so no number drifts.

RESULTS.md marks each rendered block with ``<!-- render: NAME -->`` and ``<!-- end: NAME -->``;
the block is replaced by ``RENDERERS[NAME]`` applied to ``benchmarks/results/<file>.json``.
Text outside the blocks is left alone.

Run:  .venv/bin/python benchmarks/render_results.py           # rewrite RESULTS.md
      .venv/bin/python benchmarks/render_results.py --check   # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from lenet_presets import summarise  # benchmarks/ is on sys.path when run as a script

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"


def _load(name: str) -> dict:
    return json.loads((HERE / "results" / f"{name}.json").read_text())


def _f(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _written(res: dict) -> str:
    """When and where a result was written: the opening of every rendered block."""
    m, c = res["machine"], res.get("commit")  # results before the commit was recorded: none
    at = f", commit {c['sha'][:7]}" if c else ""
    at += " with uncommitted changes" if c and c["dirty"] else ""
    return f"Written {res['when_utc']} ({m['cpu_count']} cores, torch {m['torch']}{at})"


def _median(values: list[float]) -> float:
    v = sorted(values)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def _panel(res: dict) -> str:
    """One panel run: a row per function, then the summary against the targets."""
    t = res["targets"]
    has_study = any(r["study_test_mse"] is not None for r in res["rows"])
    has_prev = any(r["sgd_ensemble_test_mse"] is not None for r in res["rows"])
    head = ["function (seed)", "noise sd", "GP test MSE", "default test MSE", "default / GP",
            "band coverage (GP)", "default seconds"]  # fmt: skip
    head += ["study's pipeline"] * has_study + ["previous default (SGD ensemble)"] * has_prev
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in res["rows"]:
        cells = [f"{r['function']} ({r['seed']})", f"{r['noise_sd']}", _f(r["gp_test_mse"]),
                 _f(r["default_test_mse"]), f"{r['ratio_default_to_gp']:.2f}",
                 f"{_pct(r['default_band_coverage'])} ({_pct(r['gp_band_coverage'])})",
                 f"{r['default_seconds']:.1f}"]  # fmt: skip
        cells += [_f(r["study_test_mse"])] * has_study
        cells += [_f(r["sgd_ensemble_test_mse"])] * has_prev
        lines.append("| " + " | ".join(cells) + " |")
    met = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    lines += [
        "",
        f"Default / GP test MSE: median **{res['median_ratio']:.2f}** (target "
        f"<= {t['median_ratio']}: {met(res['median_ratio'] <= t['median_ratio'])}), worst "
        f"**{res['worst_ratio']:.2f}** on {res['worst_function']} (target <= {t['worst_ratio']}: "
        f"{met(res['worst_ratio'] <= t['worst_ratio'])}). Band coverage of the test points, "
        f"median: {_pct(res['median_band_coverage'])}, the GP's "
        f"{_pct(res['median_gp_band_coverage'])}.",
    ]
    widths = res.get("median_coverage_by_band_scale")
    if widths:  # the band's width read off the same runs: how band_scale was chosen
        lines[-1] += " Median coverage had the band been widened by " + ", ".join(
            f"{k}: {_pct(v)}" for k, v in widths.items()) + "."  # fmt: skip
    if has_study:
        study = [r["study_test_mse"] / r["gp_test_mse"] for r in res["rows"]]
        study.sort()
        mid = (study[(len(study) - 1) // 2] + study[len(study) // 2]) / 2
        lines[-1] += f" The study's pipeline: median {mid:.2f}x the GP, worst {study[-1]:.1f}x."
    return "\n".join(lines)


def _shipped(res: dict, name: str) -> dict:
    """A panel run with --set overrides is a probe, not the default these tables claim."""
    if res.get("overrides"):
        raise SystemExit(f"{name}.json was run with --set {res['overrides']}: not the defaults")
    return res


def regression_quality() -> str:
    res = _shipped(_load("regression_quality"), "regression_quality")
    out = [_written(res) + f", reported seeds {res['seed0']}-"
           f"{res['seed0'] + len(res['rows']) - 1}.", ""]  # fmt: skip
    t = res["targets"]
    if res["study_data"]:
        out += ["| command (seed 0) | search | train MSE | test MSE | GP test MSE | band "
                "coverage (GP) | seconds in run | wall seconds |",
                "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in res["study_data"]:
            out.append(
                f"| `{r['command']}` | {r['search']} | {_f(r['train_mse'])} | "
                f"**{_f(r['test_mse'])}** | {_f(r['gp_test_mse'])} | "
                f"{_pct(r['band_coverage'])} ({_pct(r['gp_band_coverage'])}) | "
                f"{r['seconds']:.1f} | {r['wall_seconds']:.1f} |"
            )
        d = res["study_data"][0]
        ok = d["test_mse"] <= t["study_data_test_mse"]
        verdict = "met" if ok else "**not met**"
        out += ["", f"Study data: the default's test MSE {d['test_mse']:.4f} (target <= "
                f"{t['study_data_test_mse']}: {verdict}; the study published 0.110), in "
                f"{d['wall_seconds']:.1f} s wall with figures.", ""]  # fmt: skip
    out.append(_panel(res))
    return "\n".join(out)


def regression_quality_dev() -> str:
    res = _shipped(_load("regression_quality_dev"), "regression_quality_dev")
    seeds = f"{res['seed0']}-{res['seed0'] + len(res['rows']) - 1}"
    head = f"The development seeds ({seeds}), written {res['when_utc']}, defaults as shipped:"
    return head + "\n\n" + _panel(res)


def regression_probes(names: tuple[str, ...] = ()) -> str:
    """Development-seed probes (``--set``, the JSON files ``names``) beside the shipped
    default, function by function: ratio to the GP and band coverage. What a lever did, not a
    claim about the default."""
    shipped = _shipped(_load("regression_quality_dev"), "regression_quality_dev")
    probes = [_load(name) for name in names]
    for res in probes:
        if res["seed0"] != shipped["seed0"] or not res["overrides"]:
            raise SystemExit("a regression probe must be a --set run on the development seeds")
    arms = [("shipped default", shipped)] + [
        (", ".join(f"{k}={v:g}" for k, v in r["overrides"].items()), r) for r in probes
    ]
    def cover(row: dict, kind: str) -> float:
        """Coverage of the band as computed (width 1, as the probes ran, before band_scale):
        a run's row (``kind`` "default") or a panel's medians ("median")."""
        widths = row.get(f"{kind}_coverage_by_band_scale")
        return widths["1"] if widths else row[f"{kind}_band_coverage"]

    out = [f"Development seeds {shipped['seed0']}-{shipped['seed0'] + len(shipped['rows']) - 1}"
           " only; ratio to the GP (band coverage of the band as computed, before the 1.25 "
           "widening, which the first probes predate):", "",
           "| function | " + " | ".join(f"`{name}`" for name, _ in arms) + " |",
           "|---|" + "---|" * len(arms)]  # fmt: skip
    for i, row in enumerate(shipped["rows"]):
        cells = []
        for _, res in arms:
            r = res["rows"][i]
            assert r["function"] == row["function"]
            cells.append(f"{r['ratio_default_to_gp']:.2f} ({_pct(cover(r, 'default'))})")
        out.append(f"| {row['function']} | " + " | ".join(cells) + " |")
    out.append("| **median** | " + " | ".join(
        f"**{r['median_ratio']:.2f}** ({_pct(cover(r, 'median'))}; GP "
        f"{_pct(r['median_gp_band_coverage'])})" for _, r in arms) + " |")  # fmt: skip
    out.append("| worst | " + " | ".join(f"{r['worst_ratio']:.2f}" for _, r in arms) + " |")
    return "\n".join(out)


PROBES = ("regression_probe_ladder", "regression_probe_ladder_lr")
EVIDENCE_PROBES = ("regression_probe_evidence_keep1", "regression_probe_evidence_narrow_keep1",
                   "regression_probe_evidence_keep2of8")  # fmt: skip
LR_PROBES = ("regression_probe_lr1e-3", "regression_probe_e4000",
             "regression_probe_lr1e-3_e4000")  # fmt: skip


def regression_stopping(columns: tuple[int, ...] = (1000, 2000, 3000, 4000, 6000)) -> str:
    """The default's ratio to the GP along one long fit per development function, and what
    each stopping rule makes of it (``regression_stopping.py``)."""
    res = _load("regression_stopping")
    rows, cols = res["rows"], [e for e in columns if str(e) in res["fixed"]]
    seeds = f"{res['seed0']}-{res['seed0'] + len(rows) - 1}"
    out = [f"{_written(res)}; development seeds {seeds}, one fit of {res['epochs']:,} epochs "
           f"per function, a snapshot every {res['every']}. Ratio to the GP by epoch; then the "
           "snapshot of lowest test MSE (no rule can know it), the snapshot of highest "
           "evidence, and the training MSE from 2,000 epochs to the last:", "",
           "| function (seed) | noise sd | " + " | ".join(f"{e:,}" for e in cols)
           + " | lowest test MSE (epoch) | highest evidence (epoch) | training MSE |",
           "|---|---|" + "---|" * (len(cols) + 3)]  # fmt: skip
    for i, r in enumerate(rows):
        at = {p["epoch"]: p for p in r["points"]}
        cells = [f"{at[e]['ratio_to_gp']:.2f}" for e in cols]
        cells.append(f"{res['oracle']['ratios'][i]:.2f} ({res['oracle']['epochs'][i]:,})")
        cells.append(f"{res['max_evidence']['ratios'][i]:.2f} "
                     f"({res['max_evidence']['epochs'][i]:,})")  # fmt: skip
        last = r["points"][-1]
        cells.append(f"{at[2000]['train_mse']:.4f} -> {last['train_mse']:.4f}" if 2000 in at
                     else f"{last['train_mse']:.4f}")  # fmt: skip
        out.append(f"| {r['function']} ({r['seed']}) | {r['noise_sd']:g} | "
                   + " | ".join(cells) + " |")  # fmt: skip
    rules = [(f"stop at {e:,}", res["fixed"][str(e)]) for e in cols]
    rules += [("lowest test MSE", res["oracle"]), ("highest evidence", res["max_evidence"])]
    out.append("| **median** | | " + " | ".join(f"**{s['median_ratio']:.2f}**" for _, s in rules)
               + " | |")  # fmt: skip
    out.append("| worst | | " + " | ".join(
        f"{s['worst_ratio']:.2f} ({s['worst_function']})" for _, s in rules) + " | |")  # fmt: skip
    return "\n".join(out)


def search_efficiency() -> str:
    res = _load("search_efficiency")
    t, seeds = res["targets"], res["seeds"]
    peaks = [s["matmul_peak_gflops"] for s in seeds]
    out = [f"{_written(res)[:-1]}, float32 matmul peak {min(peaks):.0f}-{max(peaks):.0f} "
           f"GFLOP/s in the run), `{res['command']}`.", "",
           "| seed | arm | seconds to a model | member-epochs | its own CV MSE | re-scored CV "
           "MSE | test MSE |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in res["rows"]:
        epochs = "-" if r["member_epochs"] is None else f"{r['member_epochs']:,}"
        out.append(f"| {r['seed']} | {r['arm']} | {r['seconds']:.1f} | {epochs} | "
                   f"{_f(r['search_cv_mse'])} | {_f(r['rescored_cv_mse'])} | "
                   f"{_f(r['test_mse'])} |")  # fmt: skip
    met = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    n = res["headline_trials"]
    good = sum(s["tpe_as_good"] for s in seeds)
    vs_seq, vs_pipe = res["speedup_vs_sequential"], res["speedup_vs_pipeline"]
    frac = res["population_peak_fraction"]
    per_seed = ", ".join(f"{s['speedup_vs_sequential']:.1f}x" for s in seeds)
    out += ["", f"**TPE at {n} trials (the CLI's default), median over seeds "
            f"{seeds[0]['seed']}-{seeds[-1]['seed']}: {vs_seq:.2f}x sooner than the careful "
            f"sequential arm** (per seed: {per_seed}; target {t['speedup_vs_sequential']:g}x: "
            f"{met(vs_seq >= t['speedup_vs_sequential'])}) and **{vs_pipe:.2f}x sooner than the "
            f"study's pipeline** (target {t['speedup_vs_pipeline']:g}x: "
            f"{met(vs_pipe >= t['speedup_vs_pipeline'])}). Re-scored CV MSE, median: TPE "
            f"{res['tpe_rescored_cv_mse']:.4f}, the sequential arm "
            f"{res['sequential_rescored_cv_mse']:.4f}; TPE's is at least as good on {good} of "
            f"{len(seeds)} seeds. The population's arithmetic rate: a median "
            f"{frac:.0%} of the matmul peak read beside it in the same run (target "
            f"{t['population_peak']:.0%}: {met(frac >= t['population_peak'])})."]  # fmt: skip
    by = {(r["seed"], r["arm"]): r["seconds"] for r in res["rows"]}
    pop = "PopulationSearchCV (random)"
    vs = {base: _median([by[(s["seed"], base)] / by[(s["seed"], pop)] for s in seeds])
          for base in ("sequential, divergence stopping",
                       "study pipeline (skorch + RandomizedSearchCV)")}  # fmt: skip
    seq, pipe = vs.values()
    out += ["", f"The same 20 candidates batched (`PopulationSearchCV`): a median {seq:.2f}x "
            f"sooner than the careful sequential arm and {pipe:.2f}x sooner than the study's "
            "pipeline."]
    for note in res.get("notes", []):
        out += ["", f"Note: {note}"]
    return "\n".join(out)


def search_efficiency_tpe_3folds() -> str:
    """The withdrawn 3-fold TPE default on the reported seeds: its headline, per seed."""
    res = _load("search_efficiency_tpe_3folds")
    seeds = res["seeds"]
    out = [f"{_written(res)}, TPE at {res['headline_trials']} trials on 3 folds of its own "
           "(the other arms on the 5 shared folds):", "",
           "| seed | x the sequential arm | x the pipeline | TPE re-scored CV MSE | the sequential "
           "arm's |", "|---|---|---|---|---|"]  # fmt: skip
    for s in seeds:
        out.append(f"| {s['seed']} | {s['speedup_vs_sequential']:.1f} | "
                   f"{s['speedup_vs_pipeline']:.1f} | {s['tpe_rescored_cv_mse']:.4f} | "
                   f"{s['sequential_rescored_cv_mse']:.4f} |")  # fmt: skip
    out.append(f"| **median** | **{res['speedup_vs_sequential']:.2f}** | "
               f"**{res['speedup_vs_pipeline']:.2f}** | **{res['tpe_rescored_cv_mse']:.4f}** | "
               f"**{res['sequential_rescored_cv_mse']:.4f}** |")  # fmt: skip
    return "\n".join(out)


def commands(name: str = "commands") -> str:
    res = _load(name)
    out = [_written(res) + f", `{res['command']}`; seed 0, the test set used once "
           "per row, at its end.", "",
           "| command | test accuracy | target | validation | best epoch | wall seconds |",
           "|---|---|---|---|---|---|"]  # fmt: skip
    for r in res["rows"]:
        if "test_accuracy" not in r:
            continue
        target = "-" if r["target"] is None else f">= {r['target']:.1%}"
        verdict = "" if r["met"] is None else (" (met)" if r["met"] else " (**not met**)")
        out.append(f"| `{r['command']} --data-dir ../shared/datasets` | "
                   f"**{r['test_accuracy']:.2%}** | {target}{verdict} | "
                   f"{r['val_accuracy']:.2%} | {r['best_epoch']} | {r['wall_seconds']:.1f} |")
    for r in res["rows"]:
        if "experiments" in r:
            heads = ", ".join(f"{k}: " + ", ".join(f"{m} {v:.4g}" for m, v in e.items())
                              for k, e in r["experiments"].items())  # fmt: skip
            out += ["", f"`{r['command']}`: {r['wall_seconds']:.1f} s wall; {heads}."]
    return "\n".join(out)


def regression_search() -> str:
    res = _load("regression_search")
    a = res["agreement"]
    out = [_written(res) + f", {res['n_iter']} candidates x {res['cv']} folds, seed "
           f"{res['seed']}; float32 matmul peak {res['matmul_gflops']:.0f} GFLOP/s in the run.",
           "", "| search | seconds (each run) | speed-up | best CV MSE | test MSE | failed "
           "candidates | GFLOP/s (share of the peak) |",
           "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in res["rows"]:
        rate = (f"{r['gflops']:.0f} ({r['fraction_of_matmul_peak']:.0%})" if "gflops" in r
                else "-")  # fmt: skip
        runs = ", ".join(f"{v:.1f}" for v in r["runs_s"])
        out.append(f"| {r['search']} | {r['seconds']:.1f} ({runs}) | {r['speedup']:.2f}x | "
                   f"{r['best_cv_mse']:.4f} | {r['test_mse']:.4f} | {r['n_failed']} | {rate} |")
    same = "the same" if a["same_best_params"] else "**different**"
    out += ["", f"Member by member ({a['members']} members): {a['failed_in_both']} failed in "
            f"both, {a['failed_in_one_only']} in one only; of the {a['both_finite']} finite in "
            f"both, {a['within_0.1pct']} agree within 0.1% and {a['within_1pct']} within 1% "
            f"(median relative difference {a['median_rel_diff']:.2%}); {same} best parameters. "
            "The members that differ most sit at the edge of stability, where training the same "
            "member again with an equivalent batch order moves it as much (fold MSE, sequential "
            "/ sequential again / population): "
            + "; ".join(f"{d['mse_sequential']:.3f} / {d['mse_sequential_rerun']:.3f} / "
                        f"{d['mse_population']:.3f}" for d in a["largest_differences"])
            + "."]  # fmt: skip
    return "\n".join(out)


def time_to_accuracy() -> str:
    res = _load("time_to_accuracy")
    arms = [a for a in ("tutorial", "recipe", "skorch", "glassnet")
            if any(r["arm"] == a for r in res["rows"])]  # fmt: skip
    names = {"tutorial": "tutorial loop", "recipe": "plain loop + glassnet's recipe",
             "skorch": "skorch", "glassnet": "**glassnet**"}  # fmt: skip
    speed = {(s["model"], s["threshold"], s["over"]): s for s in res["speedups"]}
    head = ["model", "threshold (validation)", *(names[a] for a in arms), "glassnet vs tutorial",
            "glassnet vs recipe-matched loop"]  # fmt: skip
    out = [_written(res) + f", `{res['command']}`; seeds "
           f"{', '.join(map(str, res['seeds']))}; median seconds until the validation accuracy "
           "first reaches the threshold (how many seeds reached it).", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]  # fmt: skip
    keys = sorted({(r["model"], r["threshold"]) for r in res["rows"]})
    for model, th in keys:
        cells = [model, f"{th:.1%}"]
        for a in arms:
            r = next(r for r in res["rows"] if (r["model"], r["threshold"], r["arm"]) ==
                     (model, th, a))  # fmt: skip
            t = "not reached" if r["median_seconds"] is None else f"{r['median_seconds']:.1f} s"
            cells.append(f"{t} ({r['reached']})")
        for base in ("tutorial", "recipe"):
            sp = speed.get((model, th, base))
            if sp is None:
                cells.append("-")
            elif sp.get("glassnet_not_reached"):
                cells.append("glassnet not reached")
            else:
                cells.append(f"{'>= ' if sp['lower_bound'] else ''}{sp['speedup']:.2f}x")
        out.append("| " + " | ".join(cells) + " |")
    t = res.get("targets", {})
    met = lambda v, k: "" if k not in t else (": met" if v >= t[k] else ": **not met**")  # noqa
    smin, srec = res["speedup_min"], res.get("speedup_min_vs_recipe")
    out += ["", f"**speedup_min** (glassnet over the tutorial loop, the smallest over models and "
            f"thresholds) = **{smin:.2f}** (target {t.get('speedup_min', '-')}"
            f"{met(smin, 'speedup_min')})"
            + ("" if srec is None else f"; over the recipe-matched loop = **{srec:.2f}** "
               f"(target {t.get('speedup_min_vs_recipe', '-')}"
               f"{met(srec, 'speedup_min_vs_recipe')})") + "."]  # fmt: skip
    return "\n".join(out)


def engine_ab() -> str:
    res = _load("engine_ab")
    out = [_written(res) + f", `{res['command']}`: the study's population search "
           "(20 candidates x 5 folds, no refit), the two source trees taking turns.", "",
           "| tree | run | member-epochs | seconds | member-epochs/s |", "|---|---|---|---|---|"]
    for r in res["rows"]:
        out.append(f"| {r['tree']} | {r['repeat']} | {r['member_epochs']:,} | "
                   f"{r['seconds']:.2f} | {r['rate']:.0f} |")
    same = "the same" if res["same_scores"] else "**different**"
    ratio = res["after_over_before"]
    out += ["", f"Median rate: before {res['median_rate_before']:.0f}, after "
            f"{res['median_rate_after']:.0f} member-epochs/s (**{ratio:.2f}x**); "
            f"{same} CV scores, candidate by candidate, in every run."]  # fmt: skip
    return "\n".join(out)


def _lenet(*names: str) -> str:
    """An ablation of LeNet-5's presets: each arm's seeds, their median, minutes per run.

    Several names: runs of the same ablation split by seed (e.g. two tuning seeds run side by
    side, one process each), rendered as one table; the medians are taken over all their rows.
    """
    runs = [_load(n) for n in names]
    res, rows = runs[0], [r for run in runs for r in run["rows"]]
    test = res["role"] in ("report", "confirm")  # tune: validation only
    score = "test" if test else "validation"
    seeds = ", ".join(str(s) for s in dict.fromkeys(r["seed"] for r in rows))
    written = "; ".join(_written(run) + f", `{run['command']}`" for run in runs)
    out = [written + "; " + (
        f"seeds {seeds}, the test set scored once per run." if test else
        f"tuning seeds {seeds}: validation accuracy only (test not recorded)."),
        "", f"| arm | {score} accuracy by seed | median | target | minutes per run |",
        "|---|---|---|---|---|"]  # fmt: skip
    key = "test_accuracy" if test else "val_accuracy"
    # summarised again over every file's rows (one file: what its own "arms" already say)
    for arm in summarise(rows, [(a["arm"], a["command"], a["target"]) for a in res["arms"]]):
        by_seed = ", ".join(f"{r[key]:.2%}" for r in rows if r["arm"] == arm["arm"])
        med = arm["median_test_accuracy" if test else "median_val_accuracy"]
        target = "-" if arm["target"] is None or not test else (
            f">= {arm['target']:.1%}" + (" (met)" if arm["met"] else " (**not met**)"))
        out.append(f"| {arm['arm']} | {by_seed} | **{med:.2%}** | {target} | "
                   f"{arm['median_minutes']:.2f} |")  # fmt: skip
    out += ["", "Commands (each after `glassnet classify --model lenet5 --data-dir "
            "../shared/datasets`, with `--seed S`):", ""]
    head = "glassnet classify --model lenet5"
    out += [f"- {a['arm']}: `{a['command'].removeprefix(head).strip()}`" for a in res["arms"]]
    return "\n".join(out)


def augment_cost() -> str:
    res = _load("augment_cost")
    out = [_written(res) + f", `{res['command']}`: {res['n_images']:,} training digits in "
           f"batches of {res['batch_size']}, median of {res['repeats']} passes.", "",
           "| moves | seconds per pass | cost per epoch (s) | share of a training epoch |",
           "|---|---|---|---|"]  # fmt: skip
    for r in res["rows"]:
        out.append(f"| {r['arm']} | {r['pass_seconds']:.2f} | {r['cost_seconds']:.2f} | "
                   f"{r['share_of_training_epoch']:.0%} |")  # fmt: skip
    out += ["", f"The baseline, in the same run: one training epoch of LeNet-5 (forward, "
            f"backward, Adam; no moves) took {res['training_epoch_seconds']:.2f} s."]
    return "\n".join(out)


RENDERERS: dict[str, Callable[[], str]] = {
    "augment_cost": augment_cost,
    "lenet_presets": lambda: _lenet("lenet_presets"),
    "lenet_presets_tune": lambda: _lenet("lenet_presets_tune"),
    "lenet_presets_best": lambda: _lenet("lenet_presets_best"),
    "lenet_presets_best_last": lambda: _lenet("lenet_presets_best_last"),
    "lenet_presets_best_tune": lambda: _lenet("lenet_presets_best_tune"),
    "lenet_presets_best_nodrop": lambda: _lenet("lenet_presets_best_nodrop"),
    "lenet_presets_best_confirm": lambda: _lenet("lenet_presets_best_confirm"),
    "lenet_presets_default10_confirm": lambda: _lenet("lenet_presets_default10_confirm"),
    "lenet_presets_best_elastic": lambda: _lenet("lenet_presets_best_elastic"),
    "lenet_presets_best_elastic_confirm": lambda: _lenet("lenet_presets_best_elastic_confirm"),
    "lenet_presets_best_six": lambda: "\n\n".join([
        _lenet("lenet_presets_best_nodrop", "lenet_presets_best_confirm"),
        _lenet("lenet_presets_best_elastic", "lenet_presets_best_elastic_confirm")]),
    "lenet_presets_best_next_tune": lambda: _lenet("lenet_presets_best_next_tune_100",
                                                   "lenet_presets_best_next_tune_101"),
    "engine_ab": engine_ab,
    "time_to_accuracy": time_to_accuracy,
    "regression_search": regression_search,
    "commands": commands,
    "commands_mlp_best": lambda: commands("commands_mlp_best"),
    "search_efficiency": search_efficiency,
    "search_efficiency_tpe_3folds": search_efficiency_tpe_3folds,
    "regression_quality": regression_quality,
    "regression_quality_dev": regression_quality_dev,
    "regression_probes": lambda: regression_probes(PROBES),
    "regression_probes_evidence": lambda: regression_probes(EVIDENCE_PROBES),
    "regression_probes_lr": lambda: regression_probes(LR_PROBES),
    "regression_stopping": regression_stopping,
}

_BLOCK = re.compile(r"(<!-- render: (\w+) -->\n)(.*?)(<!-- end: \2 -->)", re.S)


def render(text: str) -> str:
    """RESULTS.md's text with every marked block rendered anew."""
    return _BLOCK.sub(lambda m: m.group(1) + RENDERERS[m.group(2)]() + "\n" + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if RESULTS.md is out of date")
    args = p.parse_args(argv)
    text = RESULTS.read_text()
    new = render(text)
    if args.check:
        if new != text:
            print("benchmarks/RESULTS.md differs from its JSON: run benchmarks/render_results.py")
            return 1
        return 0
    RESULTS.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
