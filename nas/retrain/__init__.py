"""Retraining: is a searched architecture better than its seeds once both are trained properly?

``nas retrain RUN`` takes the top K architectures of a search (by the search's validation
accuracy, or its Pareto set) plus the space's seed architectures, trains each from scratch
with one longer schedule on the full training split with S training seeds, and scores it on
the test split the search never saw. Outputs: a table (mean and standard deviation of test
accuracy, params, MACs, latency), Kendall's tau between proxy and retrained rank, a plot of
test accuracy against MACs, checkpoints and ONNX exports, and a section of ``report.md``.
A killed call resumes where it stopped.

Public API::

    from nas.retrain import retrain
    summary = retrain("runs/resnet", top=3, seeds=2, epochs=30)
    summary.table[["label", "test_mean", "test_std", "macs"]], summary.tau

Options: :mod:`nas.retrain._options`; selection: :mod:`nas.retrain._select`; the jobs and
the folder layout: :mod:`nas.retrain._run`; the table: :mod:`nas.retrain._table`.
"""

from __future__ import annotations

from nas.retrain._options import RetrainOptions, parse_retrain
from nas.retrain._run import RetrainSummary, retrain
from nas.retrain._select import Candidate, select_candidates
from nas.retrain._table import kendall_tau

__all__ = [
    "Candidate",
    "RetrainOptions",
    "RetrainSummary",
    "kendall_tau",
    "parse_retrain",
    "retrain",
    "select_candidates",
]
