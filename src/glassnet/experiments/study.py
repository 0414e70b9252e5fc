"""`glassnet reproduce`: the study's three experiments and one report comparing with its numbers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from glassnet.experiments.classification import ClassificationConfig, run_classification
from glassnet.experiments.regression import RegressionConfig, run_regression
from glassnet.progress import Progress
from glassnet.report import STUDY, build_report
from glassnet.runs import RunWriter, default_run_dir

__all__ = ["StudyResult", "reproduce", "study_configs"]


@dataclass
class StudyResult:
    """Where everything went, and the headline numbers."""

    out: Path
    report: Path
    metrics: dict[str, dict]
    seconds: float


def study_configs(
    data_dir: str | None, quick: bool, seed: int = 0, device: str = "auto"
) -> tuple[RegressionConfig, ClassificationConfig, ClassificationConfig]:
    """The three experiments as the study ran them (``quick``: tiny versions for a demo)."""
    if quick:  # minutes on two cores: small search, few epochs, part of the images
        reg = RegressionConfig(
            data_dir=data_dir,
            search="population",
            n_iter=8,
            epoch_choices=(100, 250),
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
        reg = RegressionConfig(data_dir=data_dir, search="population", seed=seed, device=device)
        mlp = ClassificationConfig(
            model="mlp", data_dir=data_dir, search="grid", seed=seed, device=device
        )
        lenet = ClassificationConfig(
            model="lenet5",
            data_dir=data_dir,
            dropout=0.25,
            epochs=30,
            augment=2,
            seed=seed,
            device=device,
        )
    return reg, mlp, lenet


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
    with RunWriter(out) as run:
        log("1/3 regression (randomized search, 5-fold CV)")
        metrics["regression"] = run_regression(reg, run.file("regression"), progress).metrics
        log("2/3 MNIST dense net (grid search on the validation split)")
        metrics["mlp"] = run_classification(mlp, run.file("mlp"), progress).metrics
        log("3/3 MNIST LeNet-5")
        metrics["lenet5"] = run_classification(lenet, run.file("lenet5"), progress).metrics
        title = "glassnet: the study reproduced" + (" (quick version)" if quick else "")
        build_report(
            [run.file(n) for n in ("regression", "mlp", "lenet5")],
            run.file("report.html"),
            study=STUDY,
            title=title,
        )
    return StudyResult(out, out / "report.html", metrics, time.perf_counter() - t0)
