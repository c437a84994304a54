"""``analyze``: one or several run folders to ``results.csv``, ``results.parquet``, PNG plots and a
Markdown report that states the answers in sentences (layout of the report in :func:`analyze`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas._yaml import read_text
from nas.errors import ConfigError
from nas.io import MAX_RECORD_BYTES, atomic_write_bytes, atomic_write_text
from nas.results._load import PARAM_PREFIX, PROXY_PREFIX, TABLE_PREFIX, _as_dirs, load, load_history
from nas.results._summary import (accuracy_column, best, best_seed, budget, candidates, cost_column,
                                  importances, pareto_front)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Analysis", "analyze"]


@dataclass(frozen=True)
class Analysis:
    """What :func:`analyze` wrote.

    Attributes:
        out: The output folder.
        files: Every file written (CSV, Parquet, the best architecture's SVG, PNGs, report.md),
            in that order.
        notes: What could not be done, one sentence each (also in the report).
        frame: The loaded trials.
    """

    out: Path
    files: list[Path]
    notes: list[str] = field(default_factory=list)
    frame: Any = None


# --------------------------------------------------------------------------- formatting


def _num(value: Any, *, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    try:
        import pandas as pd

        if pd.isna(value):
            return "–"
    except (TypeError, ValueError):
        pass
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (hasattr(value, "is_integer") and float(value).is_integer()
                                  and abs(float(value)) >= 1000):
        return _si(int(value))
    if isinstance(value, float) or hasattr(value, "__float__"):
        return f"{float(value):.{digits}g}"
    return str(value)


def _si(n: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def _points(col: str, delta: float) -> str:
    """A difference of accuracies in percentage points."""
    scale = 100.0 if col in ("val_accuracy", "best_val_accuracy") else 1.0
    return f"{delta * scale:+.2f} points"


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    def cell(v: Any) -> str:
        return (v if isinstance(v, str) else _num(v)).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _inert(text: str) -> str:
    """``text`` from a run folder, made to show as written in Markdown: no HTML tag (``<`` and
    ``>`` as entities) and no link or image (``](`` escaped); a search's own values hold none."""
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("](", "]\\(")


def _choices(row: pd.Series) -> str:
    """The trial's parameters, ``name=value, ...`` (a damaged record's HTML or links made inert)."""
    parts = []
    for key, value in row.items():
        if str(key).startswith(PARAM_PREFIX) and not _missing(value):
            parts.append(_inert(f"{key[len(PARAM_PREFIX):]}={value}"))
    return ", ".join(parts)


def _who(row: pd.Series, *, several: bool) -> str:
    run = f" of run {row['run']}" if several else ""
    seed = f" (seed {row['seed']})" if row["is_seed"] else ""
    return f"trial {int(row['number'])}{run}{seed}"


def _costs(row: pd.Series, skip: Sequence[str] = ()) -> str:
    parts = [f"{_num(row[c])} {c}" for c in ("params", "macs")
             if c in row and c not in skip and not _missing(row[c])]
    return ", ".join(parts)


def _short(text: Any) -> str:
    """A hex hash cut to 16 characters; other keys (NAS-Bench-201 cells) whole."""
    text = str(text)
    return text[:16] if all(c in "0123456789abcdef" for c in text) else text


def _missing(value: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


# --------------------------------------------------------------------------- report sections


def _best_section(frame: pd.DataFrame, several: bool, out: Path, files: list[Path],
                  notes: list[str]) -> list[str]:
    """The best trial of each run, with a picture of its architecture (``best.svg``, or
    ``best-RUN.svg`` for several runs; a Mermaid block when Graphviz is not installed)."""
    lines = ["## Best architecture", ""]
    accuracy, cost = accuracy_column(frame), cost_column(frame)
    for run in dict.fromkeys(frame["run"]):
        part = frame[frame["run"] == run]
        part.attrs = dict(frame.attrs, **{k: frame.attrs["runs"][run][k]
                                           for k in ("objectives", "directions")})
        top = best(part)
        if top.empty:
            lines += [f"Run {run} has no complete trial yet.", ""]
            continue
        row = top.iloc[0] if len(part.attrs["objectives"]) == 1 else \
            top.sort_values(accuracy or part.attrs["objectives"][0], ascending=False).iloc[0]
        objectives = part.attrs["objectives"]
        values = ", ".join(f"{o} {_num(row[o])}" for o in objectives)
        costs = _costs(row, objectives)
        which = "The best architecture" if len(objectives) == 1 else \
            "The most accurate member of the Pareto set"
        lines.append(f"{which}{' of run ' + run if several else ''} is **trial {int(row['number'])}**"
                     f"{' (seed ' + str(row['seed']) + ')' if row['is_seed'] else ''}: {values}"
                     f"{'; ' + costs if costs else ''}. "
                     f"Its choices: {_choices(row) or 'the defaults'}; genotype file "
                     f"`{row['genotype_path']}` (hash `{_short(row['hash'])}`).")
        table = [(c[len(TABLE_PREFIX):], row[c]) for c in row.index
                 if str(c).startswith(TABLE_PREFIX) and not _missing(row[c])]
        if table:
            lines.append("Its table values (the first is the optimised column, the others are "
                         "reported only): " + ", ".join(f"{c} {_num(v)}" for c, v in table) + ".")
        if accuracy is not None and not _missing(row[accuracy]):
            lines.append(_margin_sentence(part, row, accuracy, cost))
        lines.append("")
        lines += _picture(row, out / (f"best-{run}.svg" if several else "best.svg"), files, notes)
    return lines


def _picture(row: pd.Series, path: Path, files: list[Path], notes: list[str]) -> list[str]:
    """Markdown showing the trial's architecture: an SVG written to ``path``, or a Mermaid
    block when Graphviz's ``dot`` is missing; nothing (and a note) without a genotype file."""
    from nas.drawing import render
    from nas.errors import NasError
    from nas.genotype import load_genotype

    source = row.get("genotype_path")
    if _missing(source) or not Path(source).is_file():
        notes.append(f"trial {int(row['number'])}: no genotype file to draw")
        return []
    try:
        graph = load_genotype(source).graph
    except NasError as error:
        notes.append(f"trial {int(row['number'])}: genotype not drawn: {error}")
        return []
    from nas.plugins import loaded_plugins

    flags = "".join(f" --plugin {p}" for p in loaded_plugins() if not p.startswith("entry-point:"))
    caption = (f"Trial {int(row['number'])}, blocks collapsed (`nas graph {source} --depth 1{flags}` "
               "opens them)")
    try:
        atomic_write_bytes(path, render(graph, "svg"))
    except NasError as error:  # no Graphviz: Mermaid renders in GitHub and most Markdown viewers
        notes.append(f"{path.name} not drawn ({error}); the picture is Mermaid text")
        return [caption + ":", "", "```mermaid", render(graph, "mermaid").decode().rstrip(), "```", ""]
    files.append(path)
    return [f"![{caption}]({path.name})", ""]


def _prescreen_sentence(run_dir: Path) -> str | None:
    """What pre-screening did and cost, from ``prescreen.json`` (``None`` without one)."""
    from nas.io import read_json_object

    p, _ = read_json_object(run_dir / "prescreen.json")  # never blocks, never raises
    if p is None:
        return None
    try:
        stages = (f"{'+'.join(p['shortlist'])}, the best {p['kept']} of them with "
                  if p.get("shortlist") else "")
        return (f"Pre-screening scored {p['candidates']} random candidates with {stages}"
                f"{'+'.join(p['proxy'])} in {float(p['seconds']):.1f} s and enqueued the top "
                f"{p['top']} {'before' if p.get('first') else 'right after'} the seeds.")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _proxy_section(frame: pd.DataFrame) -> list[str]:
    """Rank correlation of every recorded zero-cost proxy with the accuracies, over the
    completed trials that were evaluated (not duplicates) and have the proxy's score."""
    proxies = [c for c in frame.columns if str(c).startswith(PROXY_PREFIX)]
    if not proxies:
        return []
    from nas.proxies import kendall, spearman  # imports torch: only for runs that scored proxies

    targets = [c for c in (accuracy_column(frame), *(c for c in frame.columns
               if str(c).startswith(TABLE_PREFIX))) if c is not None and frame[c].notna().any()]
    done = frame[(frame["state"] == "complete") & frame["duplicate_of"].isna()]
    lines = ["## Zero-cost proxies", "",
             "Rank correlation of each recorded proxy score with the accuracies of the evaluated "
             "trials (Spearman rho / Kendall tau; a NaN score ranks last).", ""]
    rows = []
    for proxy in proxies:
        row = {"proxy": proxy[len(PROXY_PREFIX):], "trials": str(len(done)),
               "NaN": str(int(done[proxy].isna().sum()))}
        for target in targets:
            ok = done[done[target].notna()]
            x, y = ok[proxy].to_numpy(dtype=float), ok[target].to_numpy(dtype=float)
            row[target] = f"{spearman(x, y):.3f} / {kendall(x, y):.3f}" if len(ok) > 2 else "n/a"
        rows.append(row)
    return lines + [_table(rows, ["proxy", "trials", "NaN", *targets]), ""]


def _margin_sentence(frame: pd.DataFrame, row: pd.Series, accuracy: str, cost: str | None) -> str:
    seed, cheap = best_seed(frame, row, accuracy, cost)
    if seed is None:
        return "No seed finished, so there is no hand-designed baseline to compare with."
    if row["is_seed"] and int(seed["number"]) == int(row["number"]):
        return (f"It is the hand-designed seed {row['seed']} itself: no searched architecture at "
                f"equal or lower cost beat it.")
    delta = float(row[accuracy]) - float(seed[accuracy])
    seed_desc = (f"seed {seed['seed']} (trial {int(seed['number'])}: {accuracy} "
                 f"{_num(seed[accuracy])}{', ' + _num(seed[cost]) + ' ' + cost if cost and not _missing(seed[cost]) else ''})")
    if cheap:
        ratio = ""
        if cost and not _missing(seed[cost]) and float(seed[cost]) > 0:
            ratio = f" at {float(row[cost]) / float(seed[cost]):.2f}x the seed's {cost}"
        return (f"Its margin over the best seed at equal or lower cost, {seed_desc}, is "
                f"**{_points(accuracy, delta)}**{ratio}.")
    if cost is None:
        return (f"Its margin over the best seed, {seed_desc}, is **{_points(accuracy, delta)}** "
                "(the run records no params or MACs, so costs are not compared).")
    return (f"Every seed costs more {cost} than it; against the best seed, {seed_desc}, its "
            f"margin is **{_points(accuracy, delta)}** at "
            f"{float(row[cost]) / float(seed[cost]):.2f}x the seed's {cost}.")


def _pareto_section(frame: pd.DataFrame, several: bool) -> tuple[list[str], list[str]]:
    lines, notes = ["## Pareto set", ""], []
    objectives, directions = frame.attrs.get("objectives"), frame.attrs.get("directions")
    accuracy, cost = accuracy_column(frame), cost_column(frame)
    if objectives and len(objectives) > 1:
        over, dirs = list(objectives), list(directions)
    elif accuracy is not None and cost is not None:
        over, dirs = [accuracy, cost], ["maximize", "minimize"]
    else:
        notes.append("no Pareto set: the runs record one objective and no params or MACs "
                     "(a tabular run looks accuracies up without building the model)")
        return lines + [f"No Pareto set: {notes[-1]}.", ""], []
    front = pareto_front(frame, over, dirs)
    lines.append(f"{len(front)} of {len(candidates(frame, over))} trained architectures are "
                 f"Pareto-optimal over {' and '.join(f'{o} ({d[:3]})' for o, d in zip(over, dirs))}; "
                 f"{int(front['is_seed'].sum())} of them are seeds.")
    lines.append("")
    shown = [*(["run"] if several else []), "trial", "seed", *over,
             *[c for c in ("params", "macs") if c not in over and frame[c].notna().any()], "choices"]
    rows = [{**{c: r[c] for c in shown if c in r.index}, "trial": str(int(r["number"])),
             "seed": str(r["seed"]) if r["is_seed"] else "", "choices": _choices(r)}
            for _, r in front.iterrows()]
    lines += [_table(rows, shown), ""]
    return lines, notes


def _budget_section(frame: pd.DataFrame) -> list[str]:
    table = budget(frame)
    total = len(frame)
    time_total = float(table["wall_time"].sum()) or 1.0
    parts = [f"{r.trials} {r.category} ({r.trials / total:.0%} of trials, "
             f"{r.wall_time / time_total:.0%} of the wall time)" for r in table.itertuples()]
    sentence = f"Of {total} trials, " + "; ".join(parts) + "."
    unreadable = frame[frame["status"] == "unreadable"]
    if not unreadable.empty:
        sentence += (f" {len(unreadable)} trial(s) have an unreadable metrics file and are left "
                     f"out of the answers above: {', '.join(str(n) for n in unreadable['number'])}.")
    rows = [{"where": r.category, "trials": str(r.trials), "wall time (s)": f"{r.wall_time:.1f}",
             "end reasons": r.statuses} for r in table.itertuples()]
    return ["## Where the budget went", "", sentence, "",
            _table(rows, ["where", "trials", "wall time (s)", "end reasons"]), ""]


def _importance_section(values: Mapping[str, Mapping[str, Mapping[str, float]]], notes: Sequence[str],
                        image: Path | None) -> list[str]:
    lines = ["## Parameter importances", ""]
    for run, per in values.items():
        for objective, imp in per.items():
            top = list(imp.items())[:3]
            named = ", ".join(f"{k} ({v:.2f})" for k, v in top)
            lines.append(f"For {objective}{' in run ' + run if len(values) > 1 else ''}, the most "
                         f"important parameters (Optuna's fANOVA, summing to 1) are {named}.")
    for note in notes:
        lines.append(f"Note: {note}.")
    if image is not None:
        lines += ["", f"![parameter importances]({image.name})"]
    return lines + [""]


# --------------------------------------------------------------------------- entry point


def _retrain_section(dirs: Sequence[Path], out: Path) -> list[str]:
    """The section ``nas retrain`` wrote (``RUN/retrain/retrain.md``), for a report written
    into that run folder; its links are relative to the run folder. Control characters (an
    escape sequence in a damaged file, which a terminal showing the report would obey) become
    U+FFFD; the section's own Markdown is kept."""
    lines: list[str] = []
    for run_dir in dirs:
        path = run_dir / "retrain" / "retrain.md"
        if path.is_file() and out.resolve() == run_dir.resolve():
            try:
                text = read_text(path, limit=MAX_RECORD_BYTES, error=ConfigError)
            except ConfigError:  # damaged: the report goes on without the section
                continue
            lines += _CONTROLS.sub("\ufffd", text).splitlines() + [""]
    return lines


_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 and C1 controls but tab and newline


def _default_out(dirs: Sequence[Path]) -> Path:
    if len(dirs) == 1:
        return dirs[0]
    return dirs[0].parent / ("compare-" + "-".join(d.name for d in dirs))


def _write_tables(frame: pd.DataFrame, out: Path, notes: list[str]) -> list[Path]:
    csv = out / "results.csv"
    atomic_write_text(csv, frame.to_csv(index=False))
    files = [csv]
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        notes.append("results.parquet not written: pyarrow is not installed")
        return files
    import io

    table = frame.copy()
    table.attrs = {}
    for col in table.columns[table.dtypes == object]:
        kinds = {type(v) for v in table[col].dropna()}
        if len(kinds) > 1:  # a parameter that is a number in one run and a name in another
            table[col] = table[col].map(lambda v: None if v is None or v != v else str(v))
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    atomic_write_bytes(out / "results.parquet", buffer.getvalue())
    return files + [out / "results.parquet"]


def analyze(run_dirs: str | Path | Iterable[str | Path], out: str | Path | None = None, *,
            importance: bool = True, storage: str | None = None) -> Analysis:
    """Write ``results.csv``, ``results.parquet`` (if pyarrow is installed), the plots
    ``history.png``, ``accuracy_vs_macs.png``, ``accuracy_vs_params.png``, ``curves.png``,
    ``importance.png`` (each only when there is something to draw), ``best.svg`` (the best
    architecture; ``best-RUN.svg`` per run for several) and ``report.md`` into
    ``out`` (default: the run folder; for several runs ``compare-A-B`` next to the first).
    ``storage`` overrides the storage URL of ``run.json`` (which masks passwords).

    ``report.md`` has the sections: best architecture (and its margin over the best seed at
    equal or lower cost), the retraining on the test split (when ``nas retrain`` ran), Pareto set (over the run's objectives; for one objective, accuracy
    against MACs or params), where the budget went, parameter importances, plots, notes.

    Raises:
        ConfigError: a folder is not a run folder.
    """
    dirs = _as_dirs(run_dirs)
    out = Path(out) if out is not None else _default_out(dirs)
    frame = load(dirs, storage=storage)
    history = load_history(dirs, storage=storage)
    notes = list(frame.attrs.get("notes") or [])
    several = frame["run"].nunique() > 1
    from nas.results import _plots

    files = _write_tables(frame, out, notes)
    objectives = frame.attrs.get("objectives") or [accuracy_column(frame) or "val_accuracy"]
    directions = frame.attrs.get("directions") or ["maximize"] * len(objectives)
    plots: list[tuple[str, Path | None, str]] = []
    plots.append(("Optimisation history with the best so far",
                  _plots.plot_history(frame, out / "history.png", objectives, directions),
                  "no complete trial to plot"))
    accuracy = accuracy_column(frame)
    for cost in ("macs", "params"):
        path = None
        if accuracy is not None and frame[cost].notna().any():
            path = _plots.plot_tradeoff(frame, out / f"accuracy_vs_{cost}.png", accuracy, cost)
        plots.append((f"Accuracy vs {cost} with the Pareto front and the seeds", path,
                      f"accuracy_vs_{cost}.png not drawn: no trial records {cost}"))
    plots.append(("Intermediate values (validation accuracy per epoch)",
                  _plots.plot_curves(frame, history, out / "curves.png"),
                  "curves.png not drawn: no trial has per-epoch values (a tabular run trains nothing)"))
    imp_values: dict[str, dict[str, dict[str, float]]] = {}
    imp_notes: list[str] = []
    if importance:
        for run, meta in frame.attrs["runs"].items():
            values, why = importances(meta["dir"], meta["objectives"], storage=storage)
            if values:
                imp_values[run] = values
            imp_notes += [f"{run}: {w}" if several else w for w in why]
    imp_path = _plots.plot_importances(imp_values, out / "importance.png") if imp_values else None

    title = ", ".join(frame.attrs["runs"])
    counts = frame["state"].value_counts()
    lines = [f"# Search report: {title}", ""]
    for run, meta in frame.attrs["runs"].items():
        info = frame[frame["run"] == run]
        lines.append(f"Run **{run}** (`{meta['dir']}`) optimises "
                     f"{', '.join(f'{o} ({d})' for o, d in zip(meta['objectives'], meta['directions']))}"
                     f" over {len(info)} trials; seeds: "
                     f"{', '.join(sorted(set(info.loc[info['is_seed'], 'seed'].astype(str)))) or 'none'}.")
    for run, meta in frame.attrs["runs"].items():
        screened = _prescreen_sentence(Path(meta["dir"]))
        if screened:
            lines.append(f"{'Run ' + run + ': ' if several else ''}{screened}")
    lines += ["", "States: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".", ""]
    lines += _best_section(frame, several, out, files, notes)
    pareto_lines, pareto_notes = _pareto_section(frame, several)
    lines += pareto_lines
    lines += _retrain_section(dirs, out)
    lines += _budget_section(frame)
    lines += _proxy_section(frame)
    lines += _importance_section(imp_values, imp_notes, imp_path)
    lines += ["## Plots", ""]
    for caption, path, why in plots:
        if path is not None:
            lines += [f"### {caption}", "", f"![{caption}]({path.name})", ""]
            files.append(path)
        else:
            notes.append(why)
    if imp_path is not None:
        files.append(imp_path)
    notes += pareto_notes
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["Data: [results.csv](results.csv)"
              + (", [results.parquet](results.parquet)" if (out / "results.parquet") in files else "")
              + "; one row per trial (`nas.results.load`)."]
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    files.append(report)
    return Analysis(out=out, files=files, notes=notes + imp_notes, frame=frame)
