"""PopulationSearchCV against sequential skorch fits and scikit-learn's own searches."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import KFold, RandomizedSearchCV

from glassnet.estimators import RegressionConfig, make_regressor
from glassnet.search.adapter import NotBatchableError
from glassnet.search.population import PopulationSearchCV


def _data(n=45, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, (n, 1)).astype(np.float32)
    y = (np.sin(X[:, 0]) + 0.1 * rng.normal(size=n)).astype(np.float32)
    return X, y


CFG = RegressionConfig(hidden=(16, 8), batch_size=8, device="cpu", seed=3)
SPACE = {
    "lr": [0.005, 0.02],
    "optimizer__momentum": [0.0, 0.9],
    "max_epochs": [40, 80],
    "optimizer__weight_decay": [0.0, 0.01],
}


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_members_match_sequential_skorch_fits(activation):
    # Mini-batches of 8 from 30 rows (4 batches, last one short), shuffled: every member must
    # follow its own skorch net step for step, from the same initial weights and batches.
    X, y = _data()
    est = make_regressor(replace(CFG, activation=activation))
    folds = KFold(3, shuffle=True, random_state=0)
    search = PopulationSearchCV(
        est,
        SPACE,
        n_iter=3,
        cv=folds,
        random_state=1,
        scoring="neg_mean_squared_error",
        refit=False,
    ).fit(X, y)
    for c, params in enumerate(search.cv_results_["params"]):
        for k, (tr, te) in enumerate(folds.split(X, y)):
            net = clone(est).set_params(**params).fit(X[tr], y[tr])
            mse = float(np.mean((net.predict(X[te]).ravel() - y[te]) ** 2))
            got = -search.cv_results_[f"split{k}_test_score"][c]
            assert got == pytest.approx(mse, rel=2e-3, abs=1e-6), (params, k)


def test_weights_match_after_many_epochs():
    X, y = _data()
    est = make_regressor(replace(CFG, epochs=300, lr=0.01, momentum=0.9, weight_decay=1e-3))
    spec_net = clone(est).fit(X, y)
    from glassnet.search import train_members

    out = train_members(est, {"lr": 0.01}, X, y, [np.arange(len(y))] * 2, _silent())
    for m in (0, 1):  # two identical members: both must equal the skorch net
        for ours, ref in zip(out.modules[m].parameters(), spec_net.module_.parameters()):
            torch.testing.assert_close(ours, ref, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(out.histories[0], spec_net.history[:, "train_loss"], rtol=1e-3)


def _silent():
    from glassnet.progress import Progress

    return Progress()


def test_ranks_and_best_match_randomized_search_cv():
    X, y = _data(n=40, seed=2)
    est = make_regressor(replace(CFG, batch_size=128))
    space = {"lr": [0.002, 0.01, 0.03], "optimizer__momentum": [0.5, 0.9], "max_epochs": [30, 60]}
    folds = KFold(4, shuffle=True, random_state=5)
    ref = RandomizedSearchCV(
        est, space, n_iter=5, cv=folds, random_state=7, scoring="neg_mean_squared_error"
    ).fit(X, y)
    pop = PopulationSearchCV(
        est, space, n_iter=5, cv=folds, random_state=7, scoring="neg_mean_squared_error"
    ).fit(X, y)
    assert pop.cv_results_["params"] == ref.cv_results_["params"]
    np.testing.assert_array_equal(
        pop.cv_results_["rank_test_score"], ref.cv_results_["rank_test_score"]
    )
    np.testing.assert_allclose(
        pop.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"], rtol=2e-3
    )
    assert set(ref.cv_results_) <= set(pop.cv_results_)
    assert pop.best_params_ == ref.best_params_
    # best_estimator_ is a fitted skorch net refit on all the data
    np.testing.assert_allclose(
        pop.best_estimator_.predict(X), ref.best_estimator_.predict(X), rtol=2e-3, atol=2e-4
    )
    assert len(pop.best_estimator_.history) == pop.best_params_["max_epochs"]


def test_diverging_members_score_nan_and_rank_last():
    X, y = _data(n=30)
    est = make_regressor(replace(CFG, batch_size=128))
    grid = {"lr": [0.01, 80.0], "optimizer__momentum": [0.9], "max_epochs": [50]}
    pop = PopulationSearchCV(est, grid, n_iter=None, cv=3).fit(X, y)
    bad = [i for i, p in enumerate(pop.cv_results_["params"]) if p["lr"] == 80.0][0]
    assert np.isnan(pop.cv_results_["mean_test_score"][bad])
    assert pop.cv_results_["rank_test_score"][bad] == 2
    assert pop.diverged_[bad].all() and (pop.member_epochs_[bad] < 50).all()
    assert pop.best_params_["lr"] == 0.01


def test_dropout_per_member_changes_training():
    X, y = _data()
    est = make_regressor(replace(CFG, batch_size=128))
    pop = PopulationSearchCV(
        est,
        {"module__dropout": [0.0, 0.5], "max_epochs": [40]},
        n_iter=None,
        cv=2,
        scoring="neg_mean_squared_error",
    ).fit(X, y)
    scores = pop.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all()
    # Same initial weights and batches: only the dropout differs, and it changes the result.
    assert [p["module__dropout"] for p in pop.cv_results_["params"]] == [0.0, 0.5]
    assert abs(scores[0] - scores[1]) > 1e-4
    # Without dropout a member is exactly its skorch net (dropout 0 draws no masks).
    folds = list(KFold(2).split(X))
    tr, te = folds[0]
    net = clone(est).set_params(module__dropout=0.0, max_epochs=40).fit(X[tr], y[tr])
    mse = float(np.mean((net.predict(X[te]).ravel() - y[te]) ** 2))
    assert -pop.cv_results_["split0_test_score"][0] == pytest.approx(mse, rel=2e-3)


@pytest.mark.parametrize(
    "change, part",
    [
        ({"optimizer": torch.optim.Adam}, "optimizer Adam"),
        ({"criterion": torch.nn.L1Loss}, "criterion L1Loss"),
        ({"module": torch.nn.Linear}, "module Linear"),
        ({"optimizer__nesterov": True}, "optimizer__nesterov"),
    ],
)
def test_refuses_what_it_cannot_batch(change, part):
    est = make_regressor(CFG).set_params(**change)
    with pytest.raises(NotBatchableError, match=part):
        PopulationSearchCV(est, {"lr": [0.1]}, n_iter=None, cv=2).fit(*_data())


def test_refuses_unbatchable_search_parameter():
    with pytest.raises(NotBatchableError, match="batch_size"):
        PopulationSearchCV(make_regressor(CFG), {"batch_size": [8, 16]}, n_iter=None, cv=2).fit(
            *_data()
        )


def test_error_score_raise_raises_the_training_error():
    from glassnet.errors import DivergedError

    X, y = _data()
    est = make_regressor(replace(CFG, batch_size=128))
    space = {"lr": [50.0], "optimizer__momentum": [0.9], "max_epochs": [20]}
    with pytest.raises(DivergedError, match="training loss"):
        PopulationSearchCV(est, space, n_iter=None, cv=2, error_score="raise").fit(X, y)
    # with the default, the same member scores NaN instead
    s = PopulationSearchCV(est, space, n_iter=None, cv=2, refit=False).fit(X, y)
    assert np.isnan(s.cv_results_["mean_test_score"]).all()


def test_every_search_ranks_as_scikit_learn_does():
    # One ranking for population, ensemble and TPE: scikit-learn's own, checked on its own search
    # with a tie (a repeated alpha) and failures (a negative alpha fails; error_score NaN).
    import warnings

    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV

    from glassnet.search.ranking import rank_scores

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=40)
    grid = {"alpha": [10.0, -1.0, 1.0, 1.0, 100.0, -2.0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns about the failed fits
        search = GridSearchCV(Ridge(), grid, cv=3, error_score=np.nan).fit(x, y)
    means = search.cv_results_["mean_test_score"]
    assert np.isnan(means).sum() == 2 and means[2] == means[3]
    np.testing.assert_array_equal(rank_scores(means), search.cv_results_["rank_test_score"])
    assert np.argmin(rank_scores(means)) == search.best_index_
    np.testing.assert_array_equal(rank_scores(np.full(3, np.nan)), [1, 1, 1])
