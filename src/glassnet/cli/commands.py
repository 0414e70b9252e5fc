"""The commands: each turns parsed options into a library call and prints its summary."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glassnet.cli.parser import build_parser, flag
from glassnet.cli.summary import classify_summary, regression_summary, reproduce_summary
from glassnet.errors import DivergedError, NoModelError, TrainingInterrupted, UserError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``glassnet`` command; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help and --version (0); a usage error, told in one line (2)
        return int(e.code or 0)
    if args.command in ("regression", "classify", "reproduce", "rerun", "resume"):
        from glassnet.allocator import keep_freed_memory

        keep_freed_memory()  # process-wide, so the command decides, never a library call
        import optuna

        # glassnet reports trials, progress and storage failures itself, in one line each
        optuna.logging.set_verbosity(optuna.logging.ERROR)
    commands = {
        "regression": _regression,
        "classify": _classify,
        "report": _report,
        "reproduce": _reproduce,
        "data": _download,
        "predict": _predict,
        "export": _export,
        "rerun": _rerun,
        "resume": _resume,
    }
    signals = _Signals()
    try:
        return commands[args.command](args)
    except UserError as e:
        print(f"glassnet: error: {e.worded(flag)}", file=sys.stderr)
        return 2
    except (NoModelError, DivergedError) as e:  # the settings trained nothing usable
        what = f"training diverged ({e})" if isinstance(e, DivergedError) else str(e)
        print(f"glassnet: error: {what}; lower the learning rate (--lr, --adam-lr)",
              file=sys.stderr)  # fmt: skip
        return 1
    except (KeyboardInterrupt, TrainingInterrupted):
        print(f"glassnet: interrupted ({signals.name}); {_kept(args)}", file=sys.stderr)
        return 128 + signals.number
    except OSError as e:  # a full disk, a folder made unwritable mid-run
        where = e.filename or "a file"
        print(f"glassnet: error: {where}: {e.strerror or e}; {_kept(args)}", file=sys.stderr)
        return 1
    finally:
        signals.restore()


class _Signals:
    """While a command runs, SIGTERM interrupts it as Ctrl-C does (the run is kept to resume);
    ``name`` and ``number`` tell which signal it was."""

    def __init__(self) -> None:
        self.name, self.number = "Ctrl-C", int(signal.SIGINT)
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._terminate)

    def _terminate(self, signum, frame) -> None:
        self.name, self.number = "SIGTERM", int(signal.SIGTERM)
        raise KeyboardInterrupt

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _kept(args: argparse.Namespace) -> str:
    """What is left of an interrupted run, and how to continue it."""
    from glassnet.runs import partial_dir

    out = getattr(args, "run_out", None)
    if out is not None and (partial_dir(out) / "config.json").exists():
        return f"the run so far is kept; continue it with: glassnet resume {out}"
    return "no run folder was left behind"


def _out(args: argparse.Namespace, kind: str) -> Path:
    """The run folder: --out, or a new one under runs/; remembered for the interrupt message."""
    from glassnet.runs import default_run_dir

    args.run_out = Path(args.out) if args.out else default_run_dir(kind)
    return args.run_out


def _show(args: argparse.Namespace, text: str, metrics: Any, run_dir: Path) -> None:
    """The end-of-run summary on stdout: lines to read, or one JSON object with --json."""
    if getattr(args, "json", False):
        print(json.dumps({"run_dir": str(run_dir), "metrics": metrics}))
    else:
        print(text)


def _log(args: argparse.Namespace):
    """Where ``reproduce`` says which experiment it is on: stderr, unless --quiet."""

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    return log


def _progress(args: argparse.Namespace):
    from glassnet.progress import BarProgress, Progress

    return Progress() if args.quiet else BarProgress()


def _given(args: argparse.Namespace, config_class: type) -> dict[str, Any]:
    """The options a command was given, by the config field each sets (lists as tuples): the
    one mapping from options to a config. An option left out (None) is not passed, so the
    config's default, or its preset's value, applies."""
    from dataclasses import fields

    given = {}
    for f in fields(config_class):
        value = getattr(args, f.name, None)
        if value is not None:
            given[f.name] = tuple(value) if isinstance(value, list) else value
    return given


def _regression(args: argparse.Namespace) -> int:
    from glassnet.estimators import RegressionConfig
    from glassnet.experiments.regression import run_regression

    given = _given(args, RegressionConfig)
    cfg = RegressionConfig(**given)
    cfg.validate()  # a value out of range is told first
    unused = cfg.unused(set(given))
    if unused:  # an option the chosen search ignores is a mistake, not a wish to honour quietly
        flags = ", ".join("--" + name.replace("_", "-") for name in unused)
        raise UserError(f"{flags}: not used by --search {cfg.search} (see glassnet regression "
                        "--help)")  # fmt: skip
    out = _out(args, "regression")
    result = run_regression(cfg, out=out, progress=_progress(args))
    _show_run(args, result)
    return 0


def _show_run(args: argparse.Namespace, result: Any) -> None:
    """A regression or classification run's summary (``_show``)."""
    from glassnet.results import RegressionMetrics

    m = result.metrics
    summary = regression_summary if isinstance(m, RegressionMetrics) else classify_summary
    _show(args, summary(m, result.run_dir), m.to_json(), result.run_dir)


def _classify(args: argparse.Namespace) -> int:
    from glassnet.estimators import ClassificationConfig
    from glassnet.experiments.classification import run_classification

    cfg = ClassificationConfig(**_given(args, ClassificationConfig))
    result = run_classification(cfg, out=_out(args, cfg.model), progress=_progress(args))
    _show_run(args, result)
    return 0


def _report(args: argparse.Namespace) -> int:
    from glassnet.report import build_report
    from glassnet.study_numbers import STUDY

    out = build_report(args.run_dirs, args.output, study=STUDY if args.compare_study else None)
    print(f"report written to {out}")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from glassnet.experiments.study import reproduce

    out = _out(args, "reproduce")
    res = reproduce(args.data_dir, args.quick, out, args.seed, args.device, _progress(args),
                    _log(args))  # fmt: skip
    _show_reproduce(args, res)
    return 0


def _show_reproduce(args: argparse.Namespace, res: Any) -> None:
    metrics = {k: m.to_json() for k, m in res.metrics.items()}
    _show(args, reproduce_summary(res, res.quick), metrics, res.out)


def _download(args: argparse.Namespace) -> int:
    from glassnet.data import images

    mirrors = [m if m.endswith("/") else m + "/" for m in (args.mirror or images.MNIST_MIRRORS)]
    where = images.download_mnist(args.to, mirrors=mirrors, expected=images.MNIST_SHA256)
    print(f"MNIST is ready in {where}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from glassnet.data.regression import read_inputs
    from glassnet.runs.load import load_regression_model, run_config

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UserError(f"RUN_DIR {run_dir}: not a folder")
    if run_config(run_dir)["kind"] == "classification":
        return _predict_images(run_dir, args.images)
    if args.images:
        raise UserError(f"{run_dir} is a regression run: give inputs with --x or --input")
    if (args.x is None) == (args.input is None):
        raise UserError("give inputs with either --x X [X ...] or --input CSV")
    if args.input is not None:
        xs = read_inputs(args.input, "--input")
    else:
        xs = np.asarray(args.x, dtype=np.float64)
    model = load_regression_model(run_dir)
    with torch.no_grad():
        ys = model(torch.as_tensor(xs, dtype=torch.float32).reshape(-1, 1)).ravel().numpy()
    print("input,prediction")
    for x, y in zip(xs, ys):
        print(f"{x:.6g},{y:.6g}")
    return 0


def _predict_images(run_dir: Path, images: list[str]) -> int:
    import numpy as np
    import torch

    from glassnet.preprocessing import image_to_mnist, to_inputs
    from glassnet.runs.load import load_classifier

    if not images:
        raise UserError("give one or more image files to classify")
    module, cfg = load_classifier(run_dir)
    digits = np.stack([image_to_mnist(p) for p in images])  # (n, 28, 28) uint8
    x = torch.from_numpy(to_inputs(digits, cfg["input_mean"], cfg["input_std"]))
    with torch.no_grad():
        proba = torch.softmax(module(x), dim=1).numpy()
    classes = cfg["classes"]
    print("image,prediction,probability," + ",".join(f"p({c})" for c in classes))
    for path, p in zip(images, proba):
        k = int(p.argmax())
        print(f"{path},{classes[k]},{p[k]:.4f}," + ",".join(f"{v:.4f}" for v in p))
    return 0


def _export(args: argparse.Namespace) -> int:
    from glassnet.export import export_run

    done = export_run(args.run_dir, args.format, args.output)
    shape = lambda s: "(" + ", ".join(map(str, s)) + ")"  # noqa: E731
    check = ("not checked: onnxruntime is not installed" if done.max_abs_diff is None
             else f"matches the run's predictions to {done.max_abs_diff:.1e}")  # fmt: skip
    print(f"wrote {done.path} ({done.format}): {done.input} {shape(done.input_shape)} -> "
          f"{done.output} {shape(done.output_shape)}; {check}")  # fmt: skip
    return 0


def _rerun(args: argparse.Namespace) -> int:
    """Repeat a run from its config.json: the same settings and seed, a new folder."""
    from glassnet.runs.load import config_from_run

    cfg = config_from_run(args.run_dir)
    if type(cfg).__name__ == "ClassificationConfig":
        from glassnet.experiments.classification import run_classification

        out = _out(args, cfg.model)
        _show_run(args, run_classification(cfg, out=out, progress=_progress(args)))
    else:
        from glassnet.experiments.regression import run_regression

        out = _out(args, "regression")
        _show_run(args, run_regression(cfg, out=out, progress=_progress(args)))
    return 0


def _resume(args: argparse.Namespace) -> int:
    """Continue an interrupted run from its partial folder (checkpoint, finished parts)."""
    from glassnet.runs import check_settings_unchanged, final_dir, partial_dir, read_json
    from glassnet.runs.load import config_from_run

    final = final_dir(args.run)
    partial = partial_dir(final)
    if not partial.is_dir():
        if (final / "metrics.json").exists() or (final / "report.html").exists():
            raise UserError(f"{final}: finished already; there is nothing to resume")
        raise UserError(f"{args.run}: no interrupted run to resume (no {partial})")
    args.run_out = final
    check_settings_unchanged(partial)  # before any work
    saved = read_json(partial / "config.json")
    kind = saved.get("kind") if isinstance(saved, dict) else None
    progress = _progress(args)
    if kind == "classification":
        from glassnet.experiments.classification import run_classification

        cfg = config_from_run(partial)
        _show_run(args, run_classification(cfg, final, progress, resume=True))
    elif kind == "regression":
        from glassnet.experiments.regression import run_regression

        cfg = config_from_run(partial)
        _show_run(args, run_regression(cfg, final, progress, resume=True))
    elif kind == "reproduce":
        from glassnet.experiments.study import reproduce

        s = saved
        res = reproduce(s["data_dir"], s["quick"], final, s["seed"], s["device"], progress,
                        _log(args), resume=True)  # fmt: skip
        _show_reproduce(args, res)
    else:
        raise UserError(f"{partial / 'config.json'}: not a glassnet run configuration")
    return 0
