"""Commands of the search engine: ``search`` and ``best``.

Thin: parsing and printing only; the work is in :mod:`nas.search`, imported when a command
runs (it loads Optuna, and ``search`` loads torch).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nas.cli import seed_option


def register(subparsers: argparse._SubParsersAction) -> None:
    search = subparsers.add_parser("search", help="run an architecture search from a run config")
    search.add_argument("config", help="run config YAML, or the name of a shipped one (`nas configs` "
                                       "lists them), e.g. quickstart")
    search.add_argument("--resume", action="store_true", help="continue the run in runs/NAME")
    search.add_argument("--workers", type=int, metavar="N", help="worker processes on this machine")
    search.add_argument("--storage", metavar="URL",
                        help="Optuna RDB URL (postgresql://..., sqlite:///...) or journal file; "
                             "default: runs/NAME/journal.log")
    search.add_argument("--name", help="run name (folder under --runs); default: the config's")
    search.add_argument("--trials", type=int, metavar="N", help="trial budget (overrides the config)")
    search.add_argument("--seed", type=seed_option, metavar="N",
                        help="seed of the sampler and training (overrides the config's seed)")
    search.add_argument("--runs", default="runs", metavar="DIR", help="folder of run folders (default: runs)")
    search.add_argument("--devices", metavar="LIST",
                        help="one worker per device, each seeing only its own: cuda:0,cuda:1 or auto")
    search.add_argument("--trials-per-device", type=int, metavar="N",
                        help="worker processes per device (default 1)")
    search.add_argument("--no-progress", action="store_true", help="no progress bar")
    search.set_defaults(run=run_search)

    best = subparsers.add_parser("best", help="best genotype (or Pareto set) of a run folder")
    best.add_argument("run_dir", help="a run folder, e.g. runs/quickstart")
    best.add_argument("--yaml", action="store_true", help="print the best genotype's YAML")
    best.add_argument("--export", metavar="DIR",
                      help="write the best trained model(s) to DIR: YAML, ONNX and .pt2 taking [0, 1] "
                           "images, JSON with class names and normalisation (nas.results.export_best)")
    best.add_argument("--untrained", action="store_true",
                      help="with --export: a best trial without kept weights is exported with random "
                           "weights instead of refusing")
    best.add_argument("--storage", metavar="URL",
                      help="the study's storage, when run.json cannot say (a masked password)")
    best.set_defaults(run=run_best)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _line(record: dict[str, Any], objectives: list[str]) -> str:
    parts = [f"{o} {_format(record['objectives'].get(o))}" for o in objectives]
    static = record.get("static") or {}
    for key in ("params", "macs"):
        if key not in objectives and static.get(key) is not None:
            parts.append(f"{key} {_format(static[key])}")
    seed = f" (seed {record['seed']})" if record.get("seed") else ""
    return f"trial {record['trial']}{seed}: " + ", ".join(parts)


def _genotype_text(record: dict[str, Any]) -> str:
    g = record.get("genotype") or {}
    params = ", ".join(f"{k}={v}" for k, v in (g.get("params") or {}).items())
    return f"{g.get('name')}({params})"


def _print_best(run_dir: Path, *, yaml: bool = False, storage: str | None = None) -> int:
    from nas.search import best_trials
    from nas.search._records import read_run, read_trial_files, stored_trials
    from nas.search._storage import open_run_study

    notes: list[str] = []  # the storage cannot be opened: said, as nas analyze says it
    study = open_run_study(run_dir, read_run(run_dir), storage=storage, notes=notes)
    for note in notes:
        print(f"note: {note}")
    run, best = best_trials(run_dir, storage=storage, study=study)
    objectives = run["objectives"]
    if study is None or stored_trials(run_dir, study=study) is None:  # the files are the records
        _, unreadable = read_trial_files(run_dir)
        for path, why in unreadable.items():
            print(f"note: {path} is unreadable ({why}); that trial is left out")
    if not best:
        print(f"no complete trial in {run_dir}")
        return 1
    if len(objectives) > 1:
        print(f"Pareto set ({len(best)} trials) over {', '.join(objectives)}:")
    for record in best:
        path = run_dir / "trials" / f"{record['trial']:04d}" / "genotype.yaml"
        print(_line(record, objectives))
        print(f"  genotype: {_genotype_text(record)}")
        print(f"  file: {path}" if path.is_file() else
              f"  file: none here (trial {record['trial']} ran on {record.get('worker')})")
        weights = path.parent / "weights.pth"
        print(f"  weights: {weights if weights.is_file() and (path.parent / 'weights.json').is_file() else 'not kept'}")
    if yaml and len(best) == 1:
        path = run_dir / "trials" / f"{best[0]['trial']:04d}" / "genotype.yaml"
        text = (best[0].get("genotype") or {}).get("text")
        if text is None:  # bounded, never blocking: a damaged file is one line naming it
            from nas._yaml import read_text
            from nas.errors import ConfigError

            text = read_text(path, error=ConfigError)
        print(text, end="")
    return 0


def _check_flags(args: argparse.Namespace) -> None:
    """One-line errors naming the flag, before the config is read."""
    from nas import _checks
    from nas.search._config import flag_limits, parse_devices

    for flag, value in (("--trials", args.trials), ("--workers", args.workers),
                        ("--trials-per-device", args.trials_per_device)):
        if value is not None:
            key = flag.lstrip("-").replace("-", "_")
            _checks.number(value, path=flag, integer=True, **flag_limits(key))
    if args.devices is not None:
        parse_devices(args.devices, path="--devices")
    if args.name is not None:
        _checks.folder_name(args.name, path="--name")


def run_search(args: argparse.Namespace) -> int:
    from nas._shipped import find_config
    from nas.search import run_search as search

    _check_flags(args)
    config = find_config(args.config)
    try:
        summary = search(config, resume=args.resume, workers=args.workers, storage=args.storage,
                         name=args.name, trials=args.trials, seed=args.seed, runs_dir=args.runs,
                         devices=args.devices, trials_per_device=args.trials_per_device,
                         plugins=args.plugin, progress=not args.no_progress and sys.stderr.isatty())
    except KeyboardInterrupt:
        again = " ".join(["nas search", args.config, *([f"--name {args.name}"] if args.name else []), "--resume"])
        print(f"interrupted: finished trials are kept; continue with `{again}`", file=sys.stderr)
        return 130
    if summary.prescreen:
        p = summary.prescreen
        stages = (f"{'+'.join(p['shortlist'])}, the best {p['kept']} with " if p.get("shortlist") else "")
        print(f"pre-screen: scored {p['candidates']} candidates with {stages}{'+'.join(p['proxy'])} "
              f"in {p['seconds']:.1f} s; enqueued the top {p['top']}")
    counts = ", ".join(f"{n} {state}" for state, n in summary.counts.items())
    print(f"{sum(summary.counts.values())} trials ({counts}) in {summary.elapsed:.0f} s")
    status = _print_best(summary.run_dir, storage=args.storage)
    print(f"run folder: {summary.run_dir}")
    return 0 if status == 0 else 1


def run_best(args: argparse.Namespace) -> int:
    status = _print_best(Path(args.run_dir), yaml=args.yaml, storage=args.storage)
    if status == 0 and args.export:
        from nas.results import export_best

        for item in export_best(args.run_dir, args.export, untrained=args.untrained):
            kind = "trained" if item.trained else "UNTRAINED (random weights)"
            files = ", ".join(str(p) for p in (item.yaml, *item.models))
            print(f"exported trial {item.trial} ({kind}): {files}")
    return status
