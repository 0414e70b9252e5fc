"""`glassnet export`: every run's model as one ONNX or TorchScript file, loaded by onnxruntime
or torch.jit.load, agreeing with glassnet's own predictions on the same inputs."""

import json
import shutil

import numpy as np
import onnxruntime
import pytest
import torch

from glassnet.cli import main
from glassnet.export import read_metadata
from glassnet.preprocessing import to_inputs
from glassnet.runs.load import load_classifier, load_regression_model

TOLERANCE = 1e-5  # the bound: max |exported - glassnet|


def _glassnet(run_dir, kind, n):
    """glassnet's own predictions, the way `glassnet predict` makes them, and the raw input."""
    rng = np.random.default_rng(n)
    if kind in ("ensemble", "single"):
        x = np.sort(rng.uniform(-5, 5, n)).astype(np.float32).reshape(n, 1)  # (n, 1)
        with torch.no_grad():
            return x, load_regression_model(run_dir)(torch.from_numpy(x)).numpy()
    digits = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)  # images as MNIST stores them
    module, cfg = load_classifier(run_dir)
    with torch.no_grad():
        logits = module(torch.from_numpy(to_inputs(digits, cfg["input_mean"], cfg["input_std"])))
    return digits[:, None].astype(np.float32), torch.softmax(logits, 1).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ensemble", "single", "mlp", "lenet5"])
def test_onnx_and_torchscript_agree_with_glassnet(tiny_runs, kind, tmp_path, capsys):
    run_dir = tiny_runs[kind]
    onnx_file, ts_file = tmp_path / "m.onnx", tmp_path / "m.pt"
    assert main(["export", str(run_dir), "-o", str(onnx_file)]) == 0
    assert main(["export", str(run_dir), "--format", "torchscript", "-o", str(ts_file)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and all("matches the run's predictions" in p for p in printed)
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(str(ts_file))
    (inp,) = session.get_inputs()
    assert inp.shape[0] == "batch"  # a dynamic batch axis
    for n in (1, 37):
        x, expected = _glassnet(run_dir, kind, n)
        via_onnx = session.run(None, {inp.name: x})[0]
        with torch.no_grad():
            via_ts = scripted(torch.from_numpy(x)).numpy()
        assert via_onnx.shape == via_ts.shape == expected.shape
        assert np.abs(via_onnx - expected).max() <= TOLERANCE
        assert np.abs(via_ts - expected).max() <= TOLERANCE
    meta = read_metadata(onnx_file)
    assert meta == read_metadata(ts_file) and meta["source_run"] == run_dir.name
    if kind in ("mlp", "lenet5"):
        classes = load_classifier(run_dir)[1]["classes"]
        assert json.loads(meta["classes"]) == [str(c) for c in classes]
    assert not list(tmp_path.glob(".*tmp"))


def test_default_output_is_in_the_run_folder(tiny_runs, capsys):
    run_dir = tiny_runs["single"]
    assert main(["export", str(run_dir), "--format", "torchscript"]) == 0
    assert (run_dir / "model.pt").is_file() and str(run_dir / "model.pt") in capsys.readouterr().out
    (run_dir / "model.pt").unlink()


def test_an_old_or_damaged_run_folder_is_one_line(tiny_runs, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(tiny_runs["mlp"], old)
    cfg = json.loads((old / "config.json").read_text())
    del cfg["input_mean"]  # recorded only since input scaling became a setting
    (old / "config.json").write_text(json.dumps(cfg))
    assert main(["export", str(old), "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.json" in err[0] and "input_mean" in err[0]
    assert not (tmp_path / "m.onnx").exists() and not list(tmp_path.glob(".*tmp"))
    assert main(["export", str(tmp_path / "none"), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["export", str(tiny_runs["mlp"]), "-o", str(tmp_path / "no" / "m.onnx")]) == 2
    assert "existing folder" in capsys.readouterr().err
