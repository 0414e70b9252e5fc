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

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"


def _load(name: str) -> dict:
    return json.loads((HERE / "results" / f"{name}.json").read_text())


def _f(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


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
    if has_study:
        study = [r["study_test_mse"] / r["gp_test_mse"] for r in res["rows"]]
        study.sort()
        mid = (study[(len(study) - 1) // 2] + study[len(study) // 2]) / 2
        lines[-1] += f" The study's pipeline: median {mid:.2f}x the GP, worst {study[-1]:.1f}x."
    return "\n".join(lines)


def regression_quality() -> str:
    res = _load("regression_quality")
    out = [f"Written {res['when_utc']} ({res['machine']['cpu_count']} cores, torch "
           f"{res['machine']['torch']}), reported seeds {res['seed0']}-"
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
    res = _load("regression_quality_dev")
    seeds = f"{res['seed0']}-{res['seed0'] + len(res['rows']) - 1}"
    head = f"The development seeds ({seeds}), written {res['when_utc']}, defaults as shipped:"
    return head + "\n\n" + _panel(res)


RENDERERS: dict[str, Callable[[], str]] = {
    "regression_quality": regression_quality,
    "regression_quality_dev": regression_quality_dev,
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
