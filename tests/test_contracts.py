"""Contracts users rely on: rerunning a run, loading what was trained, refusals, the command's
conventions, and scikit-learn's estimator checks."""

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.utils import estimator_checks as sk

from glassnet import __version__
from glassnet.cli import main
from glassnet.data.idx import write_idx
from glassnet.data.images import MNIST_FILES, load_idx_folder
from glassnet.errors import UserError
from glassnet.estimators import (
    SEARCHES,
    ClassificationConfig,
    RegressionConfig,
    build_module,
    make_regressor,
)
from glassnet.experiments.classification import run_classification
from glassnet.experiments.regression import run_regression
from glassnet.experiments.study import study_configs
from glassnet.runs.load import config_from_run, load_classifier
from glassnet.search.adapter import fold_models
from glassnet.search.cv import make_search
from glassnet.search.population import PopulationSearchCV
from glassnet.training import GlassClassifier, check_precision

from .test_data_images import make_idx_folder


@pytest.fixture
def bars(tmp_path):
    return make_idx_folder(tmp_path / "bars", n_train=300, n_test=100, n_classes=5)


def _shapes(folder, n=240, seed=0):
    """Class 0: a horizontal stroke, class 1: a vertical one, both centred as MNIST centres."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for split, m in (("train", n), ("test", n // 4)):
        y = np.arange(m) % 2
        x = rng.integers(0, 20, (m, 28, 28)).astype(np.uint8)
        for i, k in enumerate(y):
            a, b = rng.integers(4, 8), rng.integers(20, 24)
            if k == 0:
                x[i, 13:15, a:b] = 255
            else:
                x[i, a:b, 13:15] = 255
        write_idx(folder / (MNIST_FILES[f"{split}_images"] + ".gz"), x)
        write_idx(folder / (MNIST_FILES[f"{split}_labels"] + ".gz"), y.astype(np.uint8))
    (folder / "classes.txt").write_text("horizontal\nvertical\n")
    return folder


def test_predict_names_the_class_of_a_drawn_picture(tmp_path, capsys):
    data = _shapes(tmp_path / "shapes")
    out = tmp_path / "run"
    args = ["--data-dir", str(data), "--epochs", "4", "--hidden", "32", "--batch-size", "32"]
    assert main(["classify", *args, "--quiet", "--device", "cpu", "--out", str(out)]) == 0
    capsys.readouterr()
    # Dark strokes on a light page, larger than 28x28, as a user would draw them.
    for name, rows, cols, expected in (
        ("v.png", slice(6, 50), slice(26, 31), "vertical"),
        ("h.png", slice(26, 31), slice(6, 50), "horizontal"),
    ):
        pic = np.full((56, 56), 255, np.uint8)
        pic[rows, cols] = 0
        Image.fromarray(pic).save(tmp_path / name)
        assert main(["predict", str(out), str(tmp_path / name)]) == 0
        line = capsys.readouterr().out.strip().splitlines()[1]
        assert line.split(",")[1] == expected, line


@pytest.mark.slow
def test_rerun_repeats_a_classification_run(tmp_path, bars, capsys):
    cfg = ClassificationConfig(
        model="lenet5", data_dir=str(bars), epochs=2, batch_size=32, device="cpu", seed=4,
        figures=False,
    )
    first = run_classification(cfg, out=tmp_path / "a")
    assert ClassificationConfig.from_run(tmp_path / "a") == cfg
    assert main(["rerun", str(tmp_path / "a"), "--quiet", "--out", str(tmp_path / "b")]) == 0
    assert "glassnet classify (lenet5): done" in capsys.readouterr().out
    again = json.loads((tmp_path / "b" / "metrics.json").read_text())
    for key in ("test_accuracy", "val_accuracy", "best_epoch", "confusion_matrix"):
        assert again[key] == first.metrics.to_json()[key]


def test_rerun_repeats_a_regression_run(tmp_path, fast_cfg):
    cfg = replace(fast_cfg, figures=True)
    first = run_regression(cfg, out=tmp_path / "a")
    again_cfg = RegressionConfig.from_run(tmp_path / "a")
    assert again_cfg == cfg
    # drawn again without its figures: the same numbers, no PNG
    again = run_regression(replace(again_cfg, figures=False), out=tmp_path / "b")
    for key in ("train_mse", "test_mse", "cv_mse", "best_params"):
        assert getattr(again.metrics, key) == getattr(first.metrics, key), key
    assert list((tmp_path / "a").glob("*.png")) and not list((tmp_path / "b").glob("*.png"))
    other = run_regression(replace(cfg, seed=1), out=tmp_path / "c")  # the seed is used
    assert other.metrics.test_mse != first.metrics.test_mse
    with pytest.raises(UserError, match="not a run of a ClassificationConfig"):
        ClassificationConfig.from_run(tmp_path / "a")


def test_no_figures_changes_nothing_but_the_pngs(tmp_path, bars, capsys):
    from glassnet.report import build_report

    cfg = ClassificationConfig(data_dir=str(bars), hidden=(8,), epochs=2, device="cpu")
    drawn = run_classification(cfg, out=tmp_path / "a").metrics.to_json()
    args = ["--data-dir", str(bars), "--hidden", "8", "--epochs", "2", "--device", "cpu"]
    assert main(["classify", *args, "--no-figures", "--quiet", "--out", str(tmp_path / "b")]) == 0
    bare = json.loads((tmp_path / "b" / "metrics.json").read_text())
    timings = ("seconds", "train_seconds", "seconds_per_epoch")
    assert {k: v for k, v in bare.items() if k not in timings} == {
        k: v for k, v in drawn.items() if k not in timings
    }
    a, b = (torch.load(tmp_path / r / "weights.pt", weights_only=True) for r in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(list((tmp_path / "a").glob("*.png"))) >= 5
    assert not list((tmp_path / "b").glob("*.png"))
    assert ClassificationConfig.from_run(tmp_path / "b").figures is False  # resume keeps it
    html = build_report([tmp_path / "b"], tmp_path / "r.html").read_text()
    assert f"{bare['test_accuracy']:.2%}" in html  # its numbers, without pictures
    # regression takes it with any search: not an option one search ignores
    assert all(not RegressionConfig(search=s).unused({"figures"}) for s in SEARCHES)


def test_rerun_of_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    assert main(["rerun", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a run folder (no config.json)" in err and len(err.splitlines()) == 1
    (tmp_path / "x" / "config.json").write_text('{"kind": "poem"}')
    with pytest.raises(UserError, match="not a glassnet run configuration"):
        config_from_run(tmp_path / "x")


def test_loading_rebuilds_the_trained_architecture(tmp_path, bars):
    cfg = ClassificationConfig(
        data_dir=str(bars), hidden=(24, 12), dropout=0.3, epochs=1, device="cpu"
    )
    res = run_classification(cfg, out=tmp_path / "run")
    loaded, saved = load_classifier(tmp_path / "run")
    trained = res.net.module_
    assert [(k, v.shape) for k, v in loaded.state_dict().items()] == [
        (k, v.shape) for k, v in trained.state_dict().items()
    ]
    assert repr(loaded) == repr(build_module(cfg, 5)) == repr(trained)  # dropout included
    # A config.json that describes another net: refused, not loaded silently.
    saved["hidden"] = [24, 13]
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    with pytest.raises(UserError, match="weights do not match the architecture"):
        load_classifier(tmp_path / "run")


def test_real_study_configs_are_valid_and_use_the_presets():
    reg, mlp, lenet = study_configs(None, quick=False)
    for cfg in (reg, mlp, lenet):
        cfg.validate()
    assert (mlp.preset, lenet.preset) == ("best", "best")
    assert (
        lenet.rotate > 0
        and lenet.epochs == ClassificationConfig(model="lenet5", preset="best").epochs
    )
    assert reg == RegressionConfig(seed=reg.seed, device=reg.device)  # the regression defaults
    quick = study_configs(None, quick=True)
    for cfg in quick:
        cfg.validate()
    assert quick[2].max_train is not None and quick[2].epochs < lenet.epochs


def test_fold_models_fall_back_to_one_fit_after_another():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (30, 1)).astype(np.float32)
    y = np.sin(X[:, 0]).astype(np.float32)
    cfg = RegressionConfig(hidden=(8,), activation="gelu", epochs=20, batch_size=8, device="cpu")
    est = make_regressor(cfg)
    folds = [np.arange(0, 20), np.arange(10, 30)]
    models = fold_models(est, {"lr": 0.05}, X, y, folds)  # gelu: not batchable
    assert len(models) == 2
    for m, tr in zip(models, folds):
        ref = est.__class__(**est.get_params()).set_params(lr=0.05).fit(X[tr], y[tr])
        with torch.no_grad():
            ours = m(torch.from_numpy(X)).numpy()
        np.testing.assert_allclose(ours, ref.predict(X), rtol=1e-5, atol=1e-6)


def test_bfloat16_is_refused_where_the_cpu_lacks_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with pytest.raises(UserError, match="no native bfloat16"):
        check_precision("bfloat16", "cpu")
    check_precision("float32", "cpu")  # always fine
    args = ["classify", "--precision", "bfloat16", "--device", "cpu", "--out", str(tmp_path / "x")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "use --precision float32" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_python_dash_m_and_version():
    out = subprocess.run(
        [sys.executable, "-m", "glassnet", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"glassnet {__version__}"


@pytest.mark.slow
def test_search_with_two_jobs_matches_one_job():
    rng = np.random.default_rng(1)
    X = rng.uniform(-2, 2, (40, 1)).astype(np.float32)
    y = np.sin(X[:, 0]).astype(np.float32)
    est = make_regressor(RegressionConfig(hidden=(8,), epochs=30, batch_size=8, device="cpu"))
    space = {"lr": [0.005, 0.01, 0.05], "optimizer__momentum": [0.0, 0.9]}
    scores = []
    for n_jobs in (1, 2):
        s = make_search(est, "random", space, cv=3, n_iter=4, seed=2, n_jobs=n_jobs).fit(X, y)
        scores.append(s.cv_results_["mean_test_score"])
    np.testing.assert_array_equal(*scores)


# scikit-learn's estimator checks. PopulationSearchCV takes the parameter checks. The skorch
# nets take those their design allows; left out, and why: check_no_attributes_set_in_init and
# check_parameters_default_constructible (skorch stores routed module__/optimizer__ settings and
# history_ at init, and its module is a required argument), check_set_params and
# check_do_not_raise_errors_in_init_or_set_params (skorch validates callbacks and
# predict_nonlinearity when they are set). For all three, the data-driven checks (fit and
# predict on scikit-learn's generated data of any width, dtype and size) cannot apply to a
# module built for one input width; test_fit_idempotent_... checks that contract on data the
# nets take.
_PARAM_CHECKS = [
    sk.check_no_attributes_set_in_init,
    sk.check_get_params_invariance,
    sk.check_set_params,
    sk.check_parameters_default_constructible,
    sk.check_do_not_raise_errors_in_init_or_set_params,
    sk.check_estimator_cloneable,
]
_NET_CHECKS = [sk.check_get_params_invariance, sk.check_estimator_cloneable]


def _estimators():
    reg = make_regressor(RegressionConfig(hidden=(4,), epochs=2, device="cpu"))
    clf = GlassClassifier(
        torch.nn.Linear,
        module__in_features=3,
        module__out_features=2,
        criterion=torch.nn.CrossEntropyLoss,
        train_split=None,
        max_epochs=1,
    )
    search = PopulationSearchCV(reg, {"lr": [0.01, 0.02]}, n_iter=None, cv=2)
    return {"GlassRegressor": reg, "GlassClassifier": clf, "PopulationSearchCV": search}


@pytest.mark.parametrize(
    "name, check",
    [("PopulationSearchCV", c) for c in _PARAM_CHECKS]
    + [(n, c) for n in ("GlassRegressor", "GlassClassifier") for c in _NET_CHECKS],
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
def test_scikit_learn_estimator_checks(name, check):
    check(name, _estimators()[name])


def test_fit_idempotent_and_fitted_attributes():
    """check_fit_idempotent's contract on data the nets can take: fitting twice (same seed)
    gives the same predictions, and learned state ends in an underscore."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (24, 1)).astype(np.float32)
    y = (2 * X[:, 0]).astype(np.float32)
    est = make_regressor(RegressionConfig(hidden=(4,), epochs=3, batch_size=8, device="cpu"))
    a = est.fit(X, y).predict(X)
    b = est.fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    search = PopulationSearchCV(est, {"lr": [0.01, 0.02]}, n_iter=None, cv=2).fit(X, y)
    assert {"cv_results_", "best_params_", "best_estimator_"} <= set(vars(search))
    assert "in_fit_" not in GlassClassifier(torch.nn.Linear).get_params()


def test_a_test_label_without_training_images_is_one_line(tmp_path, capsys):
    folder = make_idx_folder(tmp_path / "d", n_train=40, n_test=20, n_classes=10)
    labels = np.arange(20) % 10
    labels[3] = 42  # a label no training image has
    write_idx(folder / (MNIST_FILES["test_labels"] + ".gz"), labels.astype(np.uint8))
    with pytest.raises(UserError, match=r"t10k-labels.*label 42 has no training image"):
        load_idx_folder(folder)
    assert main(["classify", "--data-dir", str(folder), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "label 42 has no training image" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_typed_metrics_round_trip_through_metrics_json(tmp_path, bars, fast_cfg):
    from glassnet.results import ClassificationMetrics, RegressionMetrics, metrics_from_json

    clf = run_classification(
        ClassificationConfig(data_dir=str(bars), hidden=(8,), epochs=1, device="cpu",
                             figures=False),
        out=tmp_path / "c",
    ).metrics
    reg = run_regression(fast_cfg, out=tmp_path / "r").metrics
    for m, folder, cls in ((clf, "c", ClassificationMetrics), (reg, "r", RegressionMetrics)):
        saved = json.loads((tmp_path / folder / "metrics.json").read_text())
        back = metrics_from_json(saved)
        assert isinstance(back, cls) and back.to_json() == saved == m.to_json()
    # One shape of "data" for both kinds of run.
    assert clf.data.n_fit + clf.data.n_val == clf.data.n_train == 300
    assert reg.data.n_train == 30 and reg.data.kind == "files" and not reg.data.generated
    # metrics.json of an earlier version (regression "data" a string) still reads.
    old = {**reg.to_json(), "data": "train.csv", "n_train": 30, "n_test": 20}
    old["generated_data"] = True
    back = metrics_from_json(old)
    assert back.data.source == "train.csv" and back.data.generated and back.data.n_test == 20
