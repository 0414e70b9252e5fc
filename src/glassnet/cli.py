"""Command line: argument parsing and terminal output only; the work happens in the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from glassnet.errors import UserError

__all__ = ["main", "build_parser"]


def _int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}") from None


def _float(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for every ``glassnet`` subcommand."""
    p = argparse.ArgumentParser(
        prog="glassnet",
        description="Train small neural nets, tune them with cross-validated search, look inside.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser(
        "regression",
        help="the study's 1-D regression experiment",
        description="Defaults are RegressionConfig's (glassnet.estimators); an option left out "
        "keeps its default.",
    )
    d = r.add_argument_group("data")
    d.add_argument("--train", metavar="CSV", help="training CSV (header input,label)")
    d.add_argument("--test", metavar="CSV", help="test CSV (header input,label)")
    d.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder with regression/train_data.csv and test_data.csv "
        "(default: $GLASSNET_DATA, else generated data)",
    )
    m = r.add_argument_group("model")
    m.add_argument(
        "--hidden", type=_int, nargs="+", metavar="W", help="hidden layer widths (default: 512 256)"
    )
    m.add_argument("--activation", help="tanh (default), relu, sigmoid or gelu")
    s = r.add_argument_group("search and training")
    s.add_argument(
        "--search",
        help="ensemble (default: candidates x folds trained together, epochs chosen by fold "
        "loss, the model the mean of the best candidate's fold models); population (the "
        "study's random search, all fits at once, best refit); random (the study's pipeline: "
        "skorch + RandomizedSearchCV); grid; none (one fit with --lr --momentum --epochs "
        "--weight-decay)",
    )
    s.add_argument(
        "--n-iter",
        type=_int,
        help="random candidates (default: 8 for ensemble, the study's 20 for population/random)",
    )
    s.add_argument("--cv", type=_int, help="cross-validation folds (default: 5)")
    s.add_argument(
        "--folds",
        help="ensemble search: folds of neighbouring points (blocked, default) or shuffled",
    )
    s.add_argument(
        "--max-epochs", type=_int, help="ensemble search: epoch cap per candidate (default 1000)"
    )
    s.add_argument(
        "--patience",
        type=_int,
        help="ensemble search: stop a candidate after this many fold-loss reads (every 10 "
        "epochs) without improvement (default: 30)",
    )
    s.add_argument(
        "--epoch-choices",
        type=_int,
        nargs="+",
        metavar="E",
        help="epoch counts the population/random search draws from (default: 100 250 500 1000)",
    )
    s.add_argument("--lr", type=_float, help="learning rate (--search none; default 0.01)")
    s.add_argument("--momentum", type=_float, help="SGD momentum (--search none; default 0.9)")
    s.add_argument("--epochs", type=_int, help="epochs (--search none; default 1000)")
    s.add_argument(
        "--weight-decay", type=_float, help="L2 weight decay (--search none; default 0.001)"
    )
    s.add_argument("--batch-size", type=_int, help="default: 128 (full batch for 100 points)")
    s.add_argument(
        "--n-jobs", type=_int, help="parallel fits, --search random or grid only (default: 1)"
    )
    _common(r)

    c = sub.add_parser("classify", help="MNIST-style image classification (mlp or lenet5)")
    c.add_argument(
        "--model",
        default="mlp",
        help="mlp (784-256-512-256-10) or lenet5",
    )
    c.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder with the four IDX files, directly or under mnist/ "
        "(default: $GLASSNET_DATA, the download cache, else a 5,000-image sample)",
    )
    c.add_argument("--class-names", metavar="NAMES", help="comma-separated class names")
    c.add_argument("--hidden", type=_int, nargs="+", default=[256, 512, 256], metavar="W")
    c.add_argument(
        "--preset",
        default="default",
        help="default: learns fast (a good model in a few epochs); best: longer training on "
        "shifted, rotated and zoomed digits (LeNet-5 ~7 min, dense net ~5 min on two cores). "
        "Options given below override the preset",
    )
    c.add_argument("--dropout", type=_float, help="dropout probability (preset: 0.1)")
    c.add_argument(
        "--lr", type=_float, help="Adam's peak learning rate (preset: 2e-3 mlp, 1.2e-2 lenet5)"
    )
    c.add_argument("--epochs", type=_int, help="epochs (preset default: 10)")
    c.add_argument(
        "--lr-schedule",
        default="cosine",
        help="cosine (default: a short warm-up, then anneal to 0 over the run) or none",
    )
    c.add_argument(
        "--warmup", type=_float, default=0.03, help="fraction of the steps warming up (0.03)"
    )
    c.add_argument(
        "--average",
        type=_float,
        help="decay of the weights' moving average, validated and kept instead of the raw "
        "weights (default 0.99; 0 turns it off)",
    )
    c.add_argument(
        "--augment",
        type=_int,
        metavar="PIXELS",
        help="shift training images randomly by up to PIXELS (default 0; preset best: 2)",
    )
    c.add_argument(
        "--rotate", type=_float, metavar="DEG", help="... and rotate by up to DEG (best: 10)"
    )
    c.add_argument("--zoom", type=_float, metavar="F", help="... and scale by 1 +- F (best: 0.1)")
    c.add_argument("--batch-size", type=_int, help="default 128")
    c.add_argument(
        "--precision",
        default="float32",
        help="float32 (default) or bfloat16: train with bfloat16 arithmetic where the CPU/GPU "
        "has it natively (on AVX512-BF16: dense-net epochs ~25%% faster, LeNet-5 ~10%%); "
        "the test and predict stay float32",
    )
    c.add_argument("--val-fraction", type=_float, default=0.2)
    c.add_argument("--search", default="none", help="none or grid (mlp only)")
    c.add_argument("--grid-lr", type=_float, nargs="+", default=[1e-3, 3e-4])
    c.add_argument("--grid-dropout", type=_float, nargs="+", default=[0.1, 0.3])
    c.add_argument("--grid-epochs", type=_int, nargs="+", default=[10, 20, 30])
    c.add_argument(
        "--max-train",
        type=_int,
        default=None,
        help="use only this many training images (quick runs)",
    )
    _common(c)

    rp = sub.add_parser("report", help="one self-contained HTML report from run folders")
    rp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    rp.add_argument("-o", "--output", default="report.html", metavar="HTML")
    rp.add_argument(
        "--compare-study", action="store_true", help="show the study's numbers beside ours"
    )

    rr = sub.add_parser("reproduce", help="the study's three experiments and the report")
    rr.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder with regression/ and mnist/ (default: $GLASSNET_DATA, else embedded data)",
    )
    rr.add_argument(
        "--quick", action="store_true", help="small search, few epochs: a demo in about a minute"
    )
    _common(rr)

    dl = sub.add_parser("data", help="manage data sets")
    dsub = dl.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    down = dsub.add_parser("download", help="download a data set into the user cache")
    down.add_argument("name", choices=["mnist"])
    down.add_argument("--to", metavar="DIR", help="destination (default: the user cache)")
    down.add_argument(
        "--mirror",
        action="append",
        metavar="URL",
        help="base URL to fetch from instead of the public mirrors (repeatable)",
    )

    pr = sub.add_parser("predict", help="predict with a saved run")
    pr.add_argument("run_dir", metavar="RUN_DIR")
    pr.add_argument("images", nargs="*", metavar="IMAGE", help="image files (classification runs)")
    pr.add_argument("--x", type=_float, nargs="+", metavar="X", help="inputs (regression runs)")
    pr.add_argument(
        "--input", metavar="CSV", help="CSV of inputs: one column, or input,label (labels ignored)"
    )
    return p


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=_int, default=0, help="one seed for everything")
    g.add_argument("--device", default="auto", help="auto (GPU if present), cpu or cuda")
    g.add_argument("--out", metavar="DIR", help="run folder (default: runs/<UTC time>-<kind>)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``glassnet`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "regression":
            return _regression(args)
        if args.command == "classify":
            return _classify(args)
        if args.command == "report":
            return _report(args)
        if args.command == "reproduce":
            return _reproduce(args)
        if args.command == "data":
            return _download(args)
        if args.command == "predict":
            return _predict(args)
    except UserError as e:
        print(f"glassnet: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("glassnet: interrupted; no run folder was left behind", file=sys.stderr)
        return 130
    return 1


def _progress(args: argparse.Namespace):
    from glassnet.progress import BarProgress, Progress

    return Progress() if args.quiet else BarProgress()


def _regression(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from glassnet.experiments.regression import RegressionConfig, run_regression

    given = {}
    for f in fields(RegressionConfig):
        value = getattr(args, f.name, None)
        if value is not None:  # left out: the config's default applies
            given[f.name] = tuple(value) if isinstance(value, list) else value
    result = run_regression(RegressionConfig(**given), out=args.out, progress=_progress(args))
    print(_regression_summary(result.metrics, result.run_dir))
    return 0


def _regression_summary(m: dict, run_dir: Path) -> str:
    lines = ["", "glassnet regression: done"]
    if m.get("generated_data"):
        lines.append("  data       GENERATED (no data folder given): " + m["data"])
    else:
        lines.append(f"  data       {m['data']}")
    lines.append(f"  sizes      {m['n_train']} train / {m['n_test']} test points")
    bp = ", ".join(f"{k.replace('optimizer__', '')}={_fmt(v)}" for k, v in m["best_params"].items())
    label = "parameters" if m["search"] == "none" else f"best ({m['search']})"
    lines.append(f"  {label:<10} {bp}")
    if "cv_mse" in m:
        lines.append(
            f"  CV MSE     {m['cv_mse']:.4f}  ({m['n_candidates']} candidates, "
            f"{m['n_failed']} failed/diverged)"
        )
    if "ensemble_members" in m:
        lines.append(
            f"  model      mean of {m['ensemble_members']} fold models at epoch {m['epochs_run']}"
        )
    lines.append(f"  train MSE  {m['train_mse']:.4f}")
    lines.append(f"  test MSE   {m['test_mse']:.4f}  (test set used once, after the search)")
    lines.append(
        f"  baseline   Gaussian process test MSE {m['baseline_gp_test_mse']:.4f}"
        f"  (ratio {m['test_mse'] / m['baseline_gp_test_mse']:.2f})"
    )
    if "band_coverage" in m:
        lines.append(
            f"  band       {m['band_coverage']:.0%} of test points within mean +- 2 std "
            f"(Gaussian process: {m['baseline_gp_band_coverage']:.0%})"
        )
    lines.append(f"  time       {m['seconds']:.1f} s")
    lines.append(f"  run folder {run_dir}")
    return "\n".join(lines)


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _classify(args: argparse.Namespace) -> int:
    from glassnet.experiments.classification import ClassificationConfig, run_classification

    cfg = ClassificationConfig(
        model=args.model,
        preset=args.preset,
        data_dir=args.data_dir,
        class_names=tuple(args.class_names.split(",")) if args.class_names else None,
        hidden=tuple(args.hidden),
        dropout=args.dropout,  # None (not given): the preset's value
        lr=args.lr,
        epochs=args.epochs,
        augment=args.augment,
        rotate=args.rotate,
        zoom=args.zoom,
        lr_schedule=args.lr_schedule,
        warmup=args.warmup,
        average=args.average,
        batch_size=args.batch_size,
        precision=args.precision,
        val_fraction=args.val_fraction,
        search=args.search,
        grid_lr=tuple(args.grid_lr),
        grid_dropout=tuple(args.grid_dropout),
        grid_epochs=tuple(args.grid_epochs),
        max_train=args.max_train,
        seed=args.seed,
        device=args.device,
    )
    result = run_classification(cfg, out=args.out, progress=_progress(args))
    print(_classify_summary(result.metrics, result.run_dir))
    return 0


def _classify_summary(m: dict, run_dir: Path) -> str:
    d = m["data"]
    lines = ["", f"glassnet classify ({m['model']}): done"]
    lines += [f"  note       {n}" for n in m.get("notes", [])]
    lines.append(f"  data       {d['source']}")
    lines.append(
        f"  sizes      {d['n_fit']} fit / {d['n_val']} validation / {d['n_test']} test, "
        f"{d['n_classes']} classes"
    )
    bp = ", ".join(f"{k}={_fmt(v)}" for k, v in m["best_params"].items())
    preset = f"preset {m['preset']}: " if "preset" in m else ""
    lines.append(f"  parameters {preset}{bp}; best epoch {m['best_epoch']} of {m['epochs_run']}")
    lines.append(f"  val acc    {m['val_accuracy']:.2%}")
    lines.append(f"  test acc   {m['test_accuracy']:.2%}  (test set used once, at the end)")
    top = m["most_confused"][:3]
    conf = ", ".join(f"{c['true']}->{c['predicted']} ({c['count']})" for c in top)
    lines.append(f"  confused   {conf or 'none'}")
    lines.append(
        f"  time       {m['seconds']:.1f} s ({m['seconds_per_epoch']:.2f} s/epoch, {m['device']}"
        + (", bfloat16 training" if m.get("precision") == "bfloat16" else "")
        + ")"
    )
    lines.append(f"  run folder {run_dir}")
    return "\n".join(lines)


def _report(args: argparse.Namespace) -> int:
    from glassnet.report import STUDY, build_report

    out = build_report(args.run_dirs, args.output, study=STUDY if args.compare_study else None)
    print(f"report written to {out}")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from glassnet.experiments.study import reproduce

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    res = reproduce(
        args.data_dir, args.quick, args.out, args.seed, args.device, _progress(args), log
    )
    m = res.metrics
    r, rs, d, c = m["regression"], m["regression-study-pipeline"], m["mlp"], m["lenet5"]
    print("\nglassnet reproduce: done" + (" (quick)" if args.quick else ""))
    for note in {n for x in (d, c) for n in x.get("notes", [])}:
        print(f"  note        {note}")
    if r.get("generated_data"):
        print("  note        regression used generated data (no data folder given)")
    print("  regression  train MSE / test MSE       (the study's own numbers: 0.187 / 0.110)")
    for label, x in (("glassnet default", r), ("study's pipeline", rs)):
        print(f"    {label:<18} {x['train_mse']:.3f} / {x['test_mse']:.3f}")
    print(f"    {'Gaussian process':<18} -     / {r['baseline_gp_test_mse']:.3f}  (baseline)")
    print(f"  dense net   test accuracy {d['test_accuracy']:.2%}   (study: 96.39%)")
    print(f"  LeNet-5     test accuracy {c['test_accuracy']:.2%}   (study: 99.12%)")
    print(f"  time        {res.seconds:.0f} s")
    print(f"  report      {res.report}")
    return 0


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
    from glassnet.experiments.regression import load_regression_model
    from glassnet.runs import read_json

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UserError(f"RUN_DIR {run_dir}: not a folder")
    if read_json(run_dir / "config.json").get("kind") == "classification":
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

    from glassnet.experiments.classification import load_classifier
    from glassnet.preprocessing import image_to_mnist, to_inputs

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


if __name__ == "__main__":
    sys.exit(main())
