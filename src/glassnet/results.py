"""What a run measured, as typed results: written to metrics.json with ``to_json()``, read back
with ``from_json()`` by the CLI summaries, the report and ``reproduce``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["DataSummary", "RegressionMetrics", "ClassificationMetrics", "metrics_from_json"]


@dataclass
class DataSummary:
    """Where a run's data came from and how much of it there was (either kind of run)."""

    source: str  # the folder or file; "generated: ..." for the embedded default
    kind: str  # regression: files | generated; images: folder | cache | embedded-sample
    n_train: int  # training rows or images available
    n_test: int
    n_fit: int | None = None  # classification: images trained on ...
    n_val: int | None = None  # ... and held out to choose the epoch
    n_classes: int | None = None
    classes: list[str] | None = None

    @property
    def generated(self) -> bool:
        """True for the embedded stand-ins (generated curve, 5,000-digit sample)."""
        return self.kind in ("generated", "embedded-sample")

    def partial(self) -> bool:
        """True when a classifier trained on fewer images than the data set has."""
        used = (self.n_fit or 0) + (self.n_val or 0)
        return self.n_fit is not None and used < self.n_train


class _Result:
    """to_json / from_json shared by the metrics classes (None fields are left out)."""

    def to_json(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if v is None:
                continue
            out[f.name] = asdict(v) if isinstance(v, DataSummary) else _plain(v)
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]):
        """Read back ``to_json``'s dict; ValueError names a field of the wrong type or a missing
        one (a hand-edited or damaged metrics.json)."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        kinds = {f.name: str(f.type) for f in fields(cls)}  # type: ignore[arg-type]
        kw = {k: v for k, v in d.items() if k in kinds}
        for k, v in kw.items():
            numeric = kinds[k].split(" |")[0] in ("float", "int")
            is_number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if numeric and not (is_number or (v is None and "None" in kinds[k])):
                raise ValueError(f"{k!r} should be a number, not {str(v)[:40]!r}")
        kw["data"] = _data_from_json(d)
        try:
            return cls(**kw)
        except TypeError as e:  # a required field missing
            raise ValueError(str(e).split("__init__() ")[-1]) from None


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _data_from_json(d: dict[str, Any]) -> DataSummary:
    data = d.get("data")
    if isinstance(data, dict):
        return DataSummary(**{k: v for k, v in data.items() if k in DataSummary.__annotations__})
    # metrics.json of an earlier version: "data" was the source string of a regression run
    return DataSummary(
        source=str(data),
        kind="generated" if d.get("generated_data") else "files",
        n_train=int(d.get("n_train", 0)),
        n_test=int(d.get("n_test", 0)),
    )


@dataclass
class RegressionMetrics(_Result):
    """A regression run's results. The test set is used once, for ``test_mse`` and coverage."""

    search: str
    data: DataSummary
    best_params: dict[str, Any]
    epochs_run: int
    train_mse: float
    test_mse: float
    baseline_gp_test_mse: float  # the Gaussian process fitted to the same training data
    baseline_gp_kernel: str
    baseline_gp_band_coverage: float
    baseline_gp_points: int | None = None  # training points the GP saw (a subsample past 2,000)
    cv_mse: float | None = None  # searches only
    n_candidates: int | None = None
    n_failed: int | None = None
    failed: list[dict[str, Any]] | None = None
    ensemble_members: int | None = None  # ensemble search only
    # deep ensemble: each member's Laplace log evidence (nats; None: diverged) and the members
    # kept (all, or those of highest evidence with --keep-members)
    member_evidence: list[float | None] | None = None
    kept_members: list[int] | None = None
    member_epochs: Any = None
    n_pruned: int | None = None  # tpe search only: trials stopped by the pruner
    study: dict[str, str] | None = None  # tpe search only: Optuna storage and study name
    band_coverage: float | None = None  # test points inside the members' mean +- 2 std
    fold_std_in_gaps: float | None = None
    fold_std_elsewhere: float | None = None
    seconds: float = 0.0


@dataclass
class ClassificationMetrics(_Result):
    """A classification run's results. The test set is used once, after the fit."""

    model: str
    data: DataSummary
    test_accuracy: float
    val_accuracy: float
    best_epoch: int
    epochs_run: int
    best_params: dict[str, Any]
    preset: str
    precision: str  # of the fit; the test was scored in float32
    confusion_matrix: Any  # (classes, classes), rows: true class
    per_class: dict[str, dict[str, float]]
    most_confused: list[dict[str, Any]]
    train_seconds: float
    seconds_per_epoch: float
    device: str
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def metrics_from_json(d: dict[str, Any]) -> RegressionMetrics | ClassificationMetrics:
    """Either kind of metrics.json, typed."""
    if "test_accuracy" in d:
        return ClassificationMetrics.from_json(d)
    return RegressionMetrics.from_json(d)
