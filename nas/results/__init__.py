"""Run folders as answers: a pandas table of trials, Pareto fronts, plots and a report.

Public API::

    from nas import results
    frame = results.load("runs/quickstart")              # one row per trial
    frame = results.load(["runs/a", "runs/b"])           # stacked, with a `run` column
    front = results.pareto_front(frame)                  # over the run's objectives
    report = results.analyze("runs/quickstart")          # CSV, Parquet, PNGs, report.md
    results.export_best("runs/quickstart", "exported/")  # best genotype(s): YAML + ONNX

Reading needs pandas (and Optuna for the storage); plots need matplotlib (Agg backend through
``matplotlib.figure.Figure``, no display); importances need Optuna; export needs torch. Nothing
here changes a run folder except the analysis outputs :func:`analyze` writes where it is told.
"""

from __future__ import annotations

from nas.results._export import ExportedGenotype, export_best
from nas.results._load import COLUMNS, PARAM_PREFIX, load, load_history, open_study
from nas.results._report import Analysis, analyze
from nas.results._summary import best, budget, candidates, importances, pareto_front

__all__ = [
    "COLUMNS",
    "PARAM_PREFIX",
    "Analysis",
    "ExportedGenotype",
    "analyze",
    "best",
    "budget",
    "candidates",
    "export_best",
    "importances",
    "load",
    "load_history",
    "open_study",
    "pareto_front",
]
