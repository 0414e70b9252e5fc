"""The classifiers' training recipe: presets, the warm-up cosine, weight averaging, augmentation."""

import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback
from skorch.dataset import Dataset

from glassnet.cli import main
from glassnet.data.batches import AugmentLoader
from glassnet.estimators import COMMON, PRESETS, ClassificationConfig, make_classifier
from glassnet.experiments.classification import run_classification
from glassnet.runs.load import load_classifier
from glassnet.training import GlassClassifier, WarmupCosine

from .test_data_images import make_idx_folder


@pytest.fixture
def bars(tmp_path):
    return make_idx_folder(tmp_path / "bars", n_train=300, n_test=100, n_classes=5)


def test_warmup_cosine_by_hand():
    f = WarmupCosine(total_steps=100, warmup=0.1)  # 10 warm-up steps, 90 cosine steps
    assert f(0) == pytest.approx(0.04)
    assert f(5) == pytest.approx(0.04 + 0.96 * 0.5)
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5)  # half-way down the cosine
    assert f(100) == pytest.approx(0.0, abs=1e-12)
    assert f(130) == pytest.approx(0.0, abs=1e-12)  # past the end it stays at zero
    assert WarmupCosine(10, warmup=0.0)(0) == 1.0  # no warm-up: starts at the peak
    with pytest.raises(ValueError):
        WarmupCosine(0)


def test_learning_rate_follows_the_schedule_step_by_step(bars):
    cfg = ClassificationConfig(
        model="mlp", hidden=(8,), epochs=3, batch_size=50, lr=0.01, warmup=0.2, device="cpu"
    )
    x = np.random.default_rng(0).random((200, 1, 28, 28), dtype=np.float32)
    y = np.arange(200) % 5
    net = make_classifier(cfg, 5, len(y), (x[:40], y[:40]))
    seen = []  # the rate each training step used, read from the optimizer itself

    class Probe(Callback):
        def on_batch_begin(self, net, training=False, **kw):
            if training:
                seen.append(net.optimizer_.param_groups[0]["lr"])

    net.callbacks.append(("lr_probe", Probe()))
    net.fit(x, y)
    steps = 3 * math.ceil(200 / 50)
    expected = [0.01 * WarmupCosine(steps, 0.2)(t) for t in range(steps)]
    np.testing.assert_allclose(seen, expected, rtol=1e-12)


def test_weight_average_is_the_ema_of_the_steps_and_is_what_validation_scores():
    torch.manual_seed(0)
    x = torch.randn(64, 6).numpy()
    y = (x[:, 0] > 0).astype(np.int64)
    raw = []

    class Keep(Callback):  # the raw weights after every optimizer step
        def on_batch_end(self, net, training=False, **kw):
            if training:
                raw.append([p.detach().clone() for p in net.module_.parameters()])

    net = GlassClassifier(
        torch.nn.Linear,
        module__in_features=6,
        module__out_features=2,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.SGD,
        lr=0.5,
        max_epochs=2,
        batch_size=16,
        train_split=None,
        average=0.9,
        callbacks=[("keep", Keep())],
        random_state=0,
    ).fit(x, y)
    # By hand: the first step's weights, then avg = d * avg + (1 - d) * w after each step,
    # d = min(0.9, (1 + n) / (10 + n)) after n updates.
    avg = [p.clone() for p in raw[0]]
    for n, step in enumerate(raw[1:], start=1):
        d = min(0.9, (1 + n) / (10 + n))
        avg = [d * a + (1 - d) * w for a, w in zip(avg, step)]
    got = list(net.average_.module.parameters())
    for a, g in zip(avg, got):
        torch.testing.assert_close(g, a)
    state = net.validated_state()
    torch.testing.assert_close(state["weight"], avg[0])
    assert not torch.equal(state["weight"], net.module_.weight)  # the raw weights differ


@pytest.mark.parametrize("keep", ["best", "last"])
def test_validation_scores_the_average_and_the_run_keeps_it(tmp_path, bars, keep):
    cfg = ClassificationConfig(
        data_dir=str(bars), hidden=(16,), epochs=6, batch_size=32, device="cpu", keep=keep,
        figures=False,
    )
    assert cfg.average == COMMON["average"] > 0
    res = run_classification(cfg, out=tmp_path / "run")
    net = res.net
    # The kept epoch's validation accuracy, recomputed from the saved weights, is the one the
    # history recorded: the saved model is the averaged one that validation scored.
    module, _ = load_classifier(tmp_path / "run")
    valid = net.train_split.keywords["valid_ds"]  # the fixed validation split
    x_val, y_val = valid.X, valid.y
    with torch.no_grad():
        acc = (module(torch.as_tensor(x_val)).argmax(1).numpy() == y_val).mean()
    assert acc == pytest.approx(res.metrics.val_accuracy)
    assert res.metrics.test_accuracy >= 0.9
    kept = net.history[res.metrics.best_epoch - 1]
    assert acc == pytest.approx(kept["valid_acc"])
    if keep == "last":
        assert res.metrics.best_epoch == 6
    else:  # the best epoch; ties to the lower validation loss
        scores = [(r["valid_acc"], -r["valid_loss"]) for r in net.history]
        assert res.metrics.best_epoch == 1 + scores.index(max(scores))


def test_best_weights_keeps_the_best_or_the_last_epoch():
    from glassnet.training import BestWeights

    class Net:  # what the callback reads: the history and the state validation scored
        history: list = []

        def validated_state(self):
            return {"epoch": torch.tensor(self.history[-1]["epoch"])}

    rows = [(1, 0.9, 0.3), (2, 0.8, 0.5), (3, 0.9, 0.2), (4, 0.85, 0.4)]  # (epoch, acc, loss)
    for keep, kept, at_two in [("best", 3, 1), ("last", 4, 2)]:
        cb, net = BestWeights(budgets=(2,), keep=keep).initialize(), Net()
        for epoch, acc, loss in rows:
            net.history = [*net.history, {"epoch": epoch, "valid_acc": acc, "valid_loss": loss}]
            cb.on_epoch_end(net)
        assert cb.best_epoch_ == kept and int(cb.best_state_["epoch"]) == kept
        assert cb.snapshots_[2]["epoch"] == at_two  # "what if we had trained 2 epochs"


def test_presets_fill_what_is_not_given_and_round_trip_through_config_json(tmp_path, bars):
    lenet = ClassificationConfig(model="lenet5")
    assert lenet.lr == PRESETS["lenet5"]["default"]["lr"]
    assert lenet.batch_size == PRESETS["lenet5"]["default"]["batch_size"] != COMMON["batch_size"]
    assert ClassificationConfig(model="mlp").batch_size == COMMON["batch_size"]  # not in its preset
    assert lenet.augment == COMMON["augment"] == 0
    best = ClassificationConfig(model="lenet5", preset="best", epochs=2)
    assert best.epochs == 2  # given: wins over the preset
    assert best.rotate == PRESETS["lenet5"]["best"]["rotate"] > 0
    assert ClassificationConfig(model="mlp").lr != lenet.lr  # per-model values
    # A tiny run with the best preset learns, and config.json rebuilds the same config.
    cfg = ClassificationConfig(
        model="lenet5", preset="best", data_dir=str(bars), epochs=4, batch_size=32, device="cpu",
        figures=False,
    )
    res = run_classification(cfg, out=tmp_path / "run")
    assert res.metrics.test_accuracy >= 0.9
    # LeNet-5's best holds out 5% (the default and the dense net the study's 20%): sklearn's
    # stratified split rounds the held-out count up
    sizes = res.metrics.data
    assert cfg.val_fraction == PRESETS["lenet5"]["best"]["val_fraction"] == 0.05
    assert sizes.n_val == math.ceil(0.05 * (sizes.n_fit + sizes.n_val))
    assert ClassificationConfig(model="mlp", preset="best").val_fraction == 0.2
    assert lenet.val_fraction == COMMON["val_fraction"] == 0.2
    assert (cfg.keep, lenet.keep) == ("last", COMMON["keep"]) == ("last", "best")
    assert res.metrics.best_epoch == 4  # the last epoch's weights
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    fields = {k: v for k, v in saved.items() if k in asdict(cfg)}
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    assert ClassificationConfig(**fields) == cfg
    saved.pop("keep")  # as a run folder from before the setting: it kept the best epoch
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    assert ClassificationConfig.from_run(tmp_path / "run").keep == "best"


def test_bad_preset_is_one_line(tmp_path, capsys):
    assert main(["classify", "--preset", "fastest", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "argument --preset: invalid choice: 'fastest'" in err and "'best'" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def _disk(size=28, radius=7.0):
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    return (np.hypot(yy, xx) <= radius).astype(np.float32)


def test_affine_augment_rotates_and_zooms_about_the_centre():
    disk = _disk()[None, None] * 2.0 - 1.0  # (1, 1, 28, 28): background -1, disk +1
    X = np.repeat(disk, 64, 0)
    y = np.arange(64)
    torch.manual_seed(0)
    # Rotation only: a centred disk looks the same at any angle (up to interpolation).
    rot = AugmentLoader(Dataset(X, y), batch_size=64, max_shift=0, max_rotate=40)
    xb, _ = next(iter(rot))
    assert xb.shape == (64, 1, 28, 28)
    assert np.abs(xb.numpy() - X).mean() < 0.05
    assert xb.min() >= -1 - 1e-6  # the border reads background, never below it
    # Zoom only: the disk's area scales with the zoom, both ways.
    zoom = AugmentLoader(Dataset(X, y), batch_size=64, max_shift=0, max_zoom=0.3)
    area = (next(iter(zoom))[0].numpy() > 0).sum(axis=(1, 2, 3))
    assert area.min() < 0.8 * (disk > 0).sum() < 1.2 * (disk > 0).sum() < area.max()
    # Near-zero limits: the identity (bilinear sampling at the pixel centres).
    still = AugmentLoader(Dataset(X, y), batch_size=64, max_shift=0, max_rotate=1e-9)
    np.testing.assert_allclose(next(iter(still))[0].numpy(), X, atol=1e-5)


def test_elastic_distortion_moves_each_pixel_by_a_smoothed_random_field():
    from scipy.ndimage import gaussian_filter

    # A ramp along x (value = column index): bilinear sampling at x + dx returns x + dx, so
    # away from the borders each output pixel minus the input is that pixel's x displacement.
    ramp = np.broadcast_to(np.arange(28, dtype=np.float32), (28, 28))
    X = np.repeat(ramp[None, None], 4, 0).copy()  # (4, 1, 28, 28)
    alpha, sigma = 3.0, 4.0
    loader = AugmentLoader(Dataset(X, np.arange(4)), batch_size=4, max_shift=0,
                           elastic=alpha, elastic_sigma=sigma)  # fmt: skip
    torch.manual_seed(5)
    xb, _ = next(iter(loader))
    # The reference: the same uniform noise, smoothed by scipy's Gaussian (+- 3 sigma) and
    # scaled by alpha. The noise is drawn 12 px wider each side, so the centre is a full filter.
    r = 12
    torch.manual_seed(5)
    for _ in range(4):  # the loader draws angle, zoom, x and y shift (all zero-width) first
        torch.rand(4)
    noise = (torch.rand(8, 1, 28 + 2 * r, 28 + 2 * r) * 2 - 1).numpy()[:, 0]  # dx, dy per image
    field = np.stack([gaussian_filter(n, sigma, truncate=3.0)[r:-r, r:-r] for n in noise])
    dx = alpha * field.reshape(4, 2, 28, 28)[:, 0]  # (4, 28, 28), pixels
    inner = (slice(None), slice(3, -3), slice(3, -3))  # where x + dx stays inside the image
    moved = xb.numpy()[:, 0] - X[:, 0]
    np.testing.assert_allclose(moved[inner], dx[inner], atol=1e-4)
    assert 0.02 < np.abs(dx).mean() < 0.5  # alpha 3 at sigma 4: a fraction of a pixel
    # A constant image stays constant: the field only moves pixels.
    flat = AugmentLoader(Dataset(np.full((4, 1, 28, 28), 0.5, np.float32), np.arange(4)),
                         batch_size=4, max_shift=0, elastic=30.0)  # fmt: skip
    np.testing.assert_allclose(next(iter(flat))[0].numpy(), 0.5, atol=1e-6)
