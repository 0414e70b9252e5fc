"""Take a trained model out of glassnet: one ONNX (or TorchScript) file per run.

The file holds the whole model, so whoever loads it needs nothing of glassnet:
- regression: ``x`` (batch, 1) in the data's units -> ``y`` (batch, 1); an ensemble's input
  and target scaling and the mean of its members are part of the graph;
- classification: ``pixels`` (batch, 1, 28, 28), intensities 0-255 as MNIST stores them ->
  ``probabilities`` (batch, classes), softmax over the classes in ``classes`` order; the
  run's input scaling is part of the graph.
The batch axis is dynamic. Every export is checked before it is kept: the file is loaded
(onnxruntime, or ``torch.jit.load``) and must agree with glassnet's own model on inputs of
another batch size than it was traced with.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from glassnet.errors import UserError

__all__ = [
    "FORMATS",
    "Exported",
    "ProbabilityModel",
    "export_run",
    "exportable_model",
    "read_metadata",
]

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
# The check refuses a file whose outputs differ from glassnet's by more than this, relative to
# the outputs' size: float32 rounding of two runtimes differs by ~1e-6 of it, a lost scaling
# or a wrong mean by far more. (An ill-conditioned last layer, weights in the hundreds on a
# tiny net, amplifies the rounding: an absolute bound would refuse its honest export.)
RELATIVE_TOLERANCE = 1e-4
CHECK_ROWS = 64  # the check's batch: not the size traced with, so the batch axis is proven


class ProbabilityModel(nn.Module):
    """A classifier as a user holds images: raw pixels in, class probabilities out."""

    def __init__(self, net: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels / 255.0 - self.mean) / self.std  # (batch, 1, 28, 28), as trained on
        return torch.softmax(self.net(x), dim=1)  # (batch, classes)


@dataclass(frozen=True)
class Exported:
    """What ``export_run`` wrote: the file, its format, the input and output names and
    shapes, and the largest difference from glassnet's own predictions in the check."""

    path: Path
    format: str
    input: str
    output: str
    input_shape: tuple
    output_shape: tuple
    max_abs_diff: float | None  # None: the file could not be loaded to check it


def exportable_model(run_dir: str | Path) -> tuple[nn.Module, torch.Tensor, dict[str, str]]:
    """The run's whole model (eval mode, CPU), an example input and metadata for the file."""
    from glassnet import __version__
    from glassnet.runs.load import load_classifier, load_regression_model, run_config

    cfg = run_config(run_dir)
    meta = {"glassnet_version": __version__, "kind": cfg["kind"], "source_run": Path(run_dir).name}
    if cfg["kind"] == "regression":
        model = load_regression_model(run_dir).cpu()
        meta |= {"input": "x: (batch, 1), data units", "output": "y: (batch, 1), data units"}
        return model, torch.linspace(-3, 3, 5).reshape(5, 1), meta  # (5, 1)
    net, cfg = load_classifier(run_dir)
    model = ProbabilityModel(net.cpu(), cfg["input_mean"], cfg["input_std"]).eval()
    meta |= {
        "input": "pixels: (batch, 1, 28, 28), intensities 0-255, white digit on black",
        "output": "probabilities: (batch, classes), softmax",
        "classes": json.dumps([str(c) for c in cfg["classes"]]),
    }
    gen = torch.Generator().manual_seed(0)
    return model, torch.rand(5, 1, 28, 28, generator=gen) * 255, meta  # (5, 1, 28, 28)


def export_run(
    run_dir: str | Path, format: str = "onnx", output: str | Path | None = None
) -> Exported:
    """Write the run's model to ``output`` (default: ``RUN_DIR/model.onnx`` or ``model.pt``),
    check it against glassnet's predictions, and only then put it in place."""
    if format not in FORMATS:
        raise UserError(f"`format` must be one of {', '.join(FORMATS)}, got {format}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"RUN_DIR {run_dir}: not a folder")
    path = Path(output) if output is not None else run_dir / f"model{FORMATS[format]}"
    if path.is_dir() or not path.parent.is_dir():
        raise UserError(f"-o {path}: expected a file name in an existing folder")
    model, example, meta = exportable_model(run_dir)
    names = ("x", "y") if meta["kind"] == "regression" else ("pixels", "probabilities")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with _quiet_torch():
            if format == "onnx":
                _onnx(model, example, names, meta, tmp)
            else:
                _torchscript(model, example, meta, tmp)
        probe = _probe(example)
        with torch.no_grad():
            expected = model(probe).numpy()
        got = _run_file(tmp, format, names[0], probe)
        diff = None if got is None else float(np.abs(got - expected).max())
        bound = RELATIVE_TOLERANCE * max(1.0, float(np.abs(expected).max()))
        if diff is not None and not diff <= bound:
            raise UserError(f"{path}: the exported model differs from the run's by {diff:.3g} "
                            f"(more than {bound:.3g}); nothing written")  # fmt: skip
        os.replace(tmp, path)  # a link at path is replaced, never followed
    finally:
        tmp.unlink(missing_ok=True)
    shape_in = ("batch", *example.shape[1:])
    shape_out = ("batch", *expected.shape[1:])
    return Exported(path, format, names[0], names[1], shape_in, shape_out, diff)


def _onnx(model: nn.Module, example: torch.Tensor, names, meta: dict, path: Path) -> None:
    try:
        import onnxscript  # noqa: F401 - torch's ONNX exporter needs it; told here if missing
    except ImportError:
        raise UserError("`format` onnx needs the export extra: pip install 'glassnet[export]' "
                        "(make setup installs it)") from None  # fmt: skip
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        model, (example,), dynamo=True, verbose=False, external_data=False,
        input_names=[names[0]], output_names=[names[1]], dynamic_shapes=({0: batch},),
    )  # fmt: skip
    program.model.metadata_props.update(meta)
    program.save(str(path))


def _torchscript(model: nn.Module, example: torch.Tensor, meta: dict, path: Path) -> None:
    traced = torch.jit.trace(model, example)
    torch.jit.save(traced, str(path), _extra_files={"glassnet.json": json.dumps(meta)})


def _probe(example: torch.Tensor) -> torch.Tensor:
    """Check inputs of another batch size than ``example``, over the same range."""
    gen = torch.Generator().manual_seed(1)
    if example.dim() == 2:  # regression: past the data's usual range on both sides
        return torch.linspace(-6, 6, CHECK_ROWS).reshape(CHECK_ROWS, 1)  # (64, 1)
    return torch.rand(CHECK_ROWS, *example.shape[1:], generator=gen) * 255  # (64, 1, 28, 28)


def _run_file(path: Path, format: str, input_name: str, x: torch.Tensor) -> np.ndarray | None:
    """The exported file's outputs for ``x``; None when no runtime to load it is installed."""
    if format == "torchscript":
        with _quiet_torch(), torch.no_grad():
            return torch.jit.load(str(path))(x).numpy()
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {input_name: x.numpy()})[0]


@contextlib.contextmanager
def _quiet_torch() -> Iterator[None]:
    """The exporters' progress lines and their warnings about torch's own API (TorchScript is
    deprecated; torchvision operators are skipped) are not the user's business."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata glassnet wrote into an exported file (ONNX or TorchScript)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        return {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    files = {"glassnet.json": ""}
    with _quiet_torch():
        torch.jit.load(str(path), _extra_files=files)
    return json.loads(files["glassnet.json"])
