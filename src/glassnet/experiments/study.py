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
from glassnet.runs import RunWriter, default_run_dir

__all__ = ["StudyResult", "reproduce", "study_configs", "study_regression"]


@dataclass
class StudyResult:
    """Where everything went, and the headline numbers."""

    out: Path
    report: Path
    metrics: dict[str, RegressionMetrics | ClassificationMetrics]
    seconds: float


def study_configs(
    data_dir: str | None, quick: bool, seed: int = 0, device: str = "auto"
) -> tuple[RegressionConfig, ClassificationConfig, ClassificationConfig]:
    """The three experiments as glassnet runs them by default (``quick``: tiny versions).

    The regression's study pipeline, run beside the default, is ``study_regression(reg)``.
    """
    if quick:  # minutes on two cores: small search, few epochs, part of the images
        reg = RegressionConfig(
            data_dir=data_dir,
            n_iter=4,
            max_epochs=300,
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
        # under 10 minutes each on two cores. The study's own grid search stays available
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
) -> StudyResult:
    """Run regression, dense-net grid search and LeNet-5; write runs and report.html in ``out``."""
    t0 = time.perf_counter()
    reg, mlp, lenet = study_configs(data_dir, quick, seed, device)
    out = Path(out) if out is not None else default_run_dir("reproduce")
    metrics = {}
    names = ("regression", "regression-study-pipeline", "mlp", "lenet5")
    with RunWriter(out) as run:
        log("1/4 regression, glassnet's default (ensemble of fold models)")
        metrics["regression"] = run_regression(reg, run.file(names[0]), progress).metrics
        log("2/4 regression, the study's pipeline (randomized search, one refit net)")
        study_reg = study_regression(reg, quick)
        metrics[names[1]] = run_regression(study_reg, run.file(names[1]), progress).metrics
        log(f"3/4 MNIST dense net ({'grid search' if mlp.search == 'grid' else 'preset best'})")
        metrics["mlp"] = run_classification(mlp, run.file("mlp"), progress).metrics
        log(f"4/4 MNIST LeNet-5 (preset {lenet.preset})")
        metrics["lenet5"] = run_classification(lenet, run.file("lenet5"), progress).metrics
        title = "glassnet: the study reproduced" + (" (quick version)" if quick else "")
        build_report(
            [run.file(n) for n in names],
            run.file("report.html"),
            study=STUDY,
            title=title,
        )
    return StudyResult(out, out / "report.html", metrics, time.perf_counter() - t0)
