"""Nothing lost: checkpoints, `glassnet resume` after real kills, Ctrl-C, a full disk, locks."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from glassnet.checkpoints import Checkpointer, resume_fit
from glassnet.cli import main
from glassnet.errors import TrainingInterrupted, UserError
from glassnet.estimators import ClassificationConfig
from glassnet.estimators.classification import make_classifier
from glassnet.experiments.classification import run_classification
from glassnet.runs import RunWriter, partial_dir

from .test_data_images import make_idx_folder

# What a resumed run must repeat exactly (timings aside).
SAME = ("test_accuracy", "val_accuracy", "best_epoch", "epochs_run", "confusion_matrix")


def _through_disk(state, folder):
    """A checkpoint as a run folder writes it and reads it back (``weights_only=True``)."""
    with RunWriter(folder) as run:
        run.checkpoint(state)
        return run.load_checkpoint()


@pytest.mark.parametrize("model, augment", [("mlp", 0), ("lenet5", 2)])
def test_resume_from_any_epoch_equals_uninterrupted(model, augment, tmp_path):
    """Weights, Adam, the cosine schedule, the moving average, the best weights, the history
    and the random generators (shuffling, dropout, augmentation) all come back."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 3, 400)
    X[np.arange(400), 0, y, y] += 3  # (400, 1, 28, 28): one bright pixel tells the class
    valid, train = (X[:100], y[:100]), (X[100:], y[100:])
    cfg = ClassificationConfig(model=model, epochs=4, batch_size=32, device="cpu", augment=augment)
    saved = []
    net = make_classifier(cfg, 3, 300, valid, checkpoint=saved.append).fit(*train)
    full = net.predict_proba(valid[0])
    assert len(saved) == 4
    for k in (0, 2):  # interrupted after epoch 1, after epoch 3
        state = _through_disk(saved[k], tmp_path / str(k))
        again = resume_fit(make_classifier(cfg, 3, 300, valid), *train, state)
        np.testing.assert_array_equal(again.predict_proba(valid[0]), full)
        assert again.history[:, "valid_loss"] == net.history[:, "valid_loss"]


def test_checkpointer_has_empty_default_hooks():
    cb = Checkpointer()
    assert cb.save is None and cb.resume_from is None
    cb.on_train_begin(None)  # neither restores nor saves anything
    cb.on_epoch_end(None)


# --- real processes ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return make_idx_folder(tmp_path_factory.mktemp("d") / "bars", n_train=3000, n_test=300)


def _args(data, out, *extra):
    return [
        "classify", "--data-dir", str(data), "--hidden", "64", "--epochs", "12",
        "--batch-size", "32", "--no-figures", "--quiet", "--json", "--out", str(out), *extra,
    ]  # fmt: skip


def _glassnet(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "glassnet", *args], capture_output=True, text=True, **kw
    )


def _start(args):
    return subprocess.Popen(
        [sys.executable, "-m", "glassnet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job ignores Ctrl-C, and its children inherit that: restore the
        # default so the run hears the SIGINT this test sends (`make test &` would fail else).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_epochs(out, n, proc, limit=120.0):
    """Wait until the run's checkpoint records ``n`` finished epochs (the run is mid-epoch)."""
    ckpt = partial_dir(out) / "checkpoint.pt"
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        assert proc.poll() is None, proc.communicate()
        if ckpt.exists():
            try:
                done = len(torch.load(ckpt, weights_only=True)["net"]["history"])
            except (RuntimeError, EOFError, KeyError):
                done = 0
            if done >= n:
                return done
        time.sleep(0.05)
    raise AssertionError("the run never reached its checkpoint")


@pytest.fixture(scope="module")
def uninterrupted(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("u") / "run"
    assert main(_args(digits, out)) == 0  # in this process: the killed runs are the real ones
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
# SIGTERM is turned into Ctrl-C's interrupt by the same handler, so it covers SIGINT too
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_the_same_digits(digits, uninterrupted, tmp_path, sig):
    out = tmp_path / "run"
    proc = _start(_args(digits, out))
    _wait_for_epochs(out, 4, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (-9 if sig == signal.SIGKILL else 128 + sig)
    if sig != signal.SIGKILL:  # told once, in one line, how to go on
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert f"glassnet resume {out}" in err
    assert not out.exists()  # nothing looks finished
    assert not (partial_dir(out) / "metrics.json").exists()
    assert (partial_dir(out) / "checkpoint.pt").exists()

    r = _glassnet("resume", str(out), "--quiet", "--json")
    assert r.returncode == 0, r.stderr
    resumed = json.loads(r.stdout)["metrics"]
    for key in SAME:
        assert resumed[key] == uninterrupted[key], key
    assert not partial_dir(out).exists() and not (out / "checkpoint.pt").exists()
    assert _glassnet("resume", str(out)).returncode == 2  # finished: nothing to resume


@pytest.mark.slow
def test_two_runs_with_one_out(digits, tmp_path):
    """One wins; the other is told in one line, and nothing of it lands in the folder."""
    out = tmp_path / "run"
    a, b = _start(_args(digits, out, "--epochs", "2")), _start(_args(digits, out, "--epochs", "2"))
    (out_a, err_a), (out_b, err_b) = a.communicate(timeout=120), b.communicate(timeout=120)
    assert sorted([a.returncode, b.returncode]) == [0, 2], (err_a, err_b)
    loser_err = err_a if a.returncode == 2 else err_b
    assert len(loser_err.strip().splitlines()) == 1 and str(out) in loser_err
    winner = json.loads(out_a if a.returncode == 0 else out_b)
    assert json.loads((out / "metrics.json").read_text()) == winner["metrics"]
    assert not partial_dir(out).exists()


def test_a_running_run_cannot_be_resumed_or_joined(tmp_path):
    out = tmp_path / "run"
    with RunWriter(out) as run:
        run.json("config.json", {"kind": "classification"})
        with pytest.raises(UserError, match=f"pid {os.getpid()}"):
            RunWriter(out, resume=True)
        with pytest.raises(UserError, match="glassnet resume"):
            RunWriter(out)
    assert (out / "config.json").exists() and not (out / ".lock").exists()


def test_stale_partial_without_config_is_cleared(tmp_path):
    out = tmp_path / "run"
    partial_dir(out).mkdir()  # a run killed before it recorded its settings
    (partial_dir(out) / "environment.json").write_text("{}")
    with RunWriter(out) as run:
        run.json("config.json", {"kind": "regression"})
    assert out.is_dir() and not partial_dir(out).exists()


def _tiny(data, **kw):
    base = dict(data_dir=str(data), epochs=5, hidden=(16,), batch_size=32, device="cpu")
    return ClassificationConfig(**{**base, **kw})


def test_full_disk_mid_run_is_one_line_and_resumable(tmp_path, capsys, monkeypatch):
    """The third checkpoint meets a full disk: one line, exit 1, the run kept at epoch 2."""
    data = make_idx_folder(tmp_path / "bars", n_train=200, n_test=50, n_classes=5)
    args = ["--data-dir", str(data), "--epochs", "5", "--hidden", "16", "--batch-size", "32"]
    ref = run_classification(_tiny(data), out=tmp_path / "ref").metrics
    real_fsync, calls = os.fsync, []

    def full_disk(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".checkpoint.pt.tmp"):
            calls.append(fd)
            if len(calls) == 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    if not os.path.exists("/proc/self/fd"):
        pytest.skip("needs /proc to tell which file is being written")
    monkeypatch.setattr(os, "fsync", full_disk)
    out = tmp_path / "run"
    assert main(["classify", *args, "--quiet", "--device", "cpu", "--out", str(out)]) == 1
    monkeypatch.setattr(os, "fsync", real_fsync)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err
    assert "checkpoint.pt" in err and f"glassnet resume {out}" in err
    state = torch.load(partial_dir(out) / "checkpoint.pt", weights_only=True)
    assert len(state["net"]["history"]) == 2  # the last checkpoint that was written whole
    assert not list(partial_dir(out).glob(".*.tmp"))
    assert main(["resume", str(out), "--quiet"]) == 0
    done = json.loads((out / "metrics.json").read_text())
    assert [done[k] for k in SAME] == [ref.to_json()[k] for k in SAME]


def test_grid_resumes_per_pair(tmp_path, monkeypatch):
    """Interrupted in the second pair: the first is not trained again, the result is the same."""
    import glassnet.checkpoints as ckpt
    import glassnet.training as training

    data = make_idx_folder(tmp_path / "bars", n_train=200, n_test=50, n_classes=5)
    cfg = _tiny(data, search="grid", grid_lr=(1e-3, 1e-2), grid_dropout=(0.0,), grid_epochs=(2, 4))
    ref = run_classification(cfg, out=tmp_path / "ref")
    epochs = []
    real_end = ckpt.Checkpointer.on_epoch_end

    def interrupt(self, net, **kw):
        real_end(self, net, **kw)
        epochs.append(len(net.history))
        if len(epochs) == 6:  # pair 1 done (4 epochs), pair 2 at epoch 2
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.Checkpointer, "on_epoch_end", interrupt)
    with pytest.raises(TrainingInterrupted):
        run_classification(cfg, out=tmp_path / "g")
    monkeypatch.setattr(ckpt.Checkpointer, "on_epoch_end", real_end)
    fits = []
    real_fit = training.GlassClassifier.fit
    monkeypatch.setattr(
        training.GlassClassifier,
        "fit",
        lambda self, *a, **k: fits.append(k) or real_fit(self, *a, **k),
    )
    res = run_classification(cfg, out=tmp_path / "g", resume=True)
    assert fits == [{"epochs": 2}]  # only the rest of pair 2
    got, want = res.metrics.to_json(), ref.metrics.to_json()
    assert [got[k] for k in SAME] == [want[k] for k in SAME]
    assert res.metrics.best_params == ref.metrics.best_params
    a = (tmp_path / "ref" / "grid_results.csv").read_text()
    assert (tmp_path / "g" / "grid_results.csv").read_text() == a


def test_resume_refuses_changed_data_and_keeps_the_run(tmp_path, capsys):
    data = make_idx_folder(tmp_path / "bars", n_train=200, n_test=50, n_classes=5)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        with RunWriter(out) as run:
            run.json("config.json", {**_saved(data), "input_mean": 0.5})
            raise KeyboardInterrupt
    assert main(["resume", str(out), "--quiet"]) == 2
    assert "data differs" in capsys.readouterr().err
    assert (partial_dir(out) / "config.json").exists()  # a failed resume destroys nothing


def _saved(data):
    from dataclasses import asdict

    cfg = _tiny(data)
    return {**asdict(cfg), "kind": "classification", "classes": [str(i) for i in range(5)],
            "n_classes": 5, "input_std": 0.3}  # fmt: skip


def test_resume_without_a_run_is_one_line(tmp_path, capsys):
    assert main(["resume", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no interrupted run" in err


# --- run folders validated before use -----------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished classification run and one image to predict."""
    from PIL import Image

    root = tmp_path_factory.mktemp("f")
    data = make_idx_folder(root / "bars", n_train=100, n_test=20, n_classes=5)
    run_classification(_tiny(data, epochs=1), out=root / "run")
    Image.fromarray(np.full((28, 28), 255, dtype=np.uint8)).save(root / "x.png")
    return root / "run", root / "x.png"


class _Payload:
    """Unpickling this runs a shell command: what a hostile weights file would carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda run: (run / "config.json").unlink(), "no config.json"),
        (lambda run: (run / "config.json").write_text('{"kind": "classif'), "unreadable"),
        (lambda run: (run / "config.json").write_text("[1, 2]"), "not a glassnet run"),
        (lambda run: _drop(run, "n_classes"), "no 'n_classes'"),
        (lambda run: _drop(run, "model", "lenet7"), "model"),
        (lambda run: (run / "weights.pt").unlink(), "weights file not found"),
        (lambda run: (run / "weights.pt").write_bytes(b"PK\x03\x04 junk"), "cannot load weights"),
        (lambda run: _truncate(run / "weights.pt"), "cannot load weights"),
        (lambda run: torch.save({"w": torch.zeros(3)}, run / "weights.pt"), "do not match"),
    ],
)
def test_damaged_run_folder_is_one_line(finished, tmp_path, capsys, damage, message):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished[0], run)
    damage(run)
    assert main(["predict", str(run), str(finished[1])]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def _drop(run, key, value=None):
    cfg = json.loads((run / "config.json").read_text())
    if value is None:
        del cfg[key]
    else:
        cfg[key] = value
    (run / "config.json").write_text(json.dumps(cfg))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])


def test_weights_carrying_code_are_refused_and_nothing_runs(finished, tmp_path, capsys):
    import shutil

    run, marker = tmp_path / "run", tmp_path / "PWNED"
    shutil.copytree(finished[0], run)
    state = torch.load(run / "weights.pt", weights_only=True)
    torch.save({**state, "extra": _Payload(marker)}, run / "weights.pt")
    assert main(["predict", str(run), str(finished[1])]) == 2
    err = capsys.readouterr().err.strip()
    assert "refused" in err and len(err.splitlines()) == 1
    assert not marker.exists()  # the payload never ran
    torch.load(run / "weights.pt", weights_only=False)  # what an unguarded load would do
    assert marker.exists()


def test_json_summary_is_one_object_on_stdout(tmp_path, capsys):
    data = make_idx_folder(tmp_path / "bars", n_train=100, n_test=20, n_classes=5)
    out = tmp_path / "run"
    args = ["classify", "--data-dir", str(data), "--epochs", "1", "--hidden", "16", "--json"]
    assert main([*args, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # the whole of stdout is one JSON object
    assert summary["run_dir"] == str(out)
    assert summary["metrics"] == json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("edit", [{"hidden": [32]}, {"kind": "regression"}, {"epochs": 9},
                                  {"max_train": 100}])  # fmt: skip
def test_resume_refuses_an_edited_config(tmp_path, capsys, monkeypatch, edit):
    """config.json changed in the partial folder after the run started: resume refuses in one
    line before any work, and the interrupted run is left as it was."""
    import hashlib

    import glassnet.checkpoints as ckpt

    data = make_idx_folder(tmp_path / "bars", n_train=200, n_test=50, n_classes=5)
    real_end = ckpt.Checkpointer.on_epoch_end

    def interrupt(self, net, **kw):
        real_end(self, net, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.Checkpointer, "on_epoch_end", interrupt)
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        run_classification(_tiny(data), out=out)
    monkeypatch.setattr(ckpt.Checkpointer, "on_epoch_end", real_end)
    config = partial_dir(out) / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), **edit}))

    def snapshot():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in partial_dir(out).iterdir() if p.is_file()}  # fmt: skip

    before = snapshot()
    assert main(["resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "changed since the run started" in err
    assert snapshot() == before and not out.exists()
