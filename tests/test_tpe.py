"""TPESearchCV: Optuna trials trained as one population, pruning, storage shared by workers."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import optuna
import pytest

from glassnet.cli import main
from glassnet.estimators import RegressionConfig, make_regressor
from glassnet.search.storage import storage_from_url
from glassnet.search.studies import pruner_acts_at
from glassnet.search.tpe import TPESearchCV

EPOCHS, CHECK = 30, 10


def _data(n=45, seed=0):  # 3 folds of 15: every member's own permutations, as skorch draws
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-3, 3, n)).astype(np.float32)
    return x.reshape(-1, 1), (np.sin(x) + 0.1 * rng.normal(size=n)).astype(np.float32)


def _cfg(**kw):
    base = dict(hidden=(16, 8), cv=3, batch_size=16, seed=0, device="cpu")
    return RegressionConfig(**{**base, **kw})


def _search(**kw):
    cfg = _cfg()
    base = dict(n_trials=4, batch=4, max_epochs=EPOCHS, check_every=CHECK, min_epochs=CHECK,
                cv=cfg.shuffled_folds(), random_state=0, refit=False)  # fmt: skip
    return TPESearchCV(make_regressor(cfg), **{**base, **kw})


PARAMS = [
    {"lr": 0.02, "optimizer__momentum": 0.9, "optimizer__weight_decay": 1e-4},
    {"lr": 0.005, "optimizer__momentum": 0.5, "optimizer__weight_decay": 1e-3},
    {"lr": 0.05, "optimizer__momentum": 0.0, "optimizer__weight_decay": 1e-5},
    {"lr": 0.001, "optimizer__momentum": 0.8, "optimizer__weight_decay": 1e-2},
]


def _enqueued(tmp_path, name, params):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=url, study_name=name, direction="minimize")
    for p in params:
        study.enqueue_trial(p)
    return url


def test_batched_trials_score_as_trained_one_by_one(tmp_path):
    """Four trials in one population report the same fold scores as each trained alone, and
    as skorch training the net on each fold (the PyTorch reference)."""
    X, y = _data()
    url = _enqueued(tmp_path, "batched", PARAMS)
    # window=1: each check's own read, comparable with skorch's fit to that epoch
    together = _search(storage=url, study_name="batched", pruner="none", window=1).fit(X, y)
    got = {t.number: t.intermediate_values for t in together.study_.trials}
    for i, p in enumerate(PARAMS):
        alone = _search(storage=url, study_name=f"alone{i}", pruner="none", n_trials=1, batch=1,
                        window=1)  # fmt: skip
        optuna.create_study(storage=url, study_name=f"alone{i}").enqueue_trial(p)
        alone.fit(X, y)
        ref = alone.study_.trials[0].intermediate_values
        assert sorted(ref) == [10, 20, 30]
        for step, v in ref.items():
            assert got[i][step] == pytest.approx(v, rel=1e-4)
    # skorch, fold by fold, for the first trial's first check (10 epochs)
    folds = list(_cfg().shuffled_folds().split(X))
    mses = []
    for tr, va in folds:
        net = make_regressor(_cfg(epochs=CHECK)).set_params(**PARAMS[0])
        net.fit(X[tr], y[tr])
        mses.append(float(np.mean((net.predict(X[va]).ravel() - y[va]) ** 2)))
    assert got[0][CHECK] == pytest.approx(np.mean(mses), rel=1e-4)


class _Trial:
    """What the round asks of an Optuna trial: report, and should_prune (never prune; ``judged``
    records the order in which it is asked)."""

    def __init__(self, number, judged):
        self.number, self.judged, self.reports = number, judged, []

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        self.judged.append(self.number)
        return False


def _round(reads, window=3, patience=0):
    """Feed a trial round hand-made reads: ``reads[c]`` is trial c's mean fold MSE at each
    check (every 10 epochs, one fold member each); returns the round, its trials and the order
    in which the pruner judged them, and the epoch each trial ended at."""
    from types import SimpleNamespace

    from glassnet.search.tpe import _TrialRound

    judged = []
    search = SimpleNamespace(window=window, patience=patience, min_epochs=30, max_epochs=1000,
                             check_every=10, pruner="halving", _improved=lambda *a: None,
                             member_epochs_=0)  # fmt: skip
    trials = [_Trial(c, judged) for c in range(len(reads))]
    policy = _TrialRound(search, trials, 1, progress=None, t0=0.0)
    ended_at: dict[int, int] = {}
    for i in range(len(reads[0])):
        epoch = 10 * (i + 1)
        live = [c for c in range(len(reads)) if c not in ended_at]
        policy.ended = {}  # as the loop's on_epoch starts every epoch
        policy.on_check(SimpleNamespace(ids=live), epoch, [reads[c][i] for c in live], set())
        ended_at.update({c: epoch for c in policy.ended})
    return policy, trials, judged, ended_at


def test_a_trials_score_is_the_worst_of_three_checks_read_at_the_middle():
    """A lucky dip at one check does not become the trial's score: the worst of three
    consecutive reads does (hand-computed), at the middle read's epoch."""
    reads = [[0.9, 0.5, 0.1, 0.6, 0.4, 0.45, 0.5]]
    policy, *_ = _round(reads)
    # windows: (0.9,.5,.1)->.9  (.5,.1,.6)->.6  (.1,.6,.4)->.6  (.6,.4,.45)->.6  (.4,.45,.5)->.5
    assert policy.best[0].mse == 0.5 and policy.best[0].epoch == 60
    one, *_ = _round(reads, window=1)
    assert one.best[0].mse == 0.1 and one.best[0].epoch == 30  # the dip, as before


def test_a_stalled_trial_ends_complete_after_patience_checks():
    reads = [[0.5, 0.4, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]]
    _, trials, _, ended_at = _round(reads, window=1, patience=3)
    # best 0.3 at epoch 30; no better read at 40, 50, 60: complete at 60, reporting 0.3
    assert ended_at == {0: 60}
    assert trials[0].reports[-1] == (60, 0.3)
    assert _round(reads, window=1, patience=0)[3] == {}  # 0: trains on to max_epochs


def test_trials_at_a_rung_are_judged_best_first():
    """The pruner compares a trial with those judged at its rung before it; judged in trial
    order, a weak first trial would see no rival and go on to the epoch cap."""
    reads = [[0.9, 0.9, 0.9], [0.2, 0.2, 0.2], [0.5, 0.5, 0.5], [0.1, 0.1, 0.1]]
    _, trials, judged, _ = _round(reads, window=1)
    assert judged == [3, 1, 2, 0]
    assert all(t.reports == [(30, reads[t.number][2])] for t in trials)


def test_the_pruner_is_asked_only_where_it_can_act():
    """Successive halving judges at its rungs (30, 90, 270, ... epochs here): asked between
    them, it reads the whole study to decide nothing. The study still keeps the trial's curve,
    a report every 30 epochs."""
    reads = [[0.5 - 0.001 * i for i in range(30)]]  # improving: never stalls, never pruned
    _, (trial,), judged, _ = _round(reads, window=1)
    assert [step for step, _ in trial.reports] == list(range(30, 301, 30))
    assert len(judged) == 3  # at 30, 90 and 270
    # checks every 20 epochs: the first check on or after each rung; the median pruner
    # compares at every multiple of its minimum (each trial checks at the same epochs)
    def acts(name):
        return [e for e in range(20, 1001, 20) if pruner_acts_at(name, 30, e, e - 20)]

    assert acts("halving") == acts("hyperband") == [40, 100, 280, 820]
    assert acts("median")[:4] == [40, 60, 100, 120] and acts("none") == []


@pytest.mark.parametrize("pruner", ["halving", "hyperband"])
def test_asking_the_pruner_only_at_its_rungs_changes_no_search(pruner, monkeypatch, tmp_path):
    """The same trials, pruned at the same epochs, with the same choice, as when the pruner
    was asked at every report (every min_epochs). One study name for both: hyperband puts a
    trial in a bracket by hashing it with the trial's number."""
    import glassnet.search.tpe as tpe

    X, y = _data()
    kw = dict(n_trials=8, batch=4, max_epochs=90, pruner=pruner, study_name="same")
    shipped = _search(storage=f"sqlite:///{tmp_path / 'a.db'}", **kw).fit(X, y)
    monkeypatch.setattr(tpe, "pruner_acts_at", lambda name, m, step, last: step % m == 0)
    everywhere = _search(storage=f"sqlite:///{tmp_path / 'b.db'}", **kw).fit(X, y)

    def trials(s):
        return [(t.params, t.state, t.user_attrs["epochs_trained"]) for t in s.study_.trials]

    assert trials(shipped) == trials(everywhere) and shipped.n_pruned_ > 0
    assert shipped.best_params_ == everywhere.best_params_


def test_pruned_trials_leave_the_computation():
    """Member-epochs count what was trained: pruned trials stop costing at once."""
    X, y = _data()
    s = _search(n_trials=12, batch=6, pruner="halving").fit(X, y)
    trained = [t.user_attrs["epochs_trained"] for t in s.study_.trials]
    assert s.n_pruned_ > 0 and min(trained) < EPOCHS
    assert s.member_epochs_ == 3 * sum(trained)  # 3 folds per trial
    assert s.member_epochs_ < 12 * 3 * EPOCHS
    states = {t.state.name for t in s.study_.trials}
    assert states <= {"COMPLETE", "PRUNED"} and len(s.study_.trials) == 12


def test_same_seed_same_trials():
    X, y = _data()
    a = _search(n_trials=8).fit(X, y)
    b = _search(n_trials=8).fit(X, y)
    assert [t.params for t in a.study_.trials] == [t.params for t in b.study_.trials]
    assert [t.value for t in a.study_.trials] == [t.value for t in b.study_.trials]
    assert a.best_params_ == b.best_params_ and a.best_score_ == b.best_score_


# --- storage shared by worker processes -----------------------------------------------------

WORKER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from glassnet.estimators import RegressionConfig, make_regressor
    from glassnet.search.tpe import TPESearchCV
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(-3, 3, 45)).astype(np.float32)
    y = (np.sin(x) + 0.1 * rng.normal(size=45)).astype(np.float32)
    cfg = RegressionConfig(hidden=(16, 8), cv=3, batch_size=16, device="cpu")
    TPESearchCV(make_regressor(cfg), n_trials=4, batch=2, max_epochs=30, min_epochs=10,
                cv=cfg.shuffled_folds(), random_state=int(sys.argv[2]), storage=sys.argv[1],
                study_name="shared", refit=False).fit(x.reshape(-1, 1), y)
    """
)


def _two_workers(url):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(seed)], stderr=subprocess.PIPE, text=True
        )  # fmt: skip
        for seed in (1, 2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    study = optuna.load_study(study_name="shared", storage=storage_from_url(url))
    numbers = sorted(t.number for t in study.trials)
    assert numbers == list(range(8))  # every trial recorded once: none lost, none twice
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}


def test_two_workers_share_one_sqlite_study(tmp_path):
    _two_workers(f"sqlite:///{tmp_path / 'shared.db'}")


def test_two_workers_share_one_postgresql_study(postgres_url):
    _two_workers(postgres_url)


def test_two_workers_share_one_journal_file(tmp_path):
    """Optuna's journal file, its advice for several processes on one machine."""
    _two_workers(str(tmp_path / "shared.log"))
    assert (tmp_path / "shared.log").stat().st_size > 0


# --- the command line -------------------------------------------------------------------------


def _cli(small_csvs, out, *extra):
    tr, te = small_csvs
    return ["regression", "--train", str(tr), "--test", str(te), "--hidden", "16", "8",
            "--cv", "3", "--search", "tpe", "--max-epochs", "40", "--n-trials", "6",
            "--no-figures", "--quiet", "--json", "--out", str(out), *extra]  # fmt: skip


def test_cli_tpe_leaves_a_study_and_refits_it_with_zero_trials(small_csvs, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'mine.db'}"
    assert main(_cli(small_csvs, tmp_path / "a", "--storage", url)) == 0
    first = json.loads(capsys.readouterr().out)["metrics"]
    assert first["search"] == "tpe" and first["n_candidates"] == 6
    assert main(_cli(small_csvs, tmp_path / "b", "--storage", url, "--n-trials", "0")) == 0
    again = json.loads(capsys.readouterr().out)["metrics"]
    assert again["best_params"] == first["best_params"]
    assert again["test_mse"] == pytest.approx(first["test_mse"])
    assert main(_cli(small_csvs, tmp_path / "c")) == 0  # default: a study in the run folder
    capsys.readouterr()
    study = optuna.load_study(study_name="glassnet-regression",
                              storage=storage_from_url(str(tmp_path / "c" / "optuna.log")))
    assert len(study.trials) == 6 and not (tmp_path / "c" / "optuna.db").exists()
    # trial patience is saved, and a run folder from before it reruns without it
    saved = json.loads((tmp_path / "c" / "config.json").read_text())
    assert saved["trial_patience"] == 15
    del saved["trial_patience"]
    (tmp_path / "c" / "config.json").write_text(json.dumps(saved))
    assert RegressionConfig.from_run(tmp_path / "c").trial_patience == 0


@pytest.mark.parametrize(
    "storage, message",
    [
        ("notaurl", "not a database URL"),
        ("sqlite:////nonexistent/folder/x.db", "cannot open"),
        ("postgresql://nobody@127.0.0.1:1/none", "cannot open"),
    ],
)
def test_bad_storage_is_one_line_before_training(small_csvs, tmp_path, capsys, storage, message):
    assert main(_cli(small_csvs, tmp_path / "x", "--storage", storage)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "--storage" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_study_of_another_kind_is_refused(small_csvs, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(storage=url, study_name="up", direction="maximize")
    assert main(_cli(small_csvs, tmp_path / "x", "--storage", url, "--study-name", "up")) == 2
    assert "maximized, not minimized" in capsys.readouterr().err
    study = optuna.create_study(storage=url, study_name="other", direction="minimize")
    study.set_user_attr("glassnet_space", '{"lr": ["float", 0.1, 1.0, true]}')
    assert main(_cli(small_csvs, tmp_path / "y", "--storage", url, "--study-name", "other")) == 2
    assert "another search space" in capsys.readouterr().err


def test_classify_tpe_prunes_by_validation_accuracy(tmp_path, capsys):
    from .test_data_images import make_idx_folder

    data = make_idx_folder(tmp_path / "bars", n_train=200, n_test=50, n_classes=5)
    args = ["classify", "--data-dir", str(data), "--hidden", "16", "--epochs", "4",
            "--search", "tpe", "--n-trials", "6", "--no-figures", "--quiet", "--json"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    m = json.loads(capsys.readouterr().out)["metrics"]
    assert set(m["best_params"]) == {"lr", "dropout", "batch_size", "epochs"}
    study = optuna.load_study(study_name="glassnet-classify-mlp",
                              storage=storage_from_url(str(tmp_path / "a" / "optuna.log")))
    states = [t.state.name for t in study.trials]
    assert len(states) == 6 and "PRUNED" in states and "COMPLETE" in states
    assert max(t.value for t in study.trials if t.value is not None) == pytest.approx(
        m["val_accuracy"]
    )
    trials = (tmp_path / "a" / "trials.csv").read_text().splitlines()
    assert len(trials) == 1 + 6
    # --n-trials 0 trains the study's best trial again, from its parameters
    url = str(tmp_path / "a" / "optuna.log")
    assert main([*args, "--n-trials", "0", "--storage", url, "--out", str(tmp_path / "b")]) == 0
    again = json.loads(capsys.readouterr().out)["metrics"]
    assert again["best_params"] == m["best_params"]
    assert again["val_accuracy"] == pytest.approx(m["val_accuracy"])


@pytest.mark.parametrize("made_before", [False, True])
def test_interrupted_tpe_run_resumes_from_its_study(small_csvs, tmp_path, monkeypatch,
                                                    made_before):  # fmt: skip
    """The study is the record: finished trials are kept, not trained again. A run folder made
    before the journal file holds its study in optuna.db, and resumes from that."""
    import glassnet.search.tpe as tpe
    from glassnet.experiments.regression import run_regression

    tr, te = small_csvs
    cfg = _cfg(train=str(tr), test=str(te), search="tpe", max_epochs=40, n_trials=6,
               trial_batch=3)  # fmt: skip
    real_round, rounds = tpe.TPESearchCV._round, []

    def counted(self, trials, *a, **k):
        rounds.append(len(trials))
        if len(rounds) == 2 and interrupt:
            raise KeyboardInterrupt  # Ctrl-C with the second batch asked, none finished
        return real_round(self, trials, *a, **k)

    monkeypatch.setattr(tpe.TPESearchCV, "_round", counted)
    interrupt = True
    with pytest.raises(KeyboardInterrupt):
        run_regression(cfg, out=tmp_path / "r")
    journal = tmp_path / ".r.partial" / "optuna.log"
    assert journal.exists() and not (tmp_path / ".r.partial" / "optuna.db").exists()
    name, url = "glassnet-regression", str(tmp_path / "r" / "optuna.log")
    if made_before:  # the same study as an older glassnet left it: SQLite, no journal
        optuna.copy_study(from_study_name=name, from_storage=storage_from_url(str(journal)),
                          to_storage=f"sqlite:///{journal.with_name('optuna.db')}")  # fmt: skip
        journal.unlink()
        url = f"sqlite:///{tmp_path / 'r' / 'optuna.db'}"
    interrupt, rounds[:] = False, []
    res = run_regression(cfg, out=tmp_path / "r", resume=True)
    assert rounds == [3]  # only the 3 trials still missing
    assert (tmp_path / "r" / "optuna.log").exists() != made_before  # no second study
    study = optuna.load_study(study_name=name, storage=storage_from_url(url))
    states = [t.state.name for t in study.trials]
    assert states.count("FAIL") == 3  # the interrupted batch, marked so
    assert sum(s in ("COMPLETE", "PRUNED") for s in states) == 6
    assert res.metrics.n_candidates == 6
    assert res.metrics.study["storage"] == ("optuna.db" if made_before else "optuna.log")


def test_every_trial_diverging_is_one_error_and_one_diverging_is_listed():
    from glassnet.errors import NoModelError

    X, y = _data()
    space = {"lr": ("float", 1e4, 1e5, True), "optimizer__momentum": ("float", 0.9, 0.95, False),
             "optimizer__weight_decay": ("float", 1e-5, 1e-4, True)}  # fmt: skip
    with pytest.raises(NoModelError, match="every trial diverged"):
        _search(space=space, n_trials=2, batch=2).fit(X, y)
    mixed = _search(n_trials=1, batch=1).set_params(space={
        "lr": ("categorical", [0.01, 1e5]), "optimizer__momentum": ("float", 0.9, 0.9, False),
        "optimizer__weight_decay": ("float", 1e-4, 1e-4, False),
    })  # fmt: skip
    mixed.set_params(n_trials=4, batch=4).fit(X, y)
    lrs = [p["lr"] for p in mixed.cv_results_["params"]]
    scores = mixed.cv_results_["mean_test_score"]
    assert 1e5 in lrs and 0.01 in lrs  # both drawn in 4 trials (seeded)
    assert all(np.isnan(s) for lr, s in zip(lrs, scores) if lr == 1e5)
    assert mixed.best_params_["lr"] == 0.01
