"""Conventions users bring from TensorBoard and the platform: event files, the cache folder."""

import ast
import json
import re
from pathlib import Path

import numpy as np

from glassnet.cli.parser import flag
from glassnet.data.images import cache_dir
from glassnet.errors import UserError
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


def _hparams(folder):
    """What TensorBoard's HParams tab reads from one run's folder: the experiment (hparam and
    metric names), the session's hparam values, and the metrics' scalars."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import metadata
    from tensorboard.util import tensor_util

    found = {"values": {}}
    for file in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(file)).Load():
            for v in event.summary.value:
                content = v.metadata.plugin_data.content
                if v.tag == metadata.EXPERIMENT_TAG:
                    found["experiment"] = metadata.parse_experiment_plugin_data(content)
                elif v.tag == metadata.SESSION_START_INFO_TAG:
                    found["start"] = metadata.parse_session_start_info_plugin_data(content)
                elif v.tag.startswith("final/"):
                    found["values"][v.tag] = float(tensor_util.make_ndarray(v.tensor))
    return found


def test_every_run_is_listed_in_tensorboards_hparams_tab(tiny_runs):
    """Settings and final metrics, in the run's own tensorboard/ folder (no timestamped
    sub-folder), read back as TensorBoard's HParams plugin reads them."""
    for kind in ("ensemble", "mlp"):
        run_dir = tiny_runs[kind]
        config = json.loads((run_dir / "config.json").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
        found = _hparams(run_dir / "tensorboard")
        assert not [p for p in (run_dir / "tensorboard").iterdir() if p.is_dir()]
        values = found["start"].hparams
        assert values["seed"].number_value == config["seed"]
        assert values["kind"].string_value == config["kind"]
        names = {h.name for h in found["experiment"].hparam_infos}
        metric_tags = {m.name.tag for m in found["experiment"].metric_infos}
        if kind == "ensemble":
            assert values["search"].string_value == "deep-ensemble"
            assert values["members"].number_value == 2
            assert values["hidden"].string_value == "512,256"
            assert "lr" not in names  # SGD's rate: a setting the deep ensemble does not use
            keys = ("test_mse", "train_mse", "baseline_gp_test_mse")
        else:
            assert values["model"].string_value == "mlp"
            assert values["lr"].number_value == config["lr"]
            keys = ("test_accuracy",)
        for key in keys:
            assert f"final/{key}" in metric_tags
            assert found["values"][f"final/{key}"] == np.float32(metrics[key])


def test_cache_folder_is_the_platforms_unless_overridden(monkeypatch, tmp_path):
    import platformdirs

    monkeypatch.delenv("GLASSNET_CACHE", raising=False)
    assert cache_dir() == platformdirs.user_cache_path("glassnet", appauthor=False)
    monkeypatch.setenv("GLASSNET_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def _error_messages(tree: ast.AST):
    """The text of every UserError message and every ``(ok, message)`` check in a module."""
    for node in ast.walk(tree):
        parts = []
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "UserError":
            parts = node.args[:1]
        elif isinstance(node, ast.Tuple) and len(node.elts) == 2:
            ok, message = node.elts
            text = isinstance(message, ast.JoinedStr | ast.Constant)
            if text and not isinstance(ok, ast.Constant):
                parts = [message]
        for part in parts:
            for s in ast.walk(part):
                if isinstance(s, ast.Constant) and isinstance(s.value, str):
                    yield node.lineno, s.value


def test_the_library_names_parameters_and_only_the_cli_names_flags():
    import glassnet

    root = Path(glassnet.__file__).parent
    flags = []
    for path in sorted(root.rglob("*.py")):
        if path.parent.name == "cli":
            continue
        for line, text in _error_messages(ast.parse(path.read_text())):
            if re.search(r"(^|[\s(])--[a-z]", text):
                flags.append(f"{path.relative_to(root)}:{line}: {text}")
    assert flags == []
    err = UserError("`batch_size` must be >= 1 (see `n_jobs`; `glassnet data`)")
    assert str(err) == "batch_size must be >= 1 (see n_jobs; `glassnet data`)"
    assert err.worded(flag) == "--batch-size must be >= 1 (see --n-jobs; `glassnet data`)"
