"""Conventions users bring from TensorBoard and the platform: event files, the cache folder."""

import json

import numpy as np

from glassnet.data.images import cache_dir
from glassnet.estimators import ClassificationConfig
from glassnet.experiments.classification import run_classification
from glassnet.experiments.regression import run_regression

from .test_data_images import make_idx_folder


def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def test_classification_run_writes_event_files_tensorboard_reads(tmp_path):
    data = make_idx_folder(tmp_path / "bars", n_train=150, n_test=30, n_classes=5)
    cfg = ClassificationConfig(data_dir=str(data), epochs=6, hidden=(16,), batch_size=32,
                               device="cpu")  # fmt: skip
    run_classification(cfg, out=tmp_path / "run")
    acc = _events(tmp_path / "run" / "tensorboard")
    tags = acc.Tags()
    assert {"loss/train", "loss/valid", "accuracy/train", "accuracy/valid", "learning_rate"} <= set(
        tags["scalars"]
    )
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    for tag, key in (("loss/valid", "valid_loss"), ("accuracy/train", "train_acc")):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [h["epoch"] for h in history]
        np.testing.assert_allclose([e.value for e in events], [h[key] for h in history], rtol=1e-6)
    lrs = [e.value for e in acc.Scalars("learning_rate")]
    assert lrs[-1] < max(lrs)  # the cosine schedule, annealed by the last epoch
    assert any(t.startswith("weights/") for t in tags["histograms"])
    steps = sorted({e.step for e in acc.Histograms(tags["histograms"][0])})
    assert steps == [1, 5, 6]  # the first epoch, every fifth, the last


def test_regression_run_writes_event_files(tmp_path, fast_cfg):
    res = run_regression(fast_cfg, out=tmp_path / "run")
    acc = _events(tmp_path / "run" / "tensorboard")
    assert {"loss/train", "learning_rate"} <= set(acc.Tags()["scalars"])
    assert len(acc.Scalars("loss/train")) == res.metrics.epochs_run
    assert acc.Tags()["histograms"]


def test_cache_folder_is_the_platforms_unless_overridden(monkeypatch, tmp_path):
    import platformdirs

    monkeypatch.delenv("GLASSNET_CACHE", raising=False)
    assert cache_dir() == platformdirs.user_cache_path("glassnet", appauthor=False)
    monkeypatch.setenv("GLASSNET_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
