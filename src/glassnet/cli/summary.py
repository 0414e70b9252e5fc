"""End-of-run summaries the commands print: a few lines a person reads at a glance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glassnet.formatting import fmt
from glassnet.results import ClassificationMetrics, RegressionMetrics
from glassnet.study_numbers import STUDY

__all__ = ["regression_summary", "classify_summary", "reproduce_summary"]


def regression_summary(m: RegressionMetrics, run_dir: Path) -> str:
    lines = ["", "glassnet regression: done"]
    if m.data.generated:
        lines.append("  data       GENERATED (no data folder given): " + m.data.source)
    else:
        lines.append(f"  data       {m.data.source}")
    lines.append(f"  sizes      {m.data.n_train} train / {m.data.n_test} test points")
    bp = ", ".join(f"{k.replace('optimizer__', '')}={fmt(v)}" for k, v in m.best_params.items())
    label = {"none": "parameters", "deep-ensemble": "settings"}.get(m.search, f"best ({m.search})")
    lines.append(f"  {label:<10} {bp}")
    if m.cv_mse is not None:
        lines.append(
            f"  CV MSE     {m.cv_mse:.4f}  ({m.n_candidates} candidates, "
            f"{m.n_failed} failed/diverged)"
        )
    if m.n_pruned is not None and m.study is not None:
        lines.append(
            f"  trials     {m.n_pruned} of {m.n_candidates} pruned; Optuna study "
            f"{m.study['name']!r} in {m.study['storage']} (see it: optuna-dashboard)"
        )
    if m.ensemble_members is not None:
        what = "nets from different seeds" if m.search == "deep-ensemble" else "fold models"
        # kept by evidence: fewer members than trained without diverging (None: no evidence)
        scored = sum(e is not None for e in m.member_evidence or [])
        if m.kept_members is not None and len(m.kept_members) < scored:
            what = (f"of {scored} {what} (those of highest Laplace evidence: "
                    f"members {', '.join(map(str, m.kept_members))})")  # fmt: skip
        lines.append(
            f"  model      mean of {m.ensemble_members} {what} at epoch {m.epochs_run}"
        )
    lines.append(f"  train MSE  {m.train_mse:.4f}")
    lines.append(f"  test MSE   {m.test_mse:.4f}  (test set used once, after the search)")
    lines.append(
        f"  baseline   Gaussian process test MSE {m.baseline_gp_test_mse:.4f}"
        f"  (ratio {m.test_mse / m.baseline_gp_test_mse:.2f})"
    )
    if m.baseline_gp_points is not None and m.baseline_gp_points < m.data.n_train:
        lines.append(f"             (fitted on a random {m.baseline_gp_points:,}-point subsample)")
    if m.band_coverage is not None:
        lines.append(
            f"  band       {m.band_coverage:.0%} of test points within mean +- 2 std "
            f"(Gaussian process: {m.baseline_gp_band_coverage:.0%})"
        )
    lines.append(f"  time       {m.seconds:.1f} s")
    lines.append(f"  run folder {run_dir}")
    return "\n".join(lines)


def classify_summary(m: ClassificationMetrics, run_dir: Path) -> str:
    d = m.data
    lines = ["", f"glassnet classify ({m.model}): done"]
    lines += [f"  note       {n}" for n in m.notes]
    lines.append(f"  data       {d.source}")
    lines.append(
        f"  sizes      {d.n_fit} fit / {d.n_val} validation / {d.n_test} test, "
        f"{d.n_classes} classes"
    )
    bp = ", ".join(f"{k}={fmt(v)}" for k, v in m.best_params.items())
    lines.append(
        f"  parameters preset {m.preset}: {bp}; best epoch {m.best_epoch} of {m.epochs_run}"
    )
    lines.append(f"  val acc    {m.val_accuracy:.2%}")
    lines.append(f"  test acc   {m.test_accuracy:.2%}  (test set used once, at the end)")
    top = m.most_confused[:3]
    conf = ", ".join(f"{c['true']}->{c['predicted']} ({c['count']})" for c in top)
    lines.append(f"  confused   {conf or 'none'}")
    lines.append(
        f"  time       {m.seconds:.1f} s ({m.seconds_per_epoch:.2f} s/epoch, {m.device}"
        + (", bfloat16 training" if m.precision == "bfloat16" else "")
        + ")"
    )
    lines.append(f"  run folder {run_dir}")
    return "\n".join(lines)


def reproduce_summary(res: Any, quick: bool) -> str:
    """The study's numbers beside glassnet's, for ``glassnet reproduce``."""
    m = res.metrics
    r, rs, d, c = m["regression"], m["regression-study-pipeline"], m["mlp"], m["lenet5"]
    st = STUDY
    lines = ["", "glassnet reproduce: done" + (" (quick)" if quick else "")]
    lines += [f"  note        {n}" for n in sorted({n for x in (d, c) for n in x.notes})]
    if r.data.generated:
        lines.append("  note        regression used generated data (no data folder given)")
    lines.append(
        "  regression  train MSE / test MSE       (the study's own numbers: "
        f"{st['regression']['train_mse']:.3f} / {st['regression']['test_mse']:.3f})"
    )
    for label, x in (("glassnet default", r), ("study's pipeline", rs)):
        lines.append(f"    {label:<18} {x.train_mse:.3f} / {x.test_mse:.3f}")
    lines.append(f"    {'Gaussian process':<18} -     / {r.baseline_gp_test_mse:.3f}  (baseline)")
    for name, key in (("dense net", "mlp"), ("LeNet-5", "lenet5")):
        lines.append(
            f"  {name:<11} test accuracy {m[key].test_accuracy:.2%}   "
            f"(study: {st[key]['test_accuracy']:.2%})"
        )
    lines.append(f"  time        {res.seconds:.0f} s")
    lines.append(f"  report      {res.report}")
    return "\n".join(lines)
