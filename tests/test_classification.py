"""Classifiers end to end on tiny generated IDX data: learning, grid search, predict, errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from glassnet.cli import main
from glassnet.data.batches import AugmentLoader, InMemoryLoader
from glassnet.data.images import load_idx_folder
from glassnet.errors import UserError
from glassnet.estimators import ClassificationConfig
from glassnet.experiments.classification import run_classification
from glassnet.preprocessing import image_to_mnist, to_inputs
from glassnet.runs.load import load_classifier
from glassnet.training import check_precision

from .test_data_images import make_idx_folder


@pytest.fixture
def bars(tmp_path):
    return make_idx_folder(tmp_path / "bars", n_train=300, n_test=100, n_classes=5)


def test_in_memory_loader_matches_dataloader_batches():
    from skorch.dataset import Dataset

    X = np.arange(10, dtype=np.float32).reshape(10, 1)
    y = np.arange(10)
    batches = list(InMemoryLoader(Dataset(X, y), batch_size=4))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(torch.cat([b[1] for b in batches]).numpy(), y)
    torch.manual_seed(0)
    shuffled = torch.cat([b[1] for b in InMemoryLoader(Dataset(X, y), 4, shuffle=True)])
    assert sorted(shuffled.tolist()) == list(range(10)) and shuffled.tolist() != list(range(10))


def test_shift_augment_loader_shifts_every_image_once():
    from skorch.dataset import Dataset

    rng = np.random.default_rng(0)
    X = rng.random((37, 2, 6, 5), dtype=np.float32) + 1.0  # background (the minimum) below 1
    X[0, 0, 0, 0] = 0.5
    y = np.arange(37)
    torch.manual_seed(0)
    loader = AugmentLoader(Dataset(X, y), batch_size=8, shuffle=True, max_shift=2)
    seen, shifts = [], set()
    for xb, yb in loader:
        assert xb.shape == (len(yb), 2, 6, 5)
        for img, label in zip(xb.numpy(), yb.tolist()):
            # the image is its source moved by some (dy, dx) in [-2, 2], the border filled
            # with the set's minimum
            padded = np.pad(X[label], ((0, 0), (2, 2), (2, 2)), constant_values=0.5)
            hits = [
                (dy, dx)
                for dy in range(5)
                for dx in range(5)
                if np.array_equal(img, padded[:, dy : dy + 6, dx : dx + 5])
            ]
            assert hits, f"image {label} is not a shifted copy of its source"
            shifts.add(hits[0])
            seen.append(label)
    assert sorted(seen) == list(range(37))  # every image once per epoch
    assert len(shifts) > 5  # shifts are drawn per image
    flat = AugmentLoader(Dataset(X.reshape(37, -1), y), batch_size=8, max_shift=2)
    np.testing.assert_array_equal(next(iter(flat))[0].numpy(), X.reshape(37, -1)[:8])


def test_bfloat16_training_learns_and_evaluates_in_float32(tmp_path, bars):
    try:
        check_precision("bfloat16", "cpu")
    except UserError:
        pytest.skip("this CPU has no native bfloat16")
    cfg = ClassificationConfig(
        model="lenet5",
        data_dir=str(bars),
        epochs=4,
        batch_size=32,
        precision="bfloat16",
        device="cpu",
    )
    res = run_classification(cfg, out=tmp_path / "run")
    assert res.metrics.test_accuracy >= 0.9
    assert res.metrics.precision == "bfloat16"
    X = torch.from_numpy(to_inputs(load_idx_folder(bars).x_test[:16]))
    net = res.net
    with torch.no_grad():
        exact = net.module_(X)  # float32
        evaluated = net.infer(X)  # after the fit: float32 too
        net.in_fit_ = True  # what every forward inside fit() sees
        during_fit = net.infer(X)
        net.in_fit_ = False
    assert torch.equal(evaluated, exact)
    assert during_fit.dtype == torch.float32  # the loss is computed in float32
    assert not torch.equal(during_fit, exact)  # but the arithmetic was bfloat16
    torch.testing.assert_close(during_fit, exact, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("model", ["mlp", "lenet5"])
def test_tiny_run_learns_and_writes_run(tmp_path, bars, model):
    cfg = ClassificationConfig(
        model=model,
        data_dir=str(bars),
        epochs=6,
        hidden=(32, 16),
        batch_size=32,
        dropout=0.1,
        device="cpu",
    )
    res = run_classification(cfg, out=tmp_path / "run")
    m = res.metrics
    assert m.test_accuracy >= 0.9  # bars are trivially separable; chance is 0.2
    assert 1 <= m.best_epoch <= 6
    assert np.array(m.confusion_matrix).sum() == 100
    assert set(m.per_class) == {"0", "1", "2", "3", "4"}
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {
        "metrics.json",
        "config.json",
        "history.json",
        "weights.pt",
        "curves.png",
        "confusion_matrix.png",
        "confused_examples.png",
    } <= names
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert {"train_loss", "valid_loss", "train_acc", "valid_acc"} <= set(hist[0])
    # The saved weights reproduce the test accuracy of the best epoch.
    module, saved = load_classifier(tmp_path / "run")
    data = load_idx_folder(bars)
    # Inputs scaled by the training pixels' own statistics, recorded in config.json.
    x = data.x_train.astype(np.float64) / 255
    assert (saved["input_mean"], saved["input_std"]) == pytest.approx((x.mean(), x.std()), abs=1e-5)
    x_test = to_inputs(data.x_test, saved["input_mean"], saved["input_std"])
    with torch.no_grad():
        pred = module(torch.from_numpy(x_test)).argmax(1).numpy()
    assert (pred == data.y_test).mean() == pytest.approx(m.test_accuracy)


def test_grid_reads_epochs_off_one_run(tmp_path, bars):
    cfg = ClassificationConfig(
        data_dir=str(bars),
        search="grid",
        hidden=(16,),
        batch_size=32,
        grid_lr=(1e-3, 1e-2),
        grid_dropout=(0.0,),
        grid_epochs=(1, 3),
        device="cpu",
        figures=False,  # the grid's figures: test_search_views
    )
    res = run_classification(cfg, out=tmp_path / "g")
    rows = (tmp_path / "g" / "grid_results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 4
    assert res.metrics.epochs_run == 3  # one 3-epoch run per pair, not 1 + 3 epochs
    # The chosen row is the grid's best by validation accuracy, then loss, then fewer epochs,
    # recomputed here from the CSV.
    import csv

    with (tmp_path / "g" / "grid_results.csv").open() as f:
        table = list(csv.DictReader(f))
    best = max(
        table,
        key=lambda r: (float(r["valid_acc"]), -float(r["valid_loss"]), -int(r["epochs"])),
    )
    chosen = res.metrics.best_params
    assert (chosen["lr"], chosen["epochs"]) == (float(best["lr"]), int(best["epochs"]))
    assert res.metrics.val_accuracy == pytest.approx(float(best["valid_acc"]))


def test_predict_images(tmp_path, bars, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "classify",
                "--data-dir",
                str(bars),
                "--epochs",
                "4",
                "--hidden",
                "32",
                "--batch-size",
                "32",
                "--quiet",
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    # A dark-on-light picture of class 1's bar, at another size, as a user would draw it.
    pic = np.full((56, 56), 255, np.uint8)
    pic[8:12, 8:48] = 0
    Image.fromarray(pic).save(tmp_path / "bar.png")
    assert image_to_mnist(tmp_path / "bar.png").shape == (28, 28)
    assert main(["predict", str(out), str(tmp_path / "bar.png")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("image,prediction,probability") and len(lines) == 2
    probs = [float(v) for v in lines[1].split(",")[3:]]
    assert sum(probs) == pytest.approx(1.0, abs=1e-3) and len(probs) == 5
    assert main(["predict", str(out), "--x", "1.0"]) == 2  # images expected, not --x
    assert "give one or more image files" in capsys.readouterr().err
    (tmp_path / "junk.png").write_text("not an image")
    assert main(["predict", str(out), str(tmp_path / "junk.png")]) == 2
    assert "not a readable image" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dropout", "1"], "--dropout must be in [0, 1)"),
        (["--dropout", "-0.1"], "--dropout must be in [0, 1)"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--betas", "0.9", "1"], "--betas must be two numbers in [0, 1)"),
        (["--label-smoothing", "1"], "--label-smoothing must be in [0, 1)"),
        (["--val-fraction", "1"], "--val-fraction must be in (0, 1)"),
        (["--val-fraction", "0"], "--val-fraction must be in (0, 1)"),
        (["--keep", "first"], "argument --keep: invalid choice: 'first'"),
        (["--elastic", "-1"], "--elastic must be 0 to 100 pixels"),
        (["--elastic", "30", "--elastic-sigma", "0"], "--elastic-sigma must be 0.5 to 10 pixels"),
        (["--model", "resnet"], "argument --model: invalid choice: 'resnet'"),
        (["--precision", "float16"], "argument --precision: invalid choice: 'float16'"),
        (["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
        (["--data-dir", "/nonexistent/dir"], "not a folder"),
    ],
)
def test_classify_bad_options(tmp_path, capsys, args, message):
    assert main(["classify", "--quiet", "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_classify_bad_data_exits_2(tmp_path, capsys):
    folder = make_idx_folder(tmp_path / "d")
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x00\x01\x08\x03garbage")
    assert (
        main(["classify", "--data-dir", str(folder), "--quiet", "--out", str(tmp_path / "x")]) == 2
    )
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz" in err and not (tmp_path / "x").exists()


def test_class_names_option_names_the_classes(tmp_path, bars, capsys):
    args = ["classify", "--data-dir", str(bars), "--epochs", "1", "--quiet", "--json"]
    assert main([*args, "--class-names", "a,b,c,d,e", "--out", str(tmp_path / "r")]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert metrics["data"]["classes"] == ["a", "b", "c", "d", "e"]
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["class_names"] == ["a", "b", "c", "d", "e"] == config["classes"]
    # Fewer names than the labels need: one line naming the labels, nothing written.
    assert main([*args, "--class-names", "a,b", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--class-names names; expected 5 names" in err
    assert not (tmp_path / "x").exists()


def test_progress_reports_every_epoch(tmp_path, bars):
    from glassnet.progress import Progress

    class Recorder(Progress):
        def __init__(self):
            self.events = []

        def start(self, total, desc):
            self.events.append(("start", total))

        def advance(self, n=1):
            self.events.append(("advance", n))

    rec = Recorder()
    cfg = ClassificationConfig(data_dir=str(bars), epochs=3, hidden=(8,), device="cpu")
    run_classification(cfg, out=tmp_path / "p", progress=rec)
    assert rec.events[0] == ("start", 3)
    assert rec.events.count(("advance", 1)) == 3


def test_classifier_contracts_precision_and_params():
    from glassnet.models import MLP
    from glassnet.training import GlassClassifier

    X = np.random.default_rng(0).random((20, 4)).astype("float32")
    y = np.arange(20) % 2
    kw = dict(module__in_features=4, module__hidden=(8,), module__out_features=2, max_epochs=1)
    with pytest.raises(ValueError, match="precision must be one of"):
        GlassClassifier(MLP, precision="float16", train_split=None, **kw).fit(X, y)
    net = GlassClassifier(MLP, train_split=None, **kw).fit(X, y)
    assert not any("fit" in k and k.startswith("_") for k in net.get_params())
    assert "in_fit_" not in net.get_params() and net.in_fit_ is False


def test_betas_reach_adam_and_old_runs_keep_adams_own(tmp_path, bars):
    from glassnet.estimators import make_classifier

    valid = (np.zeros((4, 1, 28, 28), "float32"), np.arange(4) % 2)
    for betas in [(0.7, 0.9), None]:  # None: the preset's
        cfg = ClassificationConfig(model="lenet5", betas=betas)
        net = make_classifier(cfg, 2, 100, valid).initialize()
        assert net.optimizer_.param_groups[0]["betas"] == cfg.betas
    cfg = ClassificationConfig(data_dir=str(bars), epochs=1, hidden=(8,), betas=(0.5, 0.6),
                               figures=False)
    run_classification(cfg, out=tmp_path / "r")
    assert ClassificationConfig.from_run(tmp_path / "r").betas == (0.5, 0.6)
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    del saved["betas"]  # as a run folder from before betas were a setting
    (tmp_path / "r" / "config.json").write_text(json.dumps(saved))
    assert ClassificationConfig.from_run(tmp_path / "r").betas == (0.9, 0.999)


def test_label_smoothing_is_cross_entropy_against_smoothed_targets(tmp_path, bars):
    """The loss the net trains on equals the hand-written one: (1 - e) of the cross-entropy
    of the label plus e of the mean cross-entropy over all classes."""
    from glassnet.estimators import make_classifier

    valid = (np.zeros((4, 1, 28, 28), "float32"), np.arange(4) % 3)
    cfg = ClassificationConfig(model="lenet5", label_smoothing=0.1)
    net = make_classifier(cfg, 3, 100, valid).initialize()
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 0.3, -2.0]])
    y = torch.tensor([0, 2])
    logp = torch.log_softmax(logits, dim=1)
    by_hand = (0.9 * -logp[torch.arange(2), y] + 0.1 * -logp.mean(dim=1)).mean()
    assert float(net.get_loss(logits, y)) == pytest.approx(float(by_hand), rel=1e-6)
    from glassnet.estimators.classification import COMMON, PRESETS

    assert ClassificationConfig(model="lenet5").label_smoothing == (
        PRESETS["lenet5"]["default"]["label_smoothing"]
    )  # the preset's, else everyone's
    assert ClassificationConfig(model="mlp").label_smoothing == COMMON["label_smoothing"]
    cfg = ClassificationConfig(data_dir=str(bars), epochs=1, hidden=(8,), label_smoothing=0.2,
                               figures=False)
    run_classification(cfg, out=tmp_path / "r")
    assert ClassificationConfig.from_run(tmp_path / "r").label_smoothing == 0.2
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    del saved["label_smoothing"]  # as a run folder from before the setting
    (tmp_path / "r" / "config.json").write_text(json.dumps(saved))
    assert ClassificationConfig.from_run(tmp_path / "r").label_smoothing == 0.0


def test_training_views_are_what_the_loader_gives(bars):
    """The report's "what training saw": each view is its stored digit shifted by whole
    pixels within the run's limit (the loader's own moves), and drawing them leaves the
    run's random state as it was; a run that does not move its images shows none."""
    from glassnet.estimators import make_classifier
    from glassnet.plots.classification_run import training_views

    data = load_idx_folder(bars)
    valid = (np.zeros((4, 1, 28, 28), "float32"), np.arange(4) % 5)
    net = make_classifier(ClassificationConfig(model="lenet5", augment=2), 5, 100, valid)
    state = torch.get_rng_state()
    pick, seen, moves = training_views(net.initialize(), data)
    assert torch.equal(torch.get_rng_state(), state)
    assert moves == "shifted up to 2 px" and seen.shape == (3, 5, 28, 28)
    assert sorted(data.y_train[pick].tolist()) == list(range(5))
    background = float(data.x_train[pick].min())
    padded = np.pad(data.x_train[pick].astype(np.float32), ((0, 0), (2, 2), (2, 2)),
                    constant_values=background)  # fmt: skip
    moved = 0
    for view in seen.reshape(-1, 5, 28, 28):
        for i, image in enumerate(view):
            windows = {(dy, dx): padded[i, dy : dy + 28, dx : dx + 28]
                       for dy in range(5) for dx in range(5)}  # fmt: skip
            shifts = [s for s, w in windows.items() if np.allclose(w, image, atol=0.05)]
            assert shifts, "a view that is no shift of its digit"
            moved += (2, 2) not in shifts
    assert moved > 0
    plain = make_classifier(ClassificationConfig(model="mlp"), 5, 100, valid).initialize()
    _, seen, moves = training_views(plain, data)
    assert seen.shape == (0, 5, 28, 28) and moves == ""


def test_elastic_reaches_the_training_loader_and_old_runs_keep_none(tmp_path, bars):
    from glassnet.data.batches import AugmentLoader
    from glassnet.estimators import make_classifier

    valid = (np.zeros((4, 1, 28, 28), "float32"), np.arange(4) % 3)
    cfg = ClassificationConfig(model="lenet5", elastic=20.0, elastic_sigma=3.0)
    net = make_classifier(cfg, 3, 100, valid)
    params = net.get_params()
    assert net.iterator_train is AugmentLoader
    assert (params["iterator_train__elastic"], params["iterator_train__elastic_sigma"]) == (20, 3)
    plain = make_classifier(ClassificationConfig(model="lenet5"), 3, 100, valid)
    assert plain.iterator_train is not AugmentLoader  # the default moves nothing
    cfg = ClassificationConfig(data_dir=str(bars), epochs=1, hidden=(8,), elastic=10.0,
                               figures=False)
    run_classification(cfg, out=tmp_path / "r")
    assert ClassificationConfig.from_run(tmp_path / "r").elastic == 10.0
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    del saved["elastic"], saved["elastic_sigma"]  # as a run folder from before the setting
    (tmp_path / "r" / "config.json").write_text(json.dumps(saved))
    assert ClassificationConfig.from_run(tmp_path / "r").elastic == 0.0
