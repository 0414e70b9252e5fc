"""`glassnet reproduce`: the study's three experiments and one report comparing with its numbers."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from glassnet.estimators import ClassificationConfig, RegressionConfig
from glassnet.experiments.classification import run_classification
from glassnet.experiments.regression import run_regression
from glassnet.progress import Progress
from glassnet.report import STUDY, build_report
from glassnet.results import ClassificationMetrics, RegressionMetrics
from glassnet.runs import RunWriter, default_run_dir, partial_dir, read_json

__all__ = ["StudyResult", "reproduce", "study_configs", "study_regression"]


@dataclass
class StudyResult:
    """Where everything went, and the headline numbers."""

    out: Path
    report: Path
    metrics: dict[str, RegressionMetrics | ClassificationMetrics]
    seconds: float
    quick: bool = False


def study_configs(
    data_dir: str | None, quick: bool, seed: int = 0, device: str = "auto"
) -> tuple[RegressionConfig, ClassificationConfig, ClassificationConfig]:
    """The three experiments as glassnet runs them by default (``quick``: tiny versions).

    The regression's study pipeline, run beside the default, is ``study_regression(reg)``.
    """
    if quick:  # minutes on two cores: small search, few epochs, part of the images
        reg = RegressionConfig(
            data_dir=data_dir,
            members=2,
            ensemble_epochs=300,
            seed=seed,
            device=device,
        )
        mlp = ClassificationConfig(
            model="mlp",
            data_dir=data_dir,
            search="grid",
            grid_lr=(1e-3,),
            grid_dropout=(0.1, 0.3),
            grid_epochs=(3, 6),
            max_train=4000,
            batch_size=64,  # 3,200 training digits: small batches give enough steps
            seed=seed,
            device=device,
        )
        lenet = ClassificationConfig(
            model="lenet5",
            data_dir=data_dir,
            dropout=0.25,
            epochs=10,
            max_train=4000,
            batch_size=64,  # 3,200 training digits: small batches give enough steps
            seed=seed,
            device=device,
        )
    else:
        reg = RegressionConfig(data_dir=data_dir, seed=seed, device=device)
        # The study's architectures with the "best" preset: one model each, augmented, in
        # about 6 and 10 minutes on two cores. The study's own grid search stays available
        # as `glassnet classify --search grid`.
        mlp = ClassificationConfig(
            model="mlp", preset="best", data_dir=data_dir, seed=seed, device=device
        )
        lenet = ClassificationConfig(
            model="lenet5", preset="best", data_dir=data_dir, seed=seed, device=device
        )
    return reg, mlp, lenet


def study_regression(reg: RegressionConfig, quick: bool = False) -> RegressionConfig:
    """The study's own regression pipeline: its random search (20 candidates, 5 shuffled folds,
    the sampled epoch count) and one refit net, batched as ``--search population`` (the same
    candidates, folds and results as skorch + RandomizedSearchCV, in a fraction of the time)."""
    if quick:
        return replace(reg, search="population", n_iter=8, epoch_choices=(100, 250))
    return replace(reg, search="population", n_iter=20, epoch_choices=(100, 250, 500, 1000))


def reproduce(
    data_dir: str | None = None,
    quick: bool = False,
    out: str | Path | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: Progress | None = None,
    log=lambda line: None,
    resume: bool = False,
) -> StudyResult:
    """Run regression, dense-net grid search and LeNet-5; write runs and report.html in ``out``.

    ``resume=True`` continues an interrupted study: finished experiments are read back, the
    interrupted one resumes from its checkpoint, the rest run.
    """
    t0 = time.perf_counter()
    reg, mlp, lenet = study_configs(data_dir, quick, seed, device)
    out = Path(out) if out is not None else default_run_dir("reproduce")
    names = ("regression", "regression-study-pipeline", "mlp", "lenet5")
    mlp_how = "grid search" if mlp.search == "grid" else "preset best"
    steps = [
        (run_regression, reg, "regression, glassnet's default (deep ensemble)"),
        (run_regression, study_regression(reg, quick),
         "regression, the study's pipeline (randomized search, one refit net)"),
        (run_classification, mlp, f"MNIST dense net ({mlp_how})"),
        (run_classification, lenet, f"MNIST LeNet-5 (preset {lenet.preset})"),
    ]  # fmt: skip
    metrics = {}
    with RunWriter(out, resume=resume) as run:
        settings = {"data_dir": data_dir, "quick": quick, "seed": seed, "device": device}
        run.settings({"kind": "reproduce", **settings})  # what resume runs again
        for i, (name, (fn, cfg, what)) in enumerate(zip(names, steps), 1):
            log(f"{i}/{len(steps)} {what}")
            metrics[name] = _experiment(fn, cfg, run.file(name), progress, resume)
        title = "glassnet: the study reproduced" + (" (quick version)" if quick else "")
        build_report(
            [run.file(n) for n in names],
            run.file("report.html"),
            study=STUDY,
            title=title,
        )
    return StudyResult(out, out / "report.html", metrics, time.perf_counter() - t0, quick)


def _experiment(fn, cfg, where: Path, progress, resume: bool):
    """One experiment of the study: read back when finished before, resumed when interrupted."""
    if resume and (where / "metrics.json").exists():
        kind = RegressionMetrics if fn is run_regression else ClassificationMetrics
        return kind.from_json(read_json(where / "metrics.json"))
    again = resume and (partial_dir(where) / "config.json").exists()
    return fn(cfg, where, progress, resume=again).metrics
