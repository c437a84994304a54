"""The retraining's answer: one row per architecture, Kendall's tau, a plot and a section.

Rows aggregate the per-(architecture, training seed) result files: mean and sample standard
deviation (``ddof=1``; undefined with one seed) of the test accuracy, the seeds' accuracies,
params, MACs and the median latency. Reads and writes files only; never trains.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.io import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "kendall_tau", "plot", "section", "summarise"]

COLUMNS = ("label", "selected_by", "trial", "proxy_val_accuracy", "test_mean", "test_std", "seeds",
           "test_accuracies", "params", "macs", "latency_ms", "failed")


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b of two equally long sequences (ties handled); None for fewer than two
    pairs or when one side is constant.

    Raises:
        ValueError: ``x`` and ``y`` differ in length.
    """
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x and y must be equally long, got {n} and {len(y)}")
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    if n < 2 or denominator == 0:
        return None
    return (concordant - discordant) / denominator


def summarise(results: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per architecture (in first-seen order) from per-seed result records."""
    import pandas as pd

    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        row = rows.setdefault(r["label"], {
            "label": r["label"], "selected_by": r["selected_by"], "trial": r.get("trial"),
            "proxy_val_accuracy": r.get("proxy_val_accuracy"), "params": r["params"],
            "macs": r["macs"], "_acc": [], "_lat": [], "failed": 0})
        if r.get("test_accuracy") is None:
            row["failed"] += 1
        else:
            row["_acc"].append((r["training_seed"], r["test_accuracy"]))
        if r.get("latency_s") is not None:
            row["_lat"].append(r["latency_s"])
    out = []
    for row in rows.values():
        accs = [a for _, a in sorted(row.pop("_acc"))]
        lats = row.pop("_lat")
        row.update(test_mean=statistics.fmean(accs) if accs else None,
                   test_std=statistics.stdev(accs) if len(accs) > 1 else None,
                   seeds=len(accs), test_accuracies=accs,
                   latency_ms=statistics.median(lats) * 1000 if lats else None)
        out.append(row)
    return pd.DataFrame(out, columns=list(COLUMNS))


def tau_of(table: pd.DataFrame) -> tuple[float | None, int]:
    """Kendall's tau between proxy validation accuracy and mean test accuracy, over the rows
    that have both; and that number of rows."""
    both = table.dropna(subset=["proxy_val_accuracy", "test_mean"])
    return kendall_tau(list(both["proxy_val_accuracy"]), list(both["test_mean"])), len(both)


def _pct(value: Any, digits: int = 2) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.{digits}f}"


def markdown_table(table: pd.DataFrame) -> str:
    """The table as Markdown (accuracies in percent)."""
    head = ("| architecture | chosen as | proxy val acc % | test acc % (mean ± std) | seeds | params "
            "| MACs | latency ms |")
    lines = [head, "|" + "---|" * 8]
    for _, r in table.iterrows():
        std = "" if r["test_std"] is None or r["test_std"] != r["test_std"] else f" ± {_pct(r['test_std'])}"
        failed = f" ({int(r['failed'])} failed)" if r["failed"] else ""
        latency = "n/a" if r["latency_ms"] is None or r["latency_ms"] != r["latency_ms"] else f"{r['latency_ms']:.2f}"
        lines.append(f"| {r['label']} | {r['selected_by']} | {_pct(r['proxy_val_accuracy'])} | "
                     f"{_pct(r['test_mean'])}{std} | {int(r['seeds'])}{failed} | {int(r['params']):,} | "
                     f"{int(r['macs']):,} | {latency} |")
    return "\n".join(lines)


def section(table: pd.DataFrame, plan: Mapping[str, Any], *, plot_name: str | None) -> str:
    """The ``## Retraining`` section of ``report.md`` (Markdown, paths relative to the run)."""
    tau, n = tau_of(table)
    tau_text = "n/a" if tau is None else f"{tau:.3f}"
    lines = [
        "## Retraining (test split)", "",
        f"Each architecture trained from scratch with {plan['seeds']} training seed(s), "
        f"{plan['epochs']} epochs on {plan['train_images']:,} training images "
        f"(width x{plan['width_multiplier']:g}); test accuracy after the last epoch on the "
        f"{plan['test_images']:,} images of the test split, which the search never saw. "
        "Proxy validation accuracy is the search's figure (validation split carved from the "
        "training images, proxy schedule).", "",
        *(["Rows chosen as *grown* are searched architectures widened (compound scaling's "
           "width axis) to the largest width whose MACs do not exceed the seed architectures'; "
           "the search never trained them, so they have no proxy figure.", ""]
          if (table["selected_by"] == "grown").any() else []),
        markdown_table(table), "",
        f"Kendall's tau between proxy and retrained rank: {tau_text} over {n} architectures.", "",
    ]
    if plot_name:
        lines += [f"![Test accuracy vs MACs](retrain/{plot_name})", ""]
    lines += ["Data: [retrain/results.csv](retrain/results.csv); checkpoints and ONNX exports in "
              "`retrain/LABEL/seedS/`.", ""]
    return "\n".join(lines)


def plot(table: pd.DataFrame, path: Path) -> Path | None:
    """Test accuracy against MACs: mean with a ±std error bar per architecture, each training
    seed as a small mark, seed architectures in another colour. None when nothing to draw."""
    import io

    from matplotlib.figure import Figure

    rows = table.dropna(subset=["test_mean"])
    if rows.empty:
        return None
    figure = Figure(figsize=(7, 4.5))
    ax = figure.add_subplot()
    kinds = (("searched", "tab:blue", "searched"), ("grown", "tab:green", "searched, grown to the seeds' MACs"),
             ("seed", "tab:orange", "seed architecture"))
    kind_of = rows["selected_by"].where(rows["selected_by"].isin(("seed", "grown")), "searched")  # top, pareto
    for kind, colour, name in kinds:
        part = rows[kind_of == kind]
        if part.empty:
            continue
        std = [0.0 if s is None or s != s else 100 * s for s in part["test_std"]]
        ax.errorbar(part["macs"], 100 * part["test_mean"], yerr=std, fmt="o", color=colour,
                    capsize=4, label=f"{name} (mean ± std)")
        for _, r in part.iterrows():
            ax.scatter([r["macs"]] * len(r["test_accuracies"]), [100 * a for a in r["test_accuracies"]],
                       marker="x", s=18, color=colour, alpha=0.6)
            ax.annotate(r["label"], (r["macs"], 100 * r["test_mean"]), textcoords="offset points",
                        xytext=(5, 5), fontsize=8)
    ax.scatter([], [], marker="x", color="grey", label="one training seed")
    ax.set_xscale("log")
    ax.set_xlabel("MACs")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Retrained: test accuracy vs MACs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def write_outputs(table: pd.DataFrame, plan: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """``results.csv``, ``test_accuracy_vs_macs.png`` and ``retrain.md`` into ``out``."""
    files = {"csv": out / "results.csv"}
    atomic_write_text(files["csv"], table.to_csv(index=False))
    png = plot(table, out / "test_accuracy_vs_macs.png")
    if png is not None:
        files["plot"] = png
    files["section"] = out / "retrain.md"
    atomic_write_text(files["section"], section(table, plan, plot_name=png.name if png else None))
    return files
