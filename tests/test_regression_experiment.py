"""The regression experiment end to end: CLI, run folders, search, determinism, errors."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, KFold

from glassnet.cli import main
from glassnet.errors import UserError
from glassnet.estimators import RegressionConfig, make_regressor
from glassnet.experiments.regression import run_regression
from glassnet.runs.load import load_regression_model

from .conftest import write_csv

RUN_FILES = {
    "config.json",
    "metrics.json",
    "history.json",
    "cv_results.csv",
    "weights.pt",
    "fit.png",
    "learning_curve.png",
    "weight_histograms.png",
    "activations.png",
}


def test_cli_end_to_end_and_predict(tmp_path, small_csvs, capsys):
    tr, te = small_csvs
    out = tmp_path / "run"
    code = main(
        [
            "regression",
            "--train",
            str(tr),
            "--test",
            str(te),
            "--hidden",
            "16",
            "8",
            "--search",
            "ensemble",
            "--n-iter",
            "2",
            "--cv",
            "2",
            "--max-epochs",
            "40",
            "--quiet",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "CV MSE" in text and "test MSE" in text and str(out) in text
    assert RUN_FILES <= {p.name for p in out.iterdir()}
    m = json.loads((out / "metrics.json").read_text())
    for key in ("train_mse", "test_mse", "cv_mse", "best_params", "seconds"):
        assert key in m
    assert m["n_candidates"] == 2 and m["search"] == "ensemble"
    assert m["ensemble_members"] == 2  # one model per fold
    history = json.loads((out / "history.json").read_text())  # the best candidate's curves
    assert [h["epoch"] for h in history] == list(range(10, history[-1]["epoch"] + 1, 10))
    assert m["best_params"]["max_epochs"] in [h["epoch"] for h in history]
    assert min(h["valid_loss"] for h in history) == pytest.approx(m["cv_mse"])
    assert (out / "cv_results.csv").read_text().count("\n") == 3  # header + 2 candidates
    # No leftover temporary folder beside the run.
    assert [p.name for p in tmp_path.iterdir() if ".partial" in p.name] == []

    # predict reproduces the model's own predictions
    assert main(["predict", str(out), "--x", "0.5", "-1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "input,prediction" and len(lines) == 3
    model = load_regression_model(out)
    import torch

    expected = model(torch.tensor([[0.5]])).item()
    assert float(lines[1].split(",")[1]) == pytest.approx(expected, rel=1e-4)
    assert main(["predict", str(out), "--input", str(te)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 21


def test_study_hyperparameters_on_generated_data_learn(tmp_path, monkeypatch):
    monkeypatch.delenv("GLASSNET_DATA", raising=False)
    cfg = RegressionConfig(search="none", epochs=300, hidden=(64, 32), device="cpu")
    res = run_regression(cfg, out=tmp_path / "r")
    assert res.data.generated
    # the generator's noise variance is 0.16, and its test points are noisy too: a fit close
    # to the function sits near 0.16 on both; a constant (an unfit net) sits near 5
    assert res.metrics.train_mse < 0.25 and res.metrics.test_mse < 0.25


def test_grid_search_and_fewer_rows_than_folds(tmp_path, fast_cfg):
    res = run_regression(
        replace(fast_cfg, search="grid", epoch_choices=(5, 10)), out=tmp_path / "g"
    )
    assert res.metrics.n_candidates == 3 * 2 * 2 * 2
    with pytest.raises(UserError, match="fewer than cv 40 folds"):
        run_regression(replace(fast_cfg, cv=40), out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_diverging_candidates_are_reported_not_fatal(tmp_path, small_csvs):
    tr, te = small_csvs
    cfg = RegressionConfig(
        train=str(tr), test=str(te), hidden=(16,), search="grid", cv=2, device="cpu", probe_x=(0.0,)
    )
    grid = {
        "lr": [0.01, 50.0],
        "optimizer__momentum": [0.9],
        "max_epochs": [30],
        "optimizer__weight_decay": [0.0],
    }
    mp = pytest.MonkeyPatch()
    mp.setattr("glassnet.experiments.regression_fits.regression_grid", lambda _epochs: grid)
    try:
        res = run_regression(cfg, out=tmp_path / "d")
    finally:
        mp.undo()
    assert res.metrics.n_failed == 1
    assert res.metrics.failed[0]["lr"] == 50.0
    assert res.metrics.best_params["lr"] == 0.01
    pred = res.model(torch.as_tensor(res.data.x_test, dtype=torch.float32).reshape(-1, 1))
    assert res.metrics.test_mse == pytest.approx(  # the survivor's own test MSE
        float(np.mean((pred.detach().numpy().ravel() - res.data.y_test) ** 2)), rel=1e-5)


def test_estimator_works_in_plain_gridsearchcv(fast_cfg):
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (24, 1)).astype(np.float32)
    y = np.sin(X[:, 0])
    net = make_regressor(replace(fast_cfg, epochs=10))
    gs = GridSearchCV(net, {"lr": [0.01, 0.05]}, cv=KFold(3), scoring="neg_mean_squared_error")
    gs.fit(X, y)
    assert set(gs.best_params_) == {"lr"} and np.isfinite(gs.best_score_)
    assert gs.predict(X).shape == (24, 1)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lr", "0"], "--lr must be > 0"),
        (["--lr", "-1"], "--lr must be > 0"),
        (["--momentum", "1"], "--momentum must be in [0, 1)"),
        (["--momentum", "-0.1"], "--momentum must be in [0, 1)"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--cv", "1"], "--cv must be >= 2"),
        (["--search", "bayes"], "argument --search: invalid choice: 'bayes'"),
        (
            ["--activation", "gelu", "--search", "population", "--epoch-choices", "5"],
            "--search population: PopulationSearchCV cannot batch activation 'gelu'",
        ),
        (
            ["--activation", "gelu"],
            "--search deep-ensemble: activation 'gelu' cannot be batched",
        ),
        (["--n-jobs", "2"], "--n-jobs 2: only --search random and grid run fits in parallel"),
        (["--folds", "random"], "argument --folds: invalid choice: 'random'"),
        (["--activation", "swish"], "argument --activation: invalid choice: 'swish'"),
        (["--epochs"], "argument --epochs: expected one argument"),
        (["--max-epochs", "0"], "--max-epochs must be >= 1"),
        (
            ["--train", "missing.csv", "--test", "missing.csv"],
            "--train missing.csv: file not found",
        ),
    ],
)
def test_cli_bad_options_exit_2_with_one_line(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert main(["regression", "--quiet", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_unwritable_out(tmp_path, capsys, small_csvs):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    tr, te = small_csvs
    assert (
        main(
            [
                "regression",
                "--train",
                str(tr),
                "--test",
                str(te),
                "--quiet",
                "--out",
                str(blocker / "run"),
            ]
        )
        == 2
    )
    assert "--out" in capsys.readouterr().err


def test_bad_csv_through_cli(tmp_path, capsys, small_csvs):
    bad = write_csv(tmp_path / "bad.csv", np.array([1.0]), np.array([2.0]))
    bad.write_text(bad.read_text() + "3,oops\n")
    assert main(["regression", "--train", str(bad), "--test", str(small_csvs[1]), "--quiet"]) == 2
    assert "bad.csv, line 3: non-numeric" in capsys.readouterr().err


def test_crash_leaves_no_finished_looking_folder(tmp_path, fast_cfg, monkeypatch):
    import glassnet.plots.regression_run as figures

    def boom(*a, **k):
        raise RuntimeError("simulated crash while drawing")

    monkeypatch.setattr(figures, "plot_learning_curve", boom)
    with pytest.raises(RuntimeError):
        run_regression(replace(fast_cfg, search="none", figures=True), out=tmp_path / "crashed")
    assert not (tmp_path / "crashed").exists()  # nothing looks finished
    kept = tmp_path / ".crashed.partial"  # kept for `glassnet resume`, never looking complete
    assert (kept / "config.json").exists() and not (kept / "metrics.json").exists()
    monkeypatch.undo()
    res = run_regression(replace(fast_cfg, search="none", figures=True), out=tmp_path / "crashed",
                         resume=True)  # fmt: skip
    assert (tmp_path / "crashed" / "metrics.json").exists() and not kept.exists()
    clean = run_regression(replace(fast_cfg, search="none"), out=tmp_path / "clean")
    assert res.metrics.test_mse == clean.metrics.test_mse  # as if it had never crashed


def test_predict_errors(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope"), "--x", "1"]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), "--x", "1"]) == 2
    assert "config.json" in capsys.readouterr().err


def test_every_search_is_declared_once_and_the_report_shows_what_it_uses(tmp_path, small_csvs,
                                                                         capsys):  # fmt: skip
    # The registry (estimators.SEARCHES) is the one declaration: every setting belongs to the
    # common ones or to a search; every search runs, is a parser choice, and the report's
    # configuration table shows exactly the settings it uses.
    from dataclasses import asdict, fields

    from glassnet.cli.parser import build_parser
    from glassnet.estimators import COMMON_FIELDS, SEARCHES
    from glassnet.experiments.regression_fits import RUNNERS
    from glassnet.report.builder import _applied

    declared = set(COMMON_FIELDS) | {f for k in SEARCHES.values() for f in k.fields}
    assert declared == {f.name for f in fields(RegressionConfig)}
    assert set(RUNNERS) == set(SEARCHES)
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["regression"]
    search = next(a for a in sub._actions if a.dest == "search")
    assert tuple(search.choices) == tuple(SEARCHES)
    assert all(kind.help in search.help for kind in SEARCHES.values())
    for name, kind in SEARCHES.items():
        cfg = {**asdict(RegressionConfig(search=name)), "kind": "regression"}
        assert _applied(cfg) - {"kind"} == set(COMMON_FIELDS) | set(kind.fields), name
    # an option the chosen search does not use is refused, in one line, before any work
    tr, te = small_csvs
    out = tmp_path / "never"
    code = main(["regression", "--train", str(tr), "--test", str(te), "--n-iter", "3",
                 "--patience", "4", "--quiet", "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--n-iter, --patience: not used by --search deep-ensemble" in err
    assert not out.exists()
