"""Build one self-contained HTML report (images inlined) from one or more run folders."""

from __future__ import annotations

import base64
import csv
import html
from pathlib import Path
from string import Template
from typing import Any

from glassnet.errors import UserError
from glassnet.formatting import fmt
from glassnet.report.captions import CAPTIONS
from glassnet.results import ClassificationMetrics, RegressionMetrics, metrics_from_json
from glassnet.runs import atomic_write, read_json, software_versions
from glassnet.study_numbers import STUDY

__all__ = ["build_report", "STUDY", "software_versions"]

# The study's own numbers, shown beside ours.
_LOWER_IS_BETTER = {"train_mse", "test_mse", "cv_mse"}
_FIGURE_ORDER = list(CAPTIONS)
DATA_FIGURES = ("training_batch.png",)  # shown in the data section, beside the data's table


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _table(rows: list[tuple[str, Any]], header: tuple[str, str] = ("", "")) -> str:
    head = f"<tr><th>{_e(header[0])}</th><th>{_e(header[1])}</th></tr>" if any(header) else ""
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(fmt(v))}</td></tr>" for k, v in rows)
    return f"<table>{head}{body}</table>"


def _csv_table(path: Path, limit: int = 10, drop: tuple[str, ...] = ("params",)) -> str:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return ""
    cols = [c for c in rows[0] if c not in drop and not c.startswith("split")]
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = []
    for r in rows[:limit]:
        cells = []
        for c in cols:
            v = r[c]
            try:
                v = fmt(float(v)) if "." in v or "e" in v.lower() else v
                cls = ' class="num"'
            except ValueError:
                cls = ""
            cells.append(f"<td{cls}>{_e(v if v != '' else 'failed')}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p>Top {limit} of {len(rows)} candidates.</p>" if len(rows) > limit else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(path.stem)}">'


def _run_key(cfg: dict) -> str:
    return cfg.get("model", "regression") if cfg.get("kind") == "classification" else "regression"


def _comparison(key: str, m: Any, study: dict | None, same_data: bool = True) -> str:
    if not study or key not in study:
        return ""
    if not same_data:
        return (
            "<h3>Compared with the study</h3><p class='note'>Not compared: this run used "
            "other data than the study's (see Data), so its numbers are not comparable.</p>"
        )
    rows = []
    for metric, theirs in study[key].items():
        ours = getattr(m, metric, None)
        if ours is None:
            continue
        better = ours < theirs if metric in _LOWER_IS_BETTER else ours > theirs
        pct = "accuracy" in metric
        f = (lambda v: f"{v:.2%}") if pct else (lambda v: f"{v:.3f}")
        cls = "better" if better else "worse"
        rows.append(
            f"<tr><th>{_e(metric)}</th><td class='num'>{f(theirs)}</td>"
            f"<td class='num {cls}'>{f(ours)}</td></tr>"
        )
    if not rows:
        return ""
    return (
        "<h3>Compared with the study</h3><table><tr><th>metric</th><th>study</th>"
        "<th>glassnet</th></tr>" + "".join(rows) + "</table>"
    )


def _regression_title(cfg: dict) -> str:
    widths = "-".join(str(h) for h in cfg.get("hidden", (512, 256)))
    how = {
        "deep-ensemble": "mean of nets from different seeds, Adam (glassnet's default)",
        "ensemble": "mean of SGD fold models",
        "population": "the study's random search, one refit net",
        "random": "the study's random search, one refit net",
        "grid": "grid search, one refit net",
        "none": "one net, fixed settings",
    }.get(cfg.get("search", ""), cfg.get("search", ""))
    return f"Regression: MLP 1-{widths}-1, {cfg.get('activation', 'tanh')}; {how}"


def _regression_only_for() -> dict[str, set[str]]:
    """Each regression setting that not every search uses: the searches that do (the registry
    ``estimators.SEARCHES`` says which)."""
    from glassnet.estimators import SEARCHES

    out: dict[str, set[str]] = {}
    for name, kind in SEARCHES.items():
        for f in kind.fields:
            out.setdefault(f, set()).add(name)
    return out


# Settings that only some searches (or models) use; the others always apply.
_ONLY_FOR = {
    "regression": _regression_only_for(),
    "classification": {  # the grid chooses lr, dropout and epochs itself
        "lr": {"none"},
        "dropout": {"none"},
        "epochs": {"none"},
        "lr_schedule": {"none"},
        "warmup": {"none"},
        "grid_lr": {"grid"},
        "grid_dropout": {"grid"},
        "grid_epochs": {"grid"},
    },
}


def _applied(cfg: dict) -> set[str]:
    """The configuration keys that applied to this run (a search ignores the others)."""
    search = cfg.get("search")
    only = _ONLY_FOR.get(cfg.get("kind", "regression"), {})
    keys = {k for k in cfg if k not in only or search in only[k]}
    if cfg.get("model") == "lenet5":
        keys.discard("hidden")  # the dense net's widths
    return keys


def _other_data(m: RegressionMetrics | ClassificationMetrics) -> bool:
    """True when a run's data differ from the study's (generated, or a sample of MNIST)."""
    return m.data.generated or m.data.partial()


def _section(run: Path, idx: int, study: dict | None) -> tuple[str, str, str]:
    """One run's section of the report, its link, and its row of the summary table."""
    cfg = read_json(run / "config.json")
    try:
        m = metrics_from_json(read_json(run / "metrics.json"))
    except (ValueError, TypeError) as e:
        raise UserError(f"{run / 'metrics.json'}: {e}; the run folder is damaged") from None
    key = _run_key(cfg)
    title = {
        "regression": _regression_title(cfg),
        "mlp": "MNIST: dense net",
        "lenet5": "MNIST: LeNet-5",
    }.get(key, key)
    anchor = f"run{idx}"
    parts = [
        f'<section class="run" id="{anchor}"><h2>{_e(title)}</h2>',
        f"<p>Run folder: <code>{_e(run.name)}</code></p>",
    ]
    notes = list(getattr(m, "notes", []))
    if isinstance(m, RegressionMetrics) and m.data.generated:
        notes.append(
            "No data folder was given, so generated data was used (the embedded "
            "default); see --data-dir."
        )
    parts += [f'<p class="note">{_e(n)}</p>' for n in notes]
    data_rows, headline, ours, source = (
        _regression_rows(m) if key == "regression" else _classification_rows(m)
    )
    parts.append(
        '<div class="grid"><div><h3>Data</h3>'
        + _table(data_rows)
        + _data_figure(run)
        + "<h3>Results</h3>"
        + _table(headline)
        + _comparison(key, m, study, same_data=not _other_data(m))
        + "</div><div><h3>Configuration</h3>"
        + _table([(k, v) for k, v in cfg.items() if v is not None and k in _applied(cfg)])
        + "</div></div>"
    )
    parts += _tables_and_figures(run, m)
    parts.append("</section>")
    link = f'<a href="#{anchor}">{_e(title)}</a>'
    row = (
        f"<tr><td>{link}</td><td>{_e(source)}</td><td>{_e(ours)}</td>"
        + (f"<td>{_e(_study_text(study, key))}</td>" if study else "")
        + f"<td class='num'>{_e(fmt(m.seconds))}</td></tr>"
    )
    return "\n".join(parts), link, row


def _regression_rows(m: RegressionMetrics) -> tuple[list, list, str, str]:
    """Data rows, result rows, the summary's result text and data source of a regression run."""
    data_rows = [
        ("source", m.data.source),
        ("train / test points", f"{m.data.n_train} / {m.data.n_test}"),
    ]
    headline = [
        ("search", m.search),
        ("best parameters", m.best_params),
        ("CV MSE", m.cv_mse if m.cv_mse is not None else "n/a (no search)"),
        ("train MSE", m.train_mse),
        ("test MSE", m.test_mse),
        ("Gaussian process test MSE (baseline)", m.baseline_gp_test_mse),
    ]
    if m.band_coverage is not None:
        headline.append(
            (
                "test points within mean +- 2 std: fold models / Gaussian process",
                f"{m.band_coverage:.0%} / {m.baseline_gp_band_coverage:.0%}",
            )
        )
    if m.fold_std_in_gaps is not None:
        headline.append(
            (
                "fold-model spread (std) in gaps / elsewhere",
                f"{m.fold_std_in_gaps:.3f} / {m.fold_std_elsewhere:.3f}",
            )
        )
    ours = f"train MSE {m.train_mse:.3f}, test MSE {m.test_mse:.3f}"
    ours += f" (Gaussian process: {m.baseline_gp_test_mse:.3f})"
    source = "generated (embedded)" if m.data.generated else m.data.source
    return data_rows, headline, ours, source


def _classification_rows(m: ClassificationMetrics) -> tuple[list, list, str, str]:
    """Data rows, result rows, the summary's result text and data source of a classifier."""
    d = m.data
    data_rows = [
        ("source", d.source),
        ("fit / validation / test", f"{d.n_fit} / {d.n_val} / {d.n_test}"),
        ("classes", d.classes),
    ]
    confused = ", ".join(f"{c['true']}->{c['predicted']} ({c['count']})" for c in m.most_confused)
    headline = [
        ("parameters", m.best_params),
        ("best epoch", f"{m.best_epoch} of {m.epochs_run}"),
        ("validation accuracy", f"{m.val_accuracy:.2%}"),
        ("test accuracy", f"{m.test_accuracy:.2%}"),
        ("most confused", confused),
    ]
    return data_rows, headline, f"test accuracy {m.test_accuracy:.2%}", d.source


def _data_figure(run: Path) -> str:
    """The data section's picture, where the run drew one: what training saw."""
    found = [run / n for n in DATA_FIGURES if (run / n).is_file()]
    return "".join(
        f"<figure>{_img(p)}<figcaption>{_e(CAPTIONS[p.name])}</figcaption></figure>" for p in found
    )


def _tables_and_figures(run: Path, m: RegressionMetrics | ClassificationMetrics) -> list[str]:
    """Search tables, every figure with its caption, timing and software of a run."""
    parts = []
    for name, label in (
        ("cv_results.csv", "Search results (cross-validation, best first)"),
        ("grid_results.csv", "Grid search on the validation split, best first"),
        ("trials.csv", "Optuna's trials (validation accuracy; a pruned trial's best before it "
                       "was stopped)"),
    ):  # fmt: skip
        if (run / name).exists() and (run / name).stat().st_size:
            parts.append(f"<h3>{_e(label)}</h3>" + _csv_table(run / name))
    rank = {name: i for i, name in enumerate(_FIGURE_ORDER)}
    pngs = sorted((p for p in run.glob("*.png") if p.name not in DATA_FIGURES),
                  key=lambda p: (rank.get(p.name, len(rank)), p.name))  # fmt: skip
    search = [p for p in pngs if p.name.startswith("search_")]
    if search:  # the search's own views, together under their heading, before the model's
        parts.append("<h3>The search</h3>")
    for p in search + [p for p in pngs if p not in search]:
        caption = CAPTIONS.get(p.name, p.stem.replace("_", " "))
        parts.append(f"<figure>{_img(p)}<figcaption>{_e(caption)}</figcaption></figure>")
    timing: list[tuple[str, Any]] = [("total seconds", m.seconds)]
    if isinstance(m, ClassificationMetrics):
        timing += [("seconds per epoch", m.seconds_per_epoch), ("device", m.device)]
    parts.append("<h3>Timing</h3>" + _table(timing))
    env = run / "environment.json"
    if env.exists():
        parts.append("<h3>Software</h3>" + _table(list(read_json(env).items())))
    return parts


def _study_text(study: dict | None, key: str) -> str:
    if not study or key not in study:
        return ""
    return ", ".join(
        f"{k.replace('_', ' ')} {v:.2%}" if "accuracy" in k else f"{k.replace('_', ' ')} {v:.3f}"
        for k, v in study[key].items()
    )


def build_report(
    run_dirs: list[str | Path],
    out: str | Path,
    study: dict | None = None,
    title: str = "glassnet report",
) -> Path:
    """Write one self-contained HTML file describing ``run_dirs``; return its path."""
    if not run_dirs:
        raise UserError("give at least one run folder")
    out = Path(out)
    _check_overwrite(out)  # before the work: never replace what glassnet did not write
    sections, nav, summary = [], [], []
    for i, r in enumerate(run_dirs):
        run = Path(r)
        if not run.is_dir():
            raise UserError(f"RUN_DIR {run}: not a folder")
        s, n, line = _section(run, i, study)
        sections.append(s)
        nav.append(n)
        summary.append(line)
    versions = ", ".join(f"{k} {v}" for k, v in software_versions().items())
    page = Template((Path(__file__).parent / "template.html").read_text()).substitute(
        title=_e(title),
        subtitle=_e(f"{len(run_dirs)} run(s); every figure is embedded in this file."),
        nav="".join(nav),
        summary="<h2>Summary</h2><table><tr><th>experiment</th><th>data</th><th>glassnet</th>"
        + ("<th>the study</th>" if study else "")
        + "<th>seconds</th></tr>"
        + "".join(summary)
        + "</table>",
        sections="\n".join(sections),
        footer=_e(f"Made by glassnet. Report built with {versions}."),
    )
    try:
        atomic_write(out, page.encode("utf-8"))  # never a half-written report under its name
    except OSError as e:
        raise UserError(f"-o {out}: cannot write ({e.strerror})") from None
    return out


_GENERATOR = '<meta name="generator" content="glassnet">'  # marks the reports glassnet wrote


def _check_overwrite(out: Path) -> None:
    """Refuse an ``-o`` that exists and is not a report glassnet wrote (a run's config.json,
    a folder, a symbolic link, anyone's HTML)."""
    if not (out.exists() or out.is_symlink()):
        return
    ours = False
    if out.is_file() and not out.is_symlink():
        with open(out, "rb") as f:
            ours = _GENERATOR.encode() in f.read(4096)
    if not ours:
        raise UserError(f"-o {out}: exists and is not a report glassnet wrote; refusing to "
                        "overwrite it (choose another name)")  # fmt: skip
