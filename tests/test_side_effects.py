"""Library calls leave process-wide state alone: matplotlib's backend and rcParams, pyplot's
figures, the glibc allocator, the global random generators."""

import subprocess
import sys
import textwrap

import numpy as np


def _run(code: str) -> str:
    """Run code in a fresh interpreter (import-time effects need one) and return its stdout."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_plotting_leaves_backend_rcparams_and_pyplot_alone(tmp_path):
    out = _run(
        f"""
        import matplotlib
        matplotlib.use("svg")  # the user's choice, made before glassnet is imported
        before = dict(matplotlib.rcParams)
        import glassnet.plots as gp
        from glassnet.runs import RunWriter
        import matplotlib.pyplot as plt
        fig, ax = gp.plot_learning_curve({{"train": [3.0, 2.0, 1.0]}})
        assert not ax.spines["top"].get_visible()  # glassnet's style applied to its figure
        with RunWriter(r"{tmp_path / "run"}") as run:
            run.figure("c.png", fig)
        after = dict(matplotlib.rcParams)
        print(matplotlib.get_backend(), before == after, plt.get_fignums())
        """
    )
    assert out == "svg True []"
    assert (tmp_path / "run" / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_allocator_setting_comes_from_the_command_never_from_fit(monkeypatch, tmp_path):
    import ctypes

    import torch

    from glassnet.cli import main
    from glassnet.estimators import RegressionConfig, make_regressor
    from glassnet.search.ensemble import EnsembleSearchCV
    from glassnet.search.population import PopulationSearchCV
    from glassnet.training import GlassClassifier

    calls = []

    class Libc:  # stands in for glibc: records every mallopt
        def mallopt(self, *args):
            calls.append(args)
            return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: Libc())
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, (24, 1)).astype(np.float32)
    y = np.sin(x[:, 0]).astype(np.float32)
    est = make_regressor(RegressionConfig(hidden=(8,), epochs=3, device="cpu"))
    PopulationSearchCV(est, {"lr": [0.01]}, n_iter=None, cv=2).fit(x, y)
    EnsembleSearchCV({"lr": [0.01]}, hidden=(8,), n_iter=1, cv=2, max_epochs=20).fit(x, y)
    GlassClassifier(
        torch.nn.Linear,
        module__in_features=1,
        module__out_features=2,
        max_epochs=1,
        train_split=None,
        criterion=torch.nn.CrossEntropyLoss,
    ).fit(x, (x[:, 0] > 0).astype(np.int64))
    assert calls == []  # library fits leave the process's allocator alone
    main(["classify", "--epochs", "0", "--out", str(tmp_path / "x")])  # parsed, then refused
    assert calls  # the command opts in


def _draws():
    import random

    import torch

    return torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()


def _reseed(seed=5):
    import random

    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def test_library_calls_leave_the_global_generators_alone():
    import torch

    from glassnet.introspection import SmoothGrad
    from glassnet.models import LeNet5
    from glassnet.rng import seeded
    from glassnet.training import GlassRegressor

    _reseed()
    expected = _draws()
    x = np.linspace(-1, 1, 16, dtype=np.float32)[:, None]

    def net():
        return GlassRegressor(
            torch.nn.Linear,
            module__in_features=1,
            module__out_features=1,
            max_epochs=2,
            batch_size=4,
            iterator_train__shuffle=True,
            train_split=None,
            random_state=0,
        )

    # Same random_state, whatever the state of the world: the same weights.
    weights = []
    for world in (1, 2):
        _reseed(world)
        weights.append(net().fit(x, x).module_.weight.detach().clone())
    assert torch.equal(*weights)
    # Fits, seeded blocks and SmoothGrad consume and reseed nothing of the caller's.
    lenet, fresh = LeNet5(), net()  # building them draws initial weights: done beforehand
    _reseed()
    fresh.fit(x, x)
    with seeded(123):
        torch.rand(10)
    SmoothGrad(lenet, n_samples=2, seed=0).attribute(torch.zeros(1, 1, 28, 28), 0)
    assert _draws() == expected


def test_integrated_gradients_takes_captums_argument_order():
    import torch
    from captum.attr import IntegratedGradients as CaptumIG

    from glassnet.introspection import IntegratedGradients

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    x, base = torch.randn(5, 4), torch.randn(1, 4)
    ours = IntegratedGradients(model, n_steps=16).attribute(x, base, 2)  # positional, as Captum
    theirs = CaptumIG(model).attribute(x, base, 2, n_steps=16)
    torch.testing.assert_close(ours, theirs)


def test_in_memory_loader_refuses_unknown_options():
    import pytest
    import torch
    from skorch.dataset import Dataset

    from glassnet.data.batches import InMemoryLoader
    from glassnet.training import GlassClassifier

    data = Dataset(np.zeros((4, 2), np.float32), np.zeros(4, np.int64))
    with pytest.raises(TypeError, match="shufle"):
        InMemoryLoader(data, batch_size=2, shufle=True)
    net = GlassClassifier(
        torch.nn.Linear,
        module__in_features=2,
        module__out_features=2,
        criterion=torch.nn.CrossEntropyLoss,
        iterator_train=InMemoryLoader,
        iterator_train__shufle=True,  # misspelt: must not pass silently
        train_split=None,
        max_epochs=1,
    )
    with pytest.raises(TypeError, match="shufle"):
        net.fit(data.X, data.y)
