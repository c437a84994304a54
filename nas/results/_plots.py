"""PNG plots of a :func:`nas.results.load` frame with matplotlib's Agg backend (no display).

Every function draws one figure, saves it to the given path and returns the path, or returns
``None`` (and draws nothing) when the frame holds nothing to draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.results._summary import candidates, pareto_front

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["plot_curves", "plot_history", "plot_importances", "plot_tradeoff"]

_STATE_COLORS = {"complete": "tab:blue", "pruned": "tab:orange", "fail": "tab:red"}
#: Runs a legend names (two entries each); the others are drawn unnamed: 30 runs' 61 entries
#: were taller than the figure, collapsing its axes (three matplotlib warnings, empty plots).
_LEGEND_RUNS = 5


def _legend(ax: Any, runs: int, loc: str) -> None:
    """The legend, saying when it names only the first :data:`_LEGEND_RUNS` of ``runs``."""
    title = f"first {_LEGEND_RUNS} of {runs} runs" if runs > _LEGEND_RUNS else None
    ax.legend(fontsize=8, loc=loc, title=title, title_fontsize=8)


def _figure(rows: int = 1, cols: int = 1, *, size: tuple[float, float] = (7.0, 4.5)) -> Figure:
    from matplotlib.figure import Figure

    # A Figure without pyplot: no global state, no display; savefig uses the Agg canvas.
    return Figure(figsize=(size[0] * cols, size[1] * rows), layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically (:mod:`nas.io`: a link at ``path`` is
    replaced, never written through; savefig wrote to its target, outside the run)."""
    import io

    from nas.io import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format="png")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _label(col: str) -> str:
    return {"val_accuracy": "validation accuracy", "table_accuracy": "test accuracy (%, table)",
            "macs": "MACs", "params": "parameters", "latency": "latency (s)"}.get(col, col)


def plot_history(frame: pd.DataFrame, path: Path, objectives: Sequence[str],
                 directions: Sequence[str]) -> Path | None:
    """Each objective of every complete trial by trial number, with the best so far as a step
    line (one colour per run)."""
    objectives = [o for o in objectives if o in frame and frame[o].notna().any()]
    if not objectives:
        return None
    fig = _figure(len(objectives), 1)
    axes = fig.subplots(len(objectives), 1, squeeze=False)[:, 0]
    runs = list(dict.fromkeys(frame["run"]))
    for ax, col, direction in zip(axes, objectives, directions):
        for k, run in enumerate(runs):
            part = candidates(frame[frame["run"] == run], [col]).sort_values("number")
            if part.empty:
                continue
            color = f"C{k}"
            name = f"{run}: " if len(runs) > 1 else ""
            named = k < _LEGEND_RUNS
            ax.scatter(part["number"], part[col], s=12, alpha=0.6, color=color,
                       label=f"{name}trial" if named else None)
            values = part[col].to_numpy(dtype=float)
            best = np.maximum.accumulate(values) if direction == "maximize" else np.minimum.accumulate(values)
            ax.step(part["number"], best, where="post", color=color, linewidth=2,
                    label=f"{name}best so far" if named else None)
            seeds = part[part["is_seed"]]
            ax.scatter(seeds["number"], seeds[col], marker="*", s=90, color=color,
                       edgecolors="black", linewidths=0.6, zorder=3)
        ax.set_xlabel("trial")
        ax.set_ylabel(_label(col))
        ax.grid(alpha=0.3)
        _legend(ax, len(runs), "best")
    axes[0].set_title("Optimisation history (stars: seeds)")
    return _save(fig, path)


def _front_2d(points: pd.DataFrame, accuracy: str, cost: str) -> pd.DataFrame:
    return pareto_front(points, [accuracy, cost], ["maximize", "minimize"]).sort_values(cost)


def plot_tradeoff(frame: pd.DataFrame, path: Path, accuracy: str, cost: str) -> Path | None:
    """Accuracy against a cost (``macs`` or ``params``, log scale) for every trained genotype,
    the accuracy/cost Pareto front as a step line, the seeds as labelled stars."""
    done = candidates(frame, [accuracy, cost])
    if done.empty:
        return None
    fig = _figure()
    ax = fig.subplots()
    runs = list(dict.fromkeys(done["run"]))
    for k, run in enumerate(runs):
        part = done[done["run"] == run]
        color = f"C{k}"
        label = run if len(runs) > 1 else "trial"
        named = k < _LEGEND_RUNS
        ax.scatter(part[cost].astype(float), part[accuracy], s=14, alpha=0.5, color=color,
                   label=label if named else None)
        front = _front_2d(part, accuracy, cost)
        ax.step(front[cost].astype(float), front[accuracy], where="post", color=color, linewidth=1.8,
                label=f"{run + ': ' if label == run else ''}Pareto front" if named else None)
        ax.scatter(front[cost].astype(float), front[accuracy], s=28, color=color, edgecolors="black",
                   linewidths=0.6, zorder=3)
        seeds = part[part["is_seed"]]
        ax.scatter(seeds[cost].astype(float), seeds[accuracy], marker="*", s=160, color="gold",
                   edgecolors="black", linewidths=0.8, zorder=4,
                   label="seed" if k == 0 and not seeds.empty else None)
        for _, seed in seeds.iterrows():
            ax.annotate(str(seed["seed"]), (float(seed[cost]), seed[accuracy]), xytext=(5, 5),
                        textcoords="offset points", fontsize=8)
    if (done[cost].astype(float) > 0).all():
        ax.set_xscale("log")
    ax.set_xlabel(_label(cost))
    ax.set_ylabel(_label(accuracy))
    ax.set_title(f"{_label(accuracy).capitalize()} vs {_label(cost)}")
    ax.grid(alpha=0.3, which="both")
    _legend(ax, len(runs), "lower right")
    return _save(fig, path)


def plot_curves(frame: pd.DataFrame, history: pd.DataFrame, path: Path) -> Path | None:
    """Validation accuracy per epoch of every trained trial, coloured by how it ended."""
    history = history[history["val_accuracy"].notna()]
    if history.empty:
        return None
    states = frame.set_index(["run", "number"])["state"]
    fig = _figure()
    ax = fig.subplots()
    seen: set[str] = set()
    for (run, number), part in history.groupby(["run", "number"], sort=True):
        state = str(states.get((run, number), "other"))
        color = _STATE_COLORS.get(state, "tab:gray")
        ax.plot(part["epoch"], part["val_accuracy"], color=color, alpha=0.6, linewidth=1,
                marker="o", markersize=2.5, label=None if state in seen else state)
        seen.add(state)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Intermediate values (learning curves) by end state")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_importances(importances: Mapping[str, Mapping[str, Mapping[str, float]]],
                     path: Path, *, top: int = 12) -> Path | None:
    """Horizontal bars of Optuna's parameter importances, one panel per (run, objective)."""
    panels = [(run, obj, values) for run, per in importances.items() for obj, values in per.items()
              if values]
    if not panels:
        return None
    fig = _figure(len(panels), 1, size=(7.0, 3.5))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (run, obj, values) in zip(axes, panels):
        items = list(values.items())[:top][::-1]
        ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
        ax.set_xlabel("importance (fANOVA, sums to 1)")
        ax.set_title(f"{run}: parameter importances for {obj}" if len(importances) > 1
                     else f"Parameter importances for {obj}")
        ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)
