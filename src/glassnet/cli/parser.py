"""The command line: its declarative argument parser."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

__all__ = ["build_parser", "flag"]


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


def _names(s: str) -> tuple[str, ...]:
    return tuple(s.split(","))


def flag(parameter: str) -> str:
    """The option that sets a library parameter: ``batch_size`` -> ``--batch-size``."""
    return "--" + parameter.replace("_", "-")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: what was wrong, and where to look."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Devices:
    """The --device choices: auto, cpu, cuda, and cuda:N for one GPU of several."""

    def __contains__(self, value: object) -> bool:
        v = str(value)
        return v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())

    def __iter__(self):
        return iter(("auto", "cpu", "cuda", "cuda:N"))


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for every ``glassnet`` subcommand."""
    from glassnet.estimators import (
        COMMON,
        FOLDS,
        KEEPS,
        MODELS,
        PRESETS,
        SEARCHES,
        ClassificationConfig,
        RegressionConfig,
    )
    from glassnet.models import ACTIVATIONS

    lenet_best = PRESETS["lenet5"]["best"]  # the help's preset values: read, never copied
    from glassnet.search.studies import PRUNERS
    from glassnet.training import PRECISIONS

    p = _Parser(
        prog="glassnet",
        description="Train small neural nets, tune them with cross-validated search, look inside.",
    )
    from glassnet import __version__

    p.add_argument("--version", action="version", version=f"glassnet {__version__}")
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
    m.add_argument("--activation", choices=tuple(ACTIVATIONS), help="default: tanh")
    s = r.add_argument_group("search and training")
    s.add_argument(
        "--search",
        choices=tuple(SEARCHES),
        help="; ".join(f"{name}: {kind.help}" for name, kind in SEARCHES.items()),
    )
    e = r.add_argument_group("--search deep-ensemble (the default)")
    reg = RegressionConfig()  # the defaults shown are the config's own, never copied here
    e.add_argument("--members", type=_int,
                   help=f"nets averaged, one seed each (default: {reg.members})")
    e.add_argument("--adam-lr", type=_float,
                   help=f"Adam's learning rate (default: {reg.adam_lr})")
    e.add_argument("--penalty", type=_float,
                   help=f"L2 penalty (Adam's weight decay; default: {reg.penalty}), the "
                   "members' geometric mean")
    e.add_argument("--penalty-spread", type=_float, metavar="DECADES",
                   help="the members' penalties log-spaced over DECADES around --penalty "
                   f"(0: all the same; default: {reg.penalty_spread})")
    e.add_argument("--keep-members", type=_int, metavar="K",
                   help="after training, keep the K members of highest Laplace evidence, "
                   f"which chooses among their penalties (0: all; default: {reg.keep_members})")
    e.add_argument("--ensemble-epochs", type=_int,
                   help=f"epochs per member (default: {reg.ensemble_epochs})")
    e.add_argument("--band-scale", type=_float, metavar="K",
                   help="widen the band (mean +- 2 std) by K, a calibration "
                   f"(default: {reg.band_scale})")  # fmt: skip
    s.add_argument(
        "--n-iter",
        type=_int,
        help="random candidates (default: 8 for ensemble, the study's 20 for population/random)",
    )
    s.add_argument("--cv", type=_int, help="cross-validation folds (default: 5)")
    s.add_argument(
        "--folds",
        choices=FOLDS,
        help="ensemble search: folds of neighbouring points (blocked, default) or shuffled",
    )
    s.add_argument(
        "--max-epochs", type=_int, help="ensemble, tpe: epoch cap per candidate (default 1000)"
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
    t = r.add_argument_group("--search tpe (Optuna)")
    t.add_argument("--n-trials", type=_int, help="trials this process runs (default 30; 0: "
                   "refit the best trial of an existing study)")  # fmt: skip
    t.add_argument("--trial-batch", type=_int, help="trials trained together (default 6)")
    t.add_argument("--trial-patience", type=_int, metavar="CHECKS",
                   help="a trial not improving for CHECKS checks (every 10 epochs) ends "
                   f"complete (0: never; default {reg.trial_patience})")  # fmt: skip
    t.add_argument("--pruner", choices=PRUNERS, help="default: halving (successive halving)")
    t.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage (default: the journal file RUN/optuna.log): a database URL, e.g. "
        "postgresql://user@host/db, or a journal file, e.g. study.log (several processes on "
        "one machine); processes given the same storage and --study-name share one study, "
        "and a dead worker's trials are asked again",
    )
    t.add_argument("--study-name", help="default: glassnet-regression")
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
        "--model", default="mlp", choices=MODELS, help="mlp (784-256-512-256-10) or lenet5"
    )
    c.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder with the four IDX files, directly or under mnist/ "
        "(default: $GLASSNET_DATA, the download cache, else a 5,000-image sample)",
    )
    c.add_argument(
        "--class-names", metavar="NAMES", type=_names, help="comma-separated class names"
    )
    c.add_argument("--hidden", type=_int, nargs="+", default=[256, 512, 256], metavar="W")
    c.add_argument(
        "--preset",
        default="default",
        choices=tuple(PRESETS["mlp"]),
        help="default: learns fast (a good model in a few epochs); best: longer training on "
        "shifted, rotated and zoomed digits (LeNet-5 ~7 min, dense net ~5 min on two cores). "
        "Options given below override the preset",
    )
    c.add_argument(
        "--dropout", type=_float,
        help=f"dropout probability (preset: {PRESETS['mlp']['default']['dropout']:g}; lenet5 "
        f"{PRESETS['lenet5']['default']['dropout']:g})",
    )
    c.add_argument(
        "--lr", type=_float,
        help=f"Adam's peak learning rate (preset: {PRESETS['mlp']['default']['lr']:g} mlp, "
        f"{PRESETS['lenet5']['default']['lr']:g} lenet5)",
    )
    c.add_argument("--epochs", type=_int, help="epochs (preset default: 10)")
    c.add_argument(
        "--lr-schedule",
        default="cosine",
        choices=("cosine", "none"),
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
    c.add_argument(
        "--elastic",
        type=_float,
        metavar="ALPHA",
        help="... and bend strokes: elastic distortion of strength ALPHA pixels (default "
        f"{COMMON['elastic']:g}; lenet5 best {lenet_best['elastic']:g})",
    )
    c.add_argument(
        "--elastic-sigma",
        type=_float,
        default=ClassificationConfig.elastic_sigma,  # the config's own, never copied here
        metavar="PX",
        help="smoothness of the elastic distortion (default "
        f"{ClassificationConfig.elastic_sigma:g}, as Simard et al. 2003)",
    )
    c.add_argument(
        "--batch-size", type=_int,
        help=f"preset: {COMMON['batch_size']}; lenet5 default "
        f"{PRESETS['lenet5']['default']['batch_size']}",
    )
    c.add_argument(
        "--betas", type=_float, nargs=2, metavar=("B1", "B2"), help="Adam's decay rates"
    )
    c.add_argument(
        "--label-smoothing",
        type=_float,
        metavar="F",
        help="spread this fraction of each target over all classes (preset: "
        f"{COMMON['label_smoothing']:g}; lenet5 default "
        f"{PRESETS['lenet5']['default']['label_smoothing']:g})",
    )
    c.add_argument(
        "--keep",
        choices=KEEPS,
        help="the weights the run keeps: best (the epoch validation scores best) or last (the "
        f"last epoch's); preset: {COMMON['keep']}, lenet5 best {lenet_best['keep']}",
    )
    c.add_argument(
        "--precision",
        default="float32",
        choices=PRECISIONS,
        help="float32 (default) or bfloat16: train with bfloat16 arithmetic where the CPU/GPU "
        "has it natively (on AVX512-BF16: dense-net epochs ~25%% faster, LeNet-5 ~10%%); "
        "the test and predict stay float32",
    )
    c.add_argument(
        "--val-fraction",
        type=_float,
        metavar="F",
        help="hold out this fraction of the training images to validate each epoch (and "
        f"choose it, with --keep best); preset: {COMMON['val_fraction']:g}, the study's; "
        f"lenet5 best {lenet_best['val_fraction']:g}",
    )
    c.add_argument(
        "--search",
        default="none",
        choices=("none", "grid", "tpe"),
        help="grid: the study's grid (mlp only); tpe: Optuna searches lr, dropout, batch size "
        "and epochs, pruning by validation accuracy per epoch",
    )
    ct = c.add_argument_group("--search tpe (Optuna)")
    ct.add_argument("--n-trials", type=_int, default=12, help="trials this process runs (12)")
    ct.add_argument("--pruner", choices=PRUNERS, default="halving")
    ct.add_argument("--storage", metavar="URL",
                    help="default: the journal file RUN/optuna.log; or postgresql://..., or "
                    "sqlite:///study.db, or another journal file (study.log)")  # fmt: skip
    ct.add_argument("--study-name", help="default: glassnet-classify-<model>")
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
    _common(rr, figures=False)

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
    ex = sub.add_parser(
        "export",
        help="write a run's model as one ONNX or TorchScript file, to use without glassnet",
        description="Regression: x (batch, 1) -> y (batch, 1), data units, the ensemble's "
        "scaling and mean included. Classification: pixels (batch, 1, 28, 28), 0-255 -> class "
        "probabilities. The file is checked against the run's own predictions before it is kept.",
    )
    ex.add_argument("run_dir", metavar="RUN_DIR")
    ex.add_argument("--format", default="onnx", choices=["onnx", "torchscript"])
    ex.add_argument("-o", "--output", metavar="FILE",
                    help="default: RUN_DIR/model.onnx (or model.pt for torchscript)")  # fmt: skip
    re = sub.add_parser(
        "rerun",
        help="run again with a finished run's config.json (same settings, same seed)",
    )
    re.add_argument("run_dir", metavar="RUN_DIR")
    re.add_argument("--out", metavar="DIR", help="new run folder (default: runs/<UTC time>-<kind>)")
    _output(re)
    rs = sub.add_parser(
        "resume",
        help="continue an interrupted run (Ctrl-C, a kill, a full disk) where it stopped",
        description="Continues from the last checkpoint (classify: the last finished epoch; "
        "grid search: finished pairs are kept; reproduce: finished experiments are kept; "
        "regression: its search starts again). Ends as the uninterrupted run would have.",
    )
    rs.add_argument("run", metavar="OUT", help="the run's --out, or the .partial folder it left")
    _output(rs)
    return p


def _output(p: Any) -> None:  # a parser or an argument group
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the end-of-run summary as one JSON object on stdout (progress and notes "
        "go to stderr)",
    )


def _common(p: argparse.ArgumentParser, figures: bool = True) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=_int, default=0, help="one seed for everything")
    g.add_argument(
        "--device", default="auto", choices=_Devices(), help="auto (a GPU if present), cpu, cuda"
    )
    g.add_argument("--out", metavar="DIR", help="run folder (default: runs/<UTC time>-<kind>)")
    _output(g)
    if figures:  # reproduce has none: its report is its figures
        g.add_argument("--no-figures", dest="figures", action="store_const", const=False,
                       help="draw no PNGs: metrics, weights and history only (a sweep's runs; "
                       "the report shows their numbers)")  # fmt: skip
