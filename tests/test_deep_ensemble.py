"""DeepEnsembleRegressor, the regression default: members against torch.optim.Adam trained alone,
the mean of members, training data only, saved runs."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from glassnet.cli import main
from glassnet.errors import NoModelError, UserError
from glassnet.estimators import RegressionConfig
from glassnet.experiments.regression import run_regression
from glassnet.introspection import fold_band
from glassnet.models import MLP, RegressionEnsemble
from glassnet.rng import seeded
from glassnet.runs.load import load_regression_model
from glassnet.search.deep_ensemble import DeepEnsembleRegressor


def _data(n=30, seed=0):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-3, 3, n))
    return x, 2.0 + np.sin(x) + 0.1 * rng.normal(size=n)


@pytest.mark.parametrize("penalties", [(1e-3, 1e-3, 1e-3), (0.0, 1e-2, 0.3)])
def test_each_member_is_adam_on_standardised_data_alone(penalties):
    # Member k starts from seed random_state * 1000 + k and trains full-batch on the
    # standardised data: the same as one MLP trained alone by torch.optim.Adam, with its own
    # weight decay (one value for all members, or one each).
    x, y = _data()
    wd = penalties[0] if len(set(penalties)) == 1 else penalties
    est = DeepEnsembleRegressor(hidden=(16, 8), n_members=3, lr=0.01, weight_decay=wd,
                                epochs=40, random_state=2, last_layer="trained").fit(x, y)
    xs = torch.tensor((x - x.mean()) / x.std(), dtype=torch.float32).reshape(-1, 1)
    ys = torch.tensor((y - y.mean()) / y.std(), dtype=torch.float32).reshape(-1, 1)
    for k, member in enumerate(est.ensemble_.members):
        with seeded(2 * 1000 + k):
            net = MLP(1, (16, 8), 1, "tanh")
        opt = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=penalties[k])
        for _ in range(40):
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(xs), ys).backward()
            opt.step()
        for got, want in zip(member.parameters(), net.parameters()):
            torch.testing.assert_close(got, want.detach(), rtol=1e-4, atol=2e-5)
    # the recorded curve is the members' mean training MSE in data units
    with torch.no_grad():
        preds = est.predict_members(x)  # (members, n)
    final = float(np.mean((preds - y) ** 2))
    assert est.curves_["epoch"][-1] == 40
    assert est.curves_["train_mse"][-1] == pytest.approx(final, rel=0.05)


def test_prediction_is_the_mean_of_the_members():
    x, y = _data()
    est = DeepEnsembleRegressor(hidden=(8,), n_members=3, epochs=20).fit(x, y)
    q = np.linspace(-4, 4, 11)
    each = est.predict_members(q)
    assert each.shape == (3, 11)
    np.testing.assert_allclose(est.predict(q), each.mean(0), rtol=1e-6)
    # and each member's own prediction is its MLP on the standardised input, scaled back
    e = est.ensemble_
    xs = (torch.tensor(q, dtype=torch.float32).reshape(-1, 1) - e.x_mean) / e.x_scale
    with torch.no_grad():
        m1 = (e.members[1](xs) * e.y_scale + e.y_mean).ravel().numpy()
    np.testing.assert_allclose(each[1], m1, rtol=1e-5)
    assert not np.allclose(each[0], each[1])  # different seeds, different nets


def test_every_member_diverging_is_one_error():
    x, y = _data()
    with pytest.raises(NoModelError, match="every member"):
        DeepEnsembleRegressor(hidden=(8,), n_members=2, optimizer="sgd", lr=1e4, momentum=0.9,
                              weight_decay=0.0, epochs=30).fit(x, y)  # fmt: skip
    with pytest.raises(ValueError, match="n_members must be >= 1"):
        DeepEnsembleRegressor(n_members=0).fit(x, y)
    for wd in (-1e-3, (1e-3, 1e-2, 1e-1), (1e-3, float("nan"))):
        with pytest.raises(ValueError, match="one value or one per member"):
            DeepEnsembleRegressor(n_members=2, weight_decay=wd).fit(x, y)


def test_default_reads_training_data_only(tmp_path, fast_cfg):
    # Every test label changed: the model (its weights, so its training-set predictions) and
    # the settings recorded are exactly the same; only the test score moves.
    cfg = replace(fast_cfg, search="deep-ensemble", members=2, ensemble_epochs=30)
    a = run_regression(cfg, out=tmp_path / "a")
    test = tmp_path / "test_changed.csv"
    rows = np.loadtxt(cfg.test, delimiter=",", skiprows=1)
    lines = "".join(f"{float(u)!r},{float(v) + 5.0!r}\n" for u, v in rows)
    test.write_text("input,label\n" + lines)
    b = run_regression(replace(cfg, test=str(test)), out=tmp_path / "b")
    assert a.metrics.best_params == b.metrics.best_params
    assert a.metrics.train_mse == b.metrics.train_mse
    for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(p, q)
    assert a.metrics.test_mse != b.metrics.test_mse


def test_default_run_saves_and_predicts_like_the_live_model(tmp_path, fast_cfg, capsys):
    cfg = replace(fast_cfg, search="deep-ensemble", members=3, ensemble_epochs=25)
    assert RegressionConfig().search == "deep-ensemble"  # the default
    res = run_regression(cfg, out=tmp_path / "run")
    m = res.metrics
    assert isinstance(res.model, RegressionEnsemble) and m.ensemble_members == 3
    assert m.cv_mse is None and m.epochs_run == 25 and m.member_epochs == 3 * 25
    loaded = load_regression_model(res.run_dir)
    x = torch.linspace(-4, 4, 17).reshape(-1, 1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), res.model(x))
    assert main(["predict", str(res.run_dir), "--x", "0.5"]) == 0
    value = float(capsys.readouterr().out.strip().splitlines()[1].split(",")[1])
    with torch.no_grad():
        assert value == pytest.approx(res.model(torch.tensor([[0.5]])).item(), rel=1e-5)
    hist = json.loads((res.run_dir / "history.json").read_text())
    assert [h["epoch"] for h in hist][-1] == 25


def test_default_options_are_checked(tmp_path, fast_cfg, capsys):
    # the library names its parameter (a notebook has no flags); the CLI names its flag
    with pytest.raises(UserError, match="^members must be >= 1, got 0$"):
        run_regression(replace(fast_cfg, search="deep-ensemble", members=0), out=tmp_path / "x")
    rc = main(["regression", "--train", fast_cfg.train, "--test", fast_cfg.test,
               "--adam-lr", "-1", "--out", str(tmp_path / "y")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--adam-lr must be > 0" in err[0]
    assert not (tmp_path / "y").exists()
    rc = main(["regression", "--train", fast_cfg.train, "--test", fast_cfg.test,
               "--band-scale", "0", "--out", str(tmp_path / "z")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--band-scale must be 0.1 to 10, got 0.0" in err[0]
    assert not (tmp_path / "z").exists()


def test_bayesian_last_layer_is_the_members_output_and_its_variance_the_band():
    # Against scikit-learn's BayesianRidge fitted to each member's last hidden features (the
    # trained hidden layers are the same with either last layer): its posterior mean is the
    # member's output, its predictive variance minus the noise the member's share of the band.
    from sklearn.linear_model import BayesianRidge

    x, y = _data(n=40)
    est = DeepEnsembleRegressor(hidden=(12, 6), n_members=2, epochs=60).fit(x, y)
    e = est.ensemble_
    q = np.linspace(-5, 5, 21)
    qt = torch.tensor(q, dtype=torch.float32).reshape(-1, 1)
    xs = (torch.tensor(x, dtype=torch.float32).reshape(-1, 1) - e.x_mean) / e.x_scale
    ys = (y - float(e.y_mean)) / float(e.y_scale)
    latent = []
    with torch.no_grad():
        for m, f in zip(e.members, e.member_features(qt)):
            br = BayesianRidge(max_iter=500).fit(m.net[:-1](xs).double().numpy(), ys)
            mu, sd = br.predict(f.double().numpy(), return_std=True)
            np.testing.assert_allclose(
                m((qt - e.x_mean) / e.x_scale).ravel().numpy(), mu, rtol=1e-4, atol=1e-5
            )
            latent.append((sd**2 - 1.0 / br.alpha_) * float(e.y_scale) ** 2)
        spread = est.predict_members(q).var(0)
        want = est.band_scale * np.sqrt(spread + np.mean(latent, 0))  # widened by 1.25
        band = e.band_std(qt).numpy()
    np.testing.assert_allclose(band, want, rtol=2e-3, atol=1e-5)
    assert (band > est.band_scale * np.sqrt(spread) + 1e-6).all()  # the last layer adds its own
    plain = DeepEnsembleRegressor(hidden=(12, 6), n_members=2, epochs=60, last_layer="trained")
    plain.fit(x, y)
    with torch.no_grad():
        np.testing.assert_allclose(
            plain.ensemble_.band_std(qt).numpy(),
            plain.band_scale * plain.predict_members(q).std(0),
            rtol=1e-4,
        )
    # the hidden layers are the same nets either way; only the output layer differs
    for a, b in zip(e.members[0].linear_layers()[:-1], plain.ensemble_.members[0].linear_layers()):
        torch.testing.assert_close(a.weight, b.weight)


def test_member_penalties_spread_in_decades_and_old_runs_keep_one(tmp_path, fast_cfg):
    from glassnet.estimators.regression import member_penalties

    assert member_penalties(1e-3, 2.0, 3) == pytest.approx((1e-4, 1e-3, 1e-2))
    assert member_penalties(3e-4, 0.0, 4) == (3e-4,) * 4
    assert member_penalties(3e-4, 1.5, 1) == (3e-4,)
    cfg = replace(fast_cfg, search="deep-ensemble", members=2, ensemble_epochs=10,
                  penalty=1e-3, penalty_spread=2.0)  # fmt: skip
    metrics = run_regression(cfg, out=tmp_path / "r").metrics
    assert metrics.best_params["penalty"] == pytest.approx([1e-4, 1e-2])
    assert RegressionConfig.from_run(tmp_path / "r").penalty_spread == 2.0
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    del saved["penalty_spread"]  # as a run folder from before the setting: one penalty
    (tmp_path / "r" / "config.json").write_text(json.dumps(saved))
    assert RegressionConfig.from_run(tmp_path / "r").penalty_spread == 0.0


def test_band_scale_widens_the_band_alone_and_saved_runs_keep_it(tmp_path, fast_cfg):
    cfg = replace(fast_cfg, search="deep-ensemble", members=2, ensemble_epochs=20)
    res = run_regression(cfg, out=tmp_path / "r")
    assert res.model.band_scale == RegressionConfig().band_scale == 1.25  # the default
    assert fold_band(res.model, res.data.x_test)["scale"] == 1.25  # fit_band.png's legend
    x = torch.linspace(-4, 4, 33).reshape(-1, 1)
    with torch.no_grad():
        wide, mean = res.model.band_std(x), res.model(x)
        res.model.band_scale = 1.0
        plain = res.model.band_std(x)
        torch.testing.assert_close(res.model(x), mean)  # the prediction does not move
    torch.testing.assert_close(wide, 1.25 * plain)
    # the run's coverage is of the widened band, by hand from the members and the band
    d = res.data
    xt = torch.as_tensor(d.x_test, dtype=torch.float32).reshape(-1, 1)
    with torch.no_grad():
        mu, sd = res.model(xt).ravel().numpy(), 1.25 * res.model.band_std(xt).numpy()
    assert res.metrics.band_coverage == pytest.approx(np.mean(np.abs(d.y_test - mu) <= 2 * sd))
    # saved: the same band; a run folder from before the setting: the band as computed
    loaded = load_regression_model(res.run_dir)
    with torch.no_grad():
        torch.testing.assert_close(loaded.band_std(x), wide)
    saved = json.loads((res.run_dir / "config.json").read_text())
    del saved["band_scale"]
    (res.run_dir / "config.json").write_text(json.dumps(saved))
    with torch.no_grad():
        torch.testing.assert_close(load_regression_model(res.run_dir).band_std(x), plain)
    assert RegressionConfig.from_run(res.run_dir).band_scale == 1.0


def test_keep_members_saves_the_kept_and_old_runs_keep_all(tmp_path, fast_cfg, capsys):
    cfg = replace(fast_cfg, search="deep-ensemble", members=3, ensemble_epochs=20,
                  penalty=1e-3, penalty_spread=2.0, keep_members=1)  # fmt: skip
    res = run_regression(cfg, out=tmp_path / "r")
    m = res.metrics
    ev = np.array(m.member_evidence, dtype=float)
    assert m.ensemble_members == 1 and m.kept_members == [int(np.argmax(ev))]
    from glassnet.cli.summary import regression_summary

    line = "mean of 1 of 3 nets from different seeds (those of highest Laplace evidence: members"
    assert line in regression_summary(m, res.run_dir)
    # members left out because they diverged were not chosen by their evidence
    diverged = replace(m, member_evidence=[ev[0], None, ev[2]], kept_members=[0, 2],
                       ensemble_members=2)  # fmt: skip
    assert "mean of 2 nets from different seeds at" in regression_summary(diverged, res.run_dir)
    loaded = load_regression_model(res.run_dir)
    assert len(loaded.members) == 1
    x = torch.linspace(-4, 4, 9).reshape(-1, 1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), res.model(x))
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert RegressionConfig.from_run(tmp_path / "r").keep_members == 1
    del saved["keep_members"]  # a run folder from before the setting kept every member
    (tmp_path / "r" / "config.json").write_text(json.dumps(saved))
    assert RegressionConfig.from_run(tmp_path / "r").keep_members == 0
    rc = main(["regression", "--train", fast_cfg.train, "--test", fast_cfg.test,
               "--keep-members", "5", "--out", str(tmp_path / "y")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "--keep-members must be 0 to --members (4), got 5" in err[0]
    assert not (tmp_path / "y").exists()
    rc = main(["regression", "--train", fast_cfg.train, "--test", fast_cfg.test,
               "--keep-members", "2", "--penalty", "0", "--out", str(tmp_path / "z")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "needs --penalty > 0" in err[0]


def test_snapshots_are_the_model_a_shorter_fit_would_have_made():
    # The snapshot after e epochs is built like the final model, so it predicts what a fit of
    # e epochs makes (same seeds, same batches), and the last snapshot is the model itself.
    x, y = _data(n=40)
    kw = {"hidden": (12, 6), "n_members": 2, "weight_decay": 1e-3, "random_state": 3}
    long = DeepEnsembleRegressor(**kw, epochs=60, snapshot_every=20).fit(x, y)
    short = DeepEnsembleRegressor(**kw, epochs=40).fit(x, y)
    assert [s.epoch for s in long.snapshots_] == [20, 40, 60]
    q = np.linspace(-4, 4, 17)
    at40, at60 = long.snapshots_[1], long.snapshots_[2]
    qt = torch.tensor(q, dtype=torch.float32).reshape(-1, 1)
    with torch.no_grad():
        torch.testing.assert_close(at40.ensemble(qt), short.ensemble_(qt))
        torch.testing.assert_close(at60.ensemble(qt), long.ensemble_(qt))
    np.testing.assert_allclose(at40.evidence, short.evidence_)
    assert not np.allclose(at40.ensemble(qt).detach(), at60.ensemble(qt).detach())
    assert DeepEnsembleRegressor(**kw, epochs=5).fit(x, y).snapshots_ is None
    with pytest.raises(ValueError, match="snapshot_every"):
        DeepEnsembleRegressor(**kw, snapshot_every=0).fit(x, y)
