"""Workers that die: heartbeats, stale trials asked again once, and a study finished after a
worker is killed with SIGKILL mid-trial on a real PostgreSQL server."""

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from glassnet.search.storage import ask, fail_stale, heartbeats, storage_from_url
from glassnet.search.studies import RUN_TAG

SPACE = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}


def _study(tmp_path, name="s"):
    storage = storage_from_url(f"sqlite:///{tmp_path / 'hb.db'}", heartbeat=1, grace=2)
    return optuna.create_study(storage=storage, study_name=name, load_if_exists=True)


def test_a_silent_trial_is_failed_and_its_parameters_asked_again_once(tmp_path):
    study = _study(tmp_path)
    dead = ask(study, SPACE)
    with heartbeats(study, [dead]):
        pass  # one beat, then its worker "dies"
    time.sleep(3.2)  # past the grace period
    fail_stale(study)
    assert study.trials[dead.number].state.name == "FAIL"
    again = ask(study, SPACE)  # whoever asks next takes the dead trial's parameters
    assert again.number != dead.number and again.params == dead.params
    with heartbeats(study, [again]):
        pass  # dies again: a trial that kills its worker twice stays failed
    time.sleep(3.2)
    fail_stale(study)
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]
    assert ask(study, SPACE).params != dead.params  # a fresh proposal, not a third try


def test_a_trial_that_beats_is_not_failed_however_long_it_trains(tmp_path):
    study = _study(tmp_path)
    live = ask(study, SPACE)
    other = _study(tmp_path)  # another worker, looking for stale trials meanwhile
    with heartbeats(study, [live]):
        for _ in range(4):
            time.sleep(1.0)  # 4 s in all: twice the grace period
            fail_stale(other)
        assert study.trials[0].state.name == "RUNNING"
    study.tell(live, 1.0)
    assert [t.state.name for t in study.trials] == ["COMPLETE"]


def test_a_journal_file_must_be_a_plain_file(tmp_path):
    from glassnet.errors import UserError

    (tmp_path / "real.log").write_text("")
    os.symlink(tmp_path / "real.log", tmp_path / "link.log")
    with pytest.raises(UserError, match="not a plain file"):
        storage_from_url(str(tmp_path / "link.log"))
    with pytest.raises(UserError, match="not a database URL or journal file"):
        storage_from_url(str(tmp_path / "study.db"))


def _worker(small_csvs, out, url):
    tr, te = small_csvs
    args = ["regression", "--train", str(tr), "--test", str(te), "--hidden", "64", "32",
            "--cv", "3", "--search", "tpe", "--trial-batch", "2", "--max-epochs", "400",
            "--pruner", "none", "--n-trials", "4", "--storage", url, "--study-name", "lost",
            "--no-figures", "--quiet", "--json", "--out", str(out)]  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "glassnet", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _running_of(url, tag):
    try:
        study = optuna.load_study(study_name="lost", storage=storage_from_url(url))
    except Exception:  # noqa: BLE001 - not created yet
        return []
    mine = [t for t in study.trials if t.user_attrs.get(RUN_TAG) == tag]
    return [t for t in mine if t.state.name == "RUNNING"]


@pytest.mark.slow
def test_a_worker_killed_mid_trial_loses_no_trial(postgres_url, small_csvs, tmp_path):
    """Two workers share a study; one is SIGKILLed mid-trial. The other finishes its share,
    and a worker started afterwards (the dead one's run, resumed) finishes the study: every
    trial asked for is finished once, the dead worker's trials are asked again with their
    parameters, and none is left RUNNING."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = postgres_url.rsplit("/", 1)[0] + "/lostworker"
    import psycopg2

    con = psycopg2.connect(postgres_url.replace("postgresql://", "postgres://"))
    con.autocommit = True
    con.cursor().execute("CREATE DATABASE lostworker")
    con.close()
    a, b = _worker(small_csvs, tmp_path / "a", url), _worker(small_csvs, tmp_path / "b", url)
    deadline, killed = time.monotonic() + 120, []
    while time.monotonic() < deadline and not killed:
        assert a.poll() is None, a.communicate()
        tag_file = tmp_path / ".a.partial" / ".run-id"
        if tag_file.exists() and _running_of(url, tag_file.read_text().strip()):
            # frozen before its RUNNING trials are read: otherwise one could end between the
            # read and the kill (trials that stall now end early) and be counted as lost
            a.send_signal(signal.SIGSTOP)
            killed = _running_of(url, tag_file.read_text().strip())
            a.send_signal(signal.SIGKILL if killed else signal.SIGCONT)  # no handler runs
        time.sleep(0.1)
    a.wait(timeout=30)
    assert killed and a.returncode == -signal.SIGKILL
    _, err = b.communicate(timeout=300)
    assert b.returncode == 0, err
    later = subprocess.run([sys.executable, "-m", "glassnet", "resume", str(tmp_path / "a"),
                            "--quiet", "--json"], capture_output=True, text=True)  # fmt: skip
    assert later.returncode == 0, later.stderr
    study = optuna.load_study(study_name="lost", storage=storage_from_url(url))
    states = [t.state.name for t in study.trials]
    assert "RUNNING" not in states
    assert sum(s in ("COMPLETE", "PRUNED") for s in states) == 8  # 4 + 4 asked for
    for dead in killed:  # failed, and its parameters trained to the end by a later trial
        assert study.trials[dead.number].state.name == "FAIL"
        retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == dead.number]
        assert len(retries) == 1 and retries[0].params == dead.params
        assert retries[0].state.name in ("COMPLETE", "PRUNED")
    assert json.loads(later.stdout)["metrics"]["n_candidates"] == 8
