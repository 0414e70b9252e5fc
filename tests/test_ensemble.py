"""EnsembleSearchCV, RegressionEnsemble, blocked folds, band coverage and the GP baseline."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from glassnet.baselines import fit_gaussian_process
from glassnet.cli import main
from glassnet.errors import NoModelError, UserError
from glassnet.experiments.regression import run_regression
from glassnet.introspection import band_coverage, fold_band, spread_inside_gaps
from glassnet.models import MLP, RegressionEnsemble
from glassnet.runs.load import load_regression_model
from glassnet.search.cv import BlockedKFold
from glassnet.search.engine import Population
from glassnet.search.ensemble import EnsembleSearchCV
from glassnet.search.loop import epoch_batches


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-3, 3, n))
    return x, np.sin(x) + 0.1 * rng.normal(size=n)


def _search(**kw):
    params = dict(hidden=(16, 8), n_iter=3, cv=BlockedKFold(4, 2), max_epochs=60, patience=3)
    params.update(kw)
    space = {"lr": [0.01, 0.03, 0.05], "optimizer__momentum": [0.9]}
    return EnsembleSearchCV(space, **params)


def test_band_coverage_by_hand():
    y = np.array([0.0, 1.0, 2.0, 3.0])
    mean = np.zeros(4)
    std = np.array([1.0, 0.5, 1.0, 1.0])
    # |y - mean| <= 2 std: 0 <= 2 yes, 1 <= 1 yes (edge), 2 <= 2 yes, 3 <= 2 no
    assert band_coverage(y, mean, std) == 0.75
    assert band_coverage(y, mean, std, k=3.0) == 1.0
    with pytest.raises(ValueError):
        band_coverage(y, mean[:3], std)


def test_spread_inside_gaps_by_hand():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    std = np.array([1.0, 5.0, 7.0, 1.0, 3.0])
    assert spread_inside_gaps(x, std, [(0.5, 2.5)]) == {"in_gaps": 6.0, "elsewhere": 5.0 / 3}
    assert spread_inside_gaps(x, std, []) == {}


def test_ensemble_is_mean_of_members_and_undoes_scaling_exactly():
    torch.manual_seed(0)
    members = [MLP(1, (8,), 1, "tanh") for _ in range(3)]
    ens = RegressionEnsemble(members, x_mean=2.0, x_scale=4.0, y_mean=-1.5, y_scale=3.0)
    x = torch.linspace(-5, 9, 11).reshape(-1, 1)
    by_hand = torch.stack([m((x - 2.0) / 4.0) * 3.0 - 1.5 for m in members])  # (3, 11, 1)
    torch.testing.assert_close(ens.member_outputs(x), by_hand)
    torch.testing.assert_close(ens(x), by_hand.mean(0))
    # fold_band reads the same members
    band = fold_band(ens, x.numpy().ravel())
    np.testing.assert_allclose(band["all"], by_hand[:, :, 0].detach().numpy(), rtol=1e-6)


def test_search_prediction_is_the_mean_of_its_fold_models():
    x, y = _data()
    s = _search().fit(x, y)
    members = s.predict_members(x)
    assert members.shape == (4, len(x))  # one model per fold
    np.testing.assert_allclose(s.predict(x), members.mean(0), rtol=1e-6)
    assert set(s.best_params_) == {"lr", "optimizer__momentum", "max_epochs"}
    assert s.best_epoch_ == s.best_params_["max_epochs"] <= 60
    assert s.best_score_ == pytest.approx(-np.nanmin(-s.cv_results_["mean_test_score"]))


def test_standardisation_makes_units_irrelevant():
    # Same problem in other units: x -> 10 x + 3, y -> 5 y - 2. The standardised problem is the
    # same, so the predictions must be the same function, mapped back exactly.
    x, y = _data()
    a = _search().fit(x, y)
    b = _search().fit(10 * x + 3, 5 * y - 2)
    np.testing.assert_allclose(b.predict(10 * x + 3), 5 * a.predict(x) - 2, rtol=1e-4, atol=1e-4)
    assert b.best_score_ == pytest.approx(25 * a.best_score_, rel=1e-4)
    assert b.best_params_ == a.best_params_


@pytest.mark.parametrize("input_scale", [1.0, 3.0])
def test_fold_scores_are_the_fold_models_validation_mse(input_scale):
    # The saved fold models (the input scale folded into their first layer) must reproduce
    # the fold scores the search read during training.
    x, y = _data()
    cv = BlockedKFold(4, 2)
    space = {"lr": [0.01, 0.03], "optimizer__momentum": [0.9], "input_scale": [input_scale]}
    s = EnsembleSearchCV(space, hidden=(16, 8), n_iter=2, cv=cv, max_epochs=60, patience=100)
    s.fit(x, y)
    assert s.best_params_["input_scale"] == input_scale
    members = s.predict_members(x)
    for k, (_, val) in enumerate(cv.split(x.reshape(-1, 1))):
        mse = np.mean((members[k, val] - y[val]) ** 2)
        got = -s.cv_results_[f"split{k}_test_score"][s.best_index_]
        assert got == pytest.approx(mse, rel=1e-4)


def test_patience_stops_candidates_and_diverged_ones_fail():
    x, y = _data()
    space = {"lr": [1e-4, 50.0], "optimizer__momentum": [0.0]}
    s = EnsembleSearchCV(
        space, hidden=(16,), n_iter=2, cv=BlockedKFold(2, 2), max_epochs=400, patience=2
    ).fit(x, y)
    by_lr = {p["lr"]: i for i, p in enumerate(s.cv_results_["params"])}
    assert s.failed_[by_lr[50.0]] and np.isnan(s.cv_results_["mean_test_score"][by_lr[50.0]])
    assert s.best_params_["lr"] == 1e-4
    assert s.member_epochs_ < 2 * 2 * 400  # members left before the cap
    with pytest.raises(NoModelError, match="every candidate diverged"):
        EnsembleSearchCV({"lr": [50.0]}, hidden=(16,), n_iter=1, cv=2, max_epochs=50).fit(x, y)


def test_members_follow_torch_sgd_with_parameter_groups():
    # Two members from different starting weights, each with its own lr and a per-layer lr
    # multiplier: each must follow torch.optim.SGD (param groups, momentum, weight decay).
    torch.manual_seed(0)
    inits = [MLP(1, (16, 8), 1, "tanh") for _ in range(2)]
    settings = [
        {"lr": 0.02, "momentum": 0.9, "wd": 1e-3, "dropout": 0.0},
        {"lr": 0.005, "momentum": 0.5, "wd": 0.0, "dropout": 0.0},
    ]
    layer_lr = (3.0, 1.0, 0.5)
    X = torch.linspace(-2, 2, 24).reshape(-1, 1)
    y = torch.sin(2 * X)
    pop = Population(inits, settings, torch.device("cpu"), "tanh", layer_lr)
    idx = [torch.arange(24)] * 2
    gen = torch.Generator().manual_seed(0)
    batches = epoch_batches([0, 1], [24, 24], idx, 24, 128, False, gen, X, y)
    for _ in range(40):
        for Xb, yb, w, active, _count in batches:
            pop.step(Xb, yb, w, active, None, 16)
    for m, (init, s) in enumerate(zip(inits, settings)):
        net = MLP(1, (16, 8), 1, "tanh")
        net.load_state_dict(init.state_dict())
        groups = [
            {"params": list(lin.parameters()), "lr": s["lr"] * f}
            for lin, f in zip(net.linear_layers(), layer_lr)
        ]
        opt = torch.optim.SGD(groups, lr=s["lr"], momentum=s["momentum"], weight_decay=s["wd"])
        for _ in range(40):
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(X), y).backward()
            opt.step()
        for i, lin in enumerate(net.linear_layers()):
            torch.testing.assert_close(pop.W[i][m], lin.weight.detach(), rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(pop.b[i][m, 0], lin.bias.detach(), rtol=1e-4, atol=1e-5)


def test_blocked_folds_hold_out_runs_of_neighbours():
    rng = np.random.default_rng(3)
    x = rng.uniform(-5, 5, 23)  # unsorted on purpose
    cv = BlockedKFold(3, block_size=2)
    seen = []
    order = np.argsort(x)
    rank = np.empty(23, dtype=int)
    rank[order] = np.arange(23)
    for k, (train, test) in enumerate(cv.split(x.reshape(-1, 1))):
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 23
        assert all((rank[i] // 2) % 3 == k for i in test)  # whole blocks of 2 sorted neighbours
        seen.extend(test)
    assert sorted(seen) == list(range(23))
    with pytest.raises(ValueError, match="fewer than"):
        list(BlockedKFold(5, 4).split(np.zeros((10, 1))))


def test_gaussian_process_baseline_decomposes_its_std():
    x, y = _data(n=30)
    gp = fit_gaussian_process(x, y)
    q = np.linspace(-4, 4, 9)
    mean, latent, predictive = gp.predict(q)
    np.testing.assert_allclose(mean, gp.model.predict(q.reshape(-1, 1)))
    noise = gp.noise_variance * float(np.std(y)) ** 2  # normalize_y: the data's units
    np.testing.assert_allclose(predictive**2 - latent**2, noise, rtol=1e-6)
    assert np.all(latent[[0, -1]] > latent[4])  # less sure outside the data than inside
    assert gp.n_fit == 30 and gp.model.n_restarts_optimizer == 5


def test_gaussian_process_baseline_subsamples_large_data(monkeypatch):
    import glassnet.baselines as baselines

    monkeypatch.setattr(baselines, "GP_MAX_POINTS", 25)
    x, y = _data(n=60)
    gp = baselines.fit_gaussian_process(x, y, seed=3, restarts=0)
    assert gp.n_fit == 25 and gp.model.X_train_.shape == (25, 1)
    assert set(gp.model.X_train_.ravel()) <= set(x)  # a subsample of the given points
    again = baselines.fit_gaussian_process(x, y, seed=3, restarts=0)
    np.testing.assert_array_equal(gp.model.X_train_, again.model.X_train_)  # seeded


def test_saved_ensemble_run_predicts_like_the_live_model(tmp_path, fast_cfg, capsys):
    cfg = replace(fast_cfg, search="ensemble", n_iter=2, max_epochs=40, patience=2, cv=3)
    res = run_regression(cfg, out=tmp_path / "run")
    m = res.metrics
    assert isinstance(res.model, RegressionEnsemble) and m.ensemble_members == 3
    for key in ("baseline_gp_test_mse", "band_coverage", "baseline_gp_band_coverage"):
        assert key in m.to_json()
    # the coverage recomputed by hand from the members' own predictions at the test points
    members = res.model.predict_members(res.data.x_test)  # (members, n)
    mean, std = members.mean(0), members.std(0)  # an SGD ensemble: no last-layer variance
    assert m.band_coverage == pytest.approx(np.mean(np.abs(res.data.y_test - mean) <= 2 * std))
    assert m.test_mse == pytest.approx(np.mean((mean - res.data.y_test) ** 2), rel=1e-5)
    loaded = load_regression_model(res.run_dir)
    assert isinstance(loaded, RegressionEnsemble)
    x = torch.linspace(-4, 4, 17).reshape(-1, 1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), res.model(x))
    # the CLI prints the same numbers, and the test MSE is the ensemble's own
    assert main(["predict", str(res.run_dir), "--x", "0.5"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[1]
    with torch.no_grad():
        assert float(line.split(",")[1]) == pytest.approx(
            res.model(torch.tensor([[0.5]])).item(), rel=1e-4
        )
    te = res.data
    with torch.no_grad():
        pred = res.model(torch.as_tensor(te.x_test, dtype=torch.float32).reshape(-1, 1)).ravel()
    assert m.test_mse == pytest.approx(float(np.mean((pred.numpy() - te.y_test) ** 2)))
    saved = json.loads((res.run_dir / "metrics.json").read_text())
    assert saved["test_mse"] == m.test_mse


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path, fast_cfg, capsys):
    res = run_regression(replace(fast_cfg, search="none", epochs=5), out=tmp_path / "r")
    cfg = json.loads((res.run_dir / "config.json").read_text())
    cfg["hidden"] = [32]  # a config edited after the run: the weights no longer fit
    (res.run_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="do not match the architecture"):
        load_regression_model(res.run_dir)
    assert main(["predict", str(res.run_dir), "--x", "1"]) == 2
    assert "do not match" in capsys.readouterr().err


def test_run_folders_of_earlier_versions_still_predict(tmp_path, capsys):
    # An earlier version's run: one MLP's state_dict and a config.json without the ensemble keys.
    torch.manual_seed(0)
    mlp = MLP(1, (8, 4), 1, "tanh")
    run = tmp_path / "old"
    run.mkdir()
    torch.save(mlp.state_dict(), run / "weights.pt")
    old_cfg = {"kind": "regression", "hidden": [8, 4], "activation": "tanh",
               "search": "population", "n_iter": 20, "epoch_choices": [100, 250]}  # fmt: skip
    (run / "config.json").write_text(json.dumps(old_cfg))
    assert main(["predict", str(run), "--x", "0.25"]) == 0
    value = float(capsys.readouterr().out.strip().splitlines()[1].split(",")[1])
    with torch.no_grad():
        assert value == pytest.approx(mlp(torch.tensor([[0.25]])).item(), rel=1e-4)


def test_blocked_folds_shrink_their_blocks_for_small_data(tmp_path):
    from glassnet.estimators import RegressionConfig

    assert RegressionConfig(cv=5).folds_splitter(100).block_size == 4
    assert RegressionConfig(cv=5).folds_splitter(12).block_size == 2
    assert RegressionConfig(cv=5).folds_splitter(7).block_size == 1
    # 12 rows, 5 blocked folds: the ensemble search runs instead of failing on the split
    x = np.linspace(-2, 2, 12)
    tr = tmp_path / "tr.csv"
    tr.write_text("input,label\n" + "".join(f"{a},{a * a}\n" for a in x))
    cfg = RegressionConfig(train=str(tr), test=str(tr), hidden=(8,), search="ensemble", n_iter=1,
                           max_epochs=20, device="cpu", probe_x=(0.0,))  # fmt: skip
    assert run_regression(cfg, out=tmp_path / "run").metrics.ensemble_members == 5
