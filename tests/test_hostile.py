"""Hostile and unlucky users: secrets never written or printed, nothing written through a
symbolic link or outside --out, a report never overwrites what glassnet did not write."""

import hashlib
import os
from pathlib import Path

import pytest

from glassnet.cli import main


def _tree(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Every file under ``root`` (links not followed) and its SHA-256, ``skip`` left out."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if skip is not None and (p == skip or skip in p.parents):
                continue
            out[str(p)] = "link" if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _regress(small_csvs, out, *extra):
    tr, te = small_csvs
    return ["regression", "--train", str(tr), "--test", str(te), "--hidden", "8", "--search",
            "none", "--epochs", "5", "--quiet", "--out", str(out), *extra]  # fmt: skip


def _one_line_refusal(capsys, code, rc=2, needle=""):
    err = capsys.readouterr().err.strip()
    assert code == rc and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert needle in err, err
    return err


@pytest.mark.slow
def test_database_password_is_never_written_or_printed(postgres_url, small_csvs, tmp_path, capsys):
    secret = "s3cretPW-7f1c"
    url = postgres_url.replace("postgres@", f"postgres:{secret}@")  # trust auth accepts it
    out = tmp_path / "run"
    tr, te = small_csvs
    args = ["regression", "--train", str(tr), "--test", str(te), "--hidden", "8", "--cv", "3",
            "--search", "tpe", "--n-trials", "2", "--trial-batch", "2", "--max-epochs", "20",
            "--storage", url, "--study-name", "secret-test", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr()
    assert main(["report", str(out), "-o", str(tmp_path / "report.html")]) == 0
    printed2 = capsys.readouterr()
    for text in (printed.out, printed.err, printed2.out, printed2.err):
        assert secret not in text
    assert "postgres:***@" in printed.out  # the summary names the storage, masked
    files = [p for p in out.rglob("*") if p.is_file()] + [tmp_path / "report.html"]
    assert len(files) > 5
    for p in files:
        assert secret.encode() not in p.read_bytes(), p
    # a storage that cannot be opened: the error names it, masked
    bad = f"postgresql://alice:{secret}@127.0.0.1:1/none"
    code = main(["regression", "--train", str(tr), "--test", str(te), "--search", "tpe",
                 "--storage", bad, "--quiet", "--out", str(tmp_path / "x")])  # fmt: skip
    err = _one_line_refusal(capsys, code, needle="alice:***@127.0.0.1:1")
    assert secret not in err


def test_out_that_is_a_symbolic_link_is_refused_before_training(small_csvs, tmp_path, capsys):
    target = tmp_path / "elsewhere"
    target.mkdir()
    for name, to in (("to_empty", target), ("dangling", tmp_path / "nothing")):
        link = tmp_path / name
        link.symlink_to(to)
        before = _tree(tmp_path)
        code = main(_regress(small_csvs, link))
        _one_line_refusal(capsys, code, needle="is a symbolic link")
        assert _tree(tmp_path) == before and not any(target.iterdir())
        assert not (tmp_path / "nothing").exists()


def test_planted_partial_link_is_never_followed(small_csvs, tmp_path, capsys):
    # A finished run elsewhere, and a link to it planted where --out's partial folder goes:
    # neither the run nor the resume it recommends may touch the victim.
    victim = tmp_path / "victim"
    assert main(_regress(small_csvs, victim)) == 0
    capsys.readouterr()
    (tmp_path / ".x.partial").symlink_to(victim)
    before = _tree(tmp_path)
    _one_line_refusal(capsys, main(_regress(small_csvs, tmp_path / "x")), needle="symbolic link")
    _one_line_refusal(capsys, main(["resume", str(tmp_path / "x")]), needle="symbolic link")
    assert _tree(tmp_path) == before


def test_resume_refuses_a_partial_beside_a_finished_run(small_csvs, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(_regress(small_csvs, out)) == 0
    capsys.readouterr()
    stale = tmp_path / ".r.partial"
    stale.mkdir()
    (stale / "config.json").write_text((out / "config.json").read_text())
    before = _tree(tmp_path)
    code = main(["resume", str(out)])
    _one_line_refusal(capsys, code, needle="already a finished run")
    assert _tree(tmp_path) == before


def test_report_never_overwrites_what_glassnet_did_not_write(small_csvs, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_regress(small_csvs, run)) == 0
    capsys.readouterr()
    before = _tree(tmp_path)
    for target in (run / "config.json", run, tmp_path / "notes.html"):
        if target.name == "notes.html":
            target.write_text("<html>my notes</html>")
            before = _tree(tmp_path)
        code = main(["report", str(run), "-o", str(target)])
        _one_line_refusal(capsys, code, needle="is not a report glassnet wrote")
        assert _tree(tmp_path) == before
    link = tmp_path / "link.html"
    link.symlink_to(run / "metrics.json")
    before = _tree(tmp_path)
    _one_line_refusal(capsys, main(["report", str(run), "-o", str(link)]), needle="not a report")
    assert _tree(tmp_path) == before and link.is_symlink()
    # a report glassnet wrote is replaced (reports are rebuilt as runs are added)
    mine = tmp_path / "report.html"
    assert main(["report", str(run), "-o", str(mine)]) == 0
    assert main(["report", str(run), str(run), "-o", str(mine)]) == 0
    assert mine.read_text().count('<meta name="generator" content="glassnet">') == 1


def test_class_names_are_drawn_literally():
    # A '$' in a class name starts no formula: the figure is drawn, with the name as written.
    import io

    import numpy as np

    from glassnet.plots.classification import plot_confusion_matrix
    from glassnet.plots.inspect import plot_class_maps

    names = ["$\\frac{$", "b$x$", "c"]
    fig, ax = plot_confusion_matrix(np.eye(3, dtype=int) * 5, names)
    fig.savefig(io.BytesIO(), format="png")
    fig2, axes = plot_class_maps(np.zeros((3, 784)), names, "maps")
    fig2.savefig(io.BytesIO(), format="png")
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert [s.replace("\\$", "$") for s in labels] == names  # drawn as written


@pytest.mark.parametrize("extra", [
    ["--search", "deep-ensemble", "--adam-lr", "1e30", "--ensemble-epochs", "30"],
    ["--search", "none", "--lr", "1e6", "--momentum", "0.99", "--epochs", "30"],
])  # fmt: skip
def test_settings_that_train_nothing_are_one_line_and_exit_1(small_csvs, tmp_path, capsys, extra):
    tr, te = small_csvs
    out = tmp_path / "d"
    code = main(["regression", "--train", str(tr), "--test", str(te), "--hidden", "8",
                 "--quiet", "--out", str(out), *extra])  # fmt: skip
    _one_line_refusal(capsys, code, rc=1, needle="diverged")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.csv", "train.csv"]  # no run


@pytest.mark.parametrize(
    "args, message",
    [
        (["--hidden", "0"], "--hidden must be one or more positive widths"),
        (["--hidden", "100000", "100000"], "the limit is 50,000,000"),
        (["--seed", "-1"], "--seed must be in [0, 4294967295]"),
        (["--search", "tpe", "--n-trials", "0"], "no such study"),
    ],
)
def test_settings_checked_before_work(small_csvs, tmp_path, capsys, args, message):
    tr, te = small_csvs
    code = main(["regression", "--train", str(tr), "--test", str(te), "--quiet", "--out",
                 str(tmp_path / "o"), *args])  # fmt: skip
    _one_line_refusal(capsys, code, needle=message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.csv", "train.csv"]


def test_classify_settings_checked_before_work(tmp_path, capsys):
    for args, message in ((["--hidden", "-5"], "positive widths"),
                          (["--seed", "-1"], "--seed must be in")):  # fmt: skip
        code = main(["classify", "--model", "mlp", "--quiet", "--out", str(tmp_path / "c"),
                     *args])  # fmt: skip
        _one_line_refusal(capsys, code, needle=message)
    assert list(tmp_path.iterdir()) == []


def test_report_of_a_damaged_metrics_json_is_one_line(small_csvs, tmp_path, capsys):
    import json

    run = tmp_path / "run"
    assert main(_regress(small_csvs, run)) == 0
    capsys.readouterr()
    good = json.loads((run / "metrics.json").read_text())
    for key, value in (("test_mse", "0.1"), ("train_mse", None), ("test_accuracy", "97%")):
        bad = {**good, key: value}
        (run / "metrics.json").write_text(json.dumps(bad))
        code = main(["report", str(run), "-o", str(tmp_path / "r.html")])
        _one_line_refusal(capsys, code, needle=f"'{key}' should be a number")
    del good["test_mse"]
    (run / "metrics.json").write_text(json.dumps(good))
    code = main(["report", str(run), "-o", str(tmp_path / "r.html")])
    _one_line_refusal(capsys, code, needle="missing 1 required")
    assert not (tmp_path / "r.html").exists()


def test_out_path_that_is_not_utf8_is_refused_up_front(small_csvs, tmp_path, capsys):
    bad = os.fsdecode(bytes(tmp_path) + b"/bad\xffname")
    code = main(_regress(small_csvs, Path(bad)))
    _one_line_refusal(capsys, code, needle="not valid UTF-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.csv", "train.csv"]


# --- storage faults: one line naming the storage, exit 1, and a run that resume finishes -----


def _tpe_args(small_csvs, out, storage, *extra):
    tr, te = small_csvs
    return ["regression", "--train", str(tr), "--test", str(te), "--hidden", "16", "8",
            "--cv", "3", "--search", "tpe", "--trial-batch", "2", "--max-epochs", "60",
            "--pruner", "none", "--storage", storage, "--no-figures", "--quiet", "--json",
            "--out", str(out), *extra]  # fmt: skip


def test_read_only_study_database_is_one_line(small_csvs, tmp_path, capsys):
    # Refused as the study opens (its first write), with the database's own reason, not
    # Optuna's "exceeding max length", and before any training.
    db = tmp_path / "s.db"
    assert main(_tpe_args(small_csvs, tmp_path / "a", f"sqlite:///{db}", "--n-trials", "2")) == 0
    capsys.readouterr()
    read_only = f"sqlite:///file:{db}?mode=ro&uri=true"  # every write fails
    code = main(_tpe_args(small_csvs, tmp_path / "b", read_only, "--n-trials", "2"))
    err = _one_line_refusal(capsys, code, needle="cannot open the study")
    assert "readonly" in err and "exceeding max length" not in err
    assert not (tmp_path / "b").exists() and not (tmp_path / ".b.partial").exists()


@pytest.mark.slow
def test_postgres_stopped_mid_run_then_resumed_runs_exactly_the_missing_trials(
    small_csvs, tmp_path
):
    import json
    import signal
    import subprocess
    import sys
    import time

    import optuna

    from glassnet.search.storage import storage_from_url
    from tests.conftest import PostgresServer

    server = PostgresServer()
    try:
        url, out = server.url, tmp_path / "run"
        args = _tpe_args(small_csvs, out, url, "--n-trials", "8", "--study-name", "faulty")
        args[args.index("--max-epochs") + 1] = "1000"  # long enough to stop the server mid-run
        args[args.index("--hidden") + 1 : args.index("--hidden") + 3] = ["128", "64"]
        worker = subprocess.Popen([sys.executable, "-m", "glassnet", *args],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and worker.poll() is None:
            try:
                storage = storage_from_url(url)  # psycopg2, as glassnet connects
                trials = optuna.load_study(study_name="faulty", storage=storage).trials
            except Exception:  # noqa: BLE001 - the study may not exist yet
                trials = []
            if sum(t.state.is_finished() for t in trials) >= 1:
                break
            time.sleep(0.2)
        # Frozen while the server stops, so a worker that runs ahead of a starved test process
        # cannot finish its trials first; it meets the stopped server when it wakes.
        worker.send_signal(signal.SIGSTOP)
        assert worker.poll() is None, "the worker finished before its server could be stopped"
        server.stop("fast")  # the server goes away mid-run
        worker.send_signal(signal.SIGCONT)
        _, err = worker.communicate(timeout=120)
        lines = err.strip().splitlines()
        assert worker.returncode == 1 and len(lines) == 1, err
        assert "the study's database failed" in lines[0] and "postgres@127.0.0.1" in lines[0]
        assert (tmp_path / ".run.partial" / "config.json").exists()
        server.start()
        time.sleep(6)  # a trial asked but not yet tagged when the server went counts as stale
        done = subprocess.run([sys.executable, "-m", "glassnet", "resume", str(out), "--quiet",
                               "--json"], capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
        study = optuna.load_study(study_name="faulty", storage=storage_from_url(url))
        states = [t.state.name for t in study.trials]
        assert "RUNNING" not in states
        assert sum(s in ("COMPLETE", "PRUNED") for s in states) == 8  # exactly those asked for
        resumed = json.loads(done.stdout)["metrics"]
        assert resumed["n_candidates"] == 8
        # the trials the stop left RUNNING were failed and asked again, once, with the
        # parameters they had (a stop between two suggestions leaves some written: the retry
        # keeps those and samples the rest). The sampler's new proposals then differ from an
        # uninterrupted run's, so its digits are not compared.
        for dead in (t for t in study.trials if t.state.name == "FAIL"):
            again = [t for t in study.trials if t.system_attrs.get("failed_trial") == dead.number]
            assert len(again) == 1
            assert dead.params.items() <= again[0].params.items()
            assert set(again[0].params) == {"lr", "optimizer__momentum", "optimizer__weight_decay"}
    finally:
        server.close()


def test_study_database_filling_up_mid_run_is_resumable(small_csvs, tmp_path, capsys,
                                                         monkeypatch):  # fmt: skip
    # The disk fills once the study has trials: SQLite's own error, raised where Optuna writes
    # a trial's attributes (the fourth write on), as sqlite3 raises it through SQLAlchemy.
    import json
    import sqlite3

    import optuna
    import sqlalchemy

    out = tmp_path / "run"
    args = _tpe_args(small_csvs, out, f"sqlite:///{tmp_path / 's.db'}", "--n-trials", "8")
    real, calls = optuna.storages.RDBStorage.set_trial_user_attr, []

    def full_disk(self, *a, **k):
        calls.append(1)
        if len(calls) > 3:
            full = sqlite3.OperationalError("database or disk is full")
            raise sqlalchemy.exc.OperationalError("INSERT INTO trial_user_attributes", {}, full)
        return real(self, *a, **k)

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_user_attr", full_disk)
    err = _one_line_refusal(capsys, main(args), rc=1, needle="database or disk is full")
    assert "glassnet resume" in err and (tmp_path / ".run.partial" / "config.json").exists()
    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_user_attr", real)
    assert main(["resume", str(out), "--quiet"]) == 0  # room again: it finishes
    assert json.loads((out / "metrics.json").read_text())["n_candidates"] == 8
