"""``nas retrain RUN``: train the search's best and its seeds properly, score them on the test split.

Layout of ``runs/NAME/retrain/`` (every file written atomically)::

    plan.json                the schedule (epochs, width, training images, TrainConfig); a later
                             call must match it (architectures and seeds may be added)
    LABEL/genotype.yaml      the retrained genotype (LABEL: a seed's name or trial_NNNN)
    LABEL/seedS/             nas.train.train_to_folder's files (checkpoint.pt, metrics.csv,
                             model.pth, preprocessing.json, result.json, train.json), plus
        job.json             the genotype hash the job trains (files of another are deleted)
                             and the call that claimed it (its ``call``: the jobs a call trained
                             are told from those another call on the folder trained meanwhile)
        model.onnx, model.json   the trained model: takes [0, 1] images, normalises inside
        test.json            the result, written last: a job with test.json (of its genotype
                             hash) is finished
    results.csv              one row per architecture (nas.retrain._table)
    test_accuracy_vs_macs.png, retrain.md

Resuming: a killed call leaves finished jobs (``test.json``) and the running job's last
epoch checkpoint; the next call skips the first and continues the second. The test split
is used only for the reported figure: it is the training loop's validation set, but nothing
is selected on it (the figure is the accuracy after the last epoch, never the best epoch).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas._checks import finite, max_processes, resolved_path
from nas._threads import torch_threads
from nas.errors import ConfigError
from nas.io import LINK_REFUSED, atomic_write_text, make_folder, read_json_object
from nas.retrain._options import RetrainOptions, resolve
from nas.retrain._select import Candidate, select_candidates
from nas.retrain import _table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RetrainSummary", "retrain"]

RESULT = "test.json"
# Plan keys that must not change between calls on one folder (they change every figure).
_FIXED = ("epochs", "width_multiplier", "train_images", "test_images", "train_config", "dataset")


@dataclass(frozen=True)
class RetrainSummary:
    """What :func:`retrain` returns.

    Attributes:
        out: The retrain folder.
        table: One row per architecture (:data:`nas.retrain._table.COLUMNS`).
        tau: Kendall's tau between proxy validation accuracy and mean test accuracy (None
            with fewer than two architectures that have both).
        trained, skipped: (label, training seed) jobs trained by this call (its processes:
            ``workers``), and found finished.
        by_others: Jobs another call on the folder trained while this one ran (this call
            waited for them).
        elapsed: Seconds this call took.
    """

    out: Path
    table: pd.DataFrame
    tau: float | None
    trained: list[tuple[str, int]]
    skipped: list[tuple[str, int]]
    elapsed: float
    by_others: list[tuple[str, int]] = dataclasses.field(default_factory=list)


def _test_dataset(config: Any, options: RetrainOptions, file: str) -> Any:
    """The search's dataset with its test split as the validation split (``file``: the run's
    frozen config, named by an error)."""
    from nas.data import load_dataset

    dataset = dict(config.dataset)
    name = dataset.pop("name")
    for key in ("subset", "val_subset", "val_fraction", "val_split"):
        dataset.pop(key, None)
    try:
        return load_dataset(name, val_split="test", subset=options.subset, **dataset)
    except ConfigError as error:
        if "no test split" in str(error):
            raise ConfigError(f"dataset {name!r} has no test split; retraining scores architectures "
                              "on a test split the search never saw", file=file, path="dataset") from None
        raise


def _plan(options: RetrainOptions, train_config: Any, data: Any, config: Any) -> dict[str, Any]:
    return {"epochs": options.epochs, "seeds": options.seeds, "width_multiplier": options.width_multiplier,
            "train_images": len(data.train_labels), "test_images": len(data.val_labels),
            "train_config": {k: v for k, v in dataclasses.asdict(train_config).items()
                             if k not in ("seed", "device", "threads", "time_limit", "compile")},
            "dataset": dict(config.dataset), "select": options.select, "top": options.top}


def _check_out(out: Path, run_dir: Path) -> None:
    """``out`` may hold a retraining and nothing else: not the run folder, a folder holding it
    or its ``trials/`` (their files would be overwritten or mixed with the retraining's: the
    report step writes ``results.csv`` too), nor an existing folder with other files in it
    (``--out /``).

    Raises:
        ConfigError: at ``--out``, naming the folder.
    """
    where, run = resolved_path(out, path="--out"), run_dir.resolve()  # run_dir was read already
    if where == run or where in run.parents or (run / "trials") in (where, *where.parents):
        raise ConfigError(f"{out}: must not be the run folder, a folder holding it or inside its "
                          "trials/ (the default is RUN/retrain)", path="--out")
    if where.is_dir() and not (where / "plan.json").exists() and any(where.iterdir()):
        raise ConfigError(f"{out}: holds files that are not a retraining's (no plan.json); give a "
                          "new or empty folder", path="--out")


def _check_plan(out: Path, plan: dict[str, Any]) -> None:
    """Write ``plan`` to ``out/plan.json`` when the retraining already there (if any) is this
    one: the same schedule (:data:`_FIXED`), and no label of it naming another genotype.

    A label that was another genotype there is another run's retraining (or another space's):
    its finished jobs would be deleted as stale and trained again, its table overwritten.

    Raises:
        ConfigError: naming ``plan.json`` and the key.
    """
    path = out / "plan.json"
    old, why = read_json_object(path)
    if why is not None:
        raise ConfigError(f"unreadable: {why}", file=str(path))
    if old is not None:
        for key in _FIXED:
            if json.loads(json.dumps(plan[key])) != old.get(key):
                raise ConfigError(f"this retraining differs from the one in {out} ({key}: "
                                  f"{old.get(key)!r} there); use another --out", file=str(path), path=key)
        hashes = {a["label"]: a["hash"] for a in plan.get("architectures", [])}
        for entry in old.get("architectures") or []:
            label = entry.get("label") if isinstance(entry, dict) else None
            if isinstance(label, str) and label in hashes and entry.get("hash") != hashes[label]:
                raise ConfigError(f"{out} retrained {label} as another genotype (another run's "
                                  "retraining?); its results are kept: use another --out",
                                  file=str(path), path="architectures")
    atomic_write_text(path, json.dumps(plan, indent=2) + "\n")


@dataclass(frozen=True)
class _Context:
    out: Path
    plan: dict[str, Any]
    candidates: list[Candidate]
    seeds: int
    base: Any  # TrainConfig
    data: Any  # Dataset
    preprocessing: Any
    grow: bool
    call: str  # this call's id, written to job.json by the jobs it claims (_claim)

    def jobs(self) -> list[tuple[Candidate, int, Path]]:
        return [(c, s, self.out / c.label / f"seed{s}") for c in self.candidates for s in range(self.seeds)]


def _prepare(run_dir: Path, out: str | Path | None, device: str | None, threads: int | None,
             call: str, **overrides: Any) -> _Context:
    from nas.preprocessing import Preprocessing
    from nas.search import load_run_config
    from nas.search._records import read_run

    read_run(run_dir)  # a clear error for a folder that is not a run
    config = load_run_config(run_dir)
    options = resolve(config.retrain, config.train, file=str(run_dir / "config.yaml"), **overrides)
    changes: dict[str, Any] = {"epochs": options.epochs, "time_limit": None}
    if device is not None:
        changes["device"] = device
    if threads is not None:
        changes["threads"] = threads
    base = config.train_config().replace(**{**dict(options.train), **changes})
    data = _test_dataset(config, options, str(run_dir / "config.yaml"))
    try:  # retrain.train may set what the search's train did not
        base.check_images(data.input_shape, path="retrain.train" if "crop_padding" in options.train else "train")
    except ConfigError as error:
        raise error.located(file=str(run_dir / "config.yaml")) from None
    candidates = select_candidates(run_dir, config, select=options.select, top=options.top,
                                   input_shape=data.input_shape, num_classes=data.num_classes,
                                   width_multiplier=options.width_multiplier, grow=options.grow)
    if out is None:  # RUN/retrain is the run's: never written through a link planted there
        out = run_dir / "retrain"
        if out.is_symlink():
            raise ConfigError(LINK_REFUSED, file=str(out))
    out = Path(out)
    plan = _plan(options, base, data, config)
    plan["architectures"] = [{"label": c.label, "trial": c.trial, "seed": c.seed,
                              "selected_by": c.selected_by, "hash": c.genotype.hash} for c in candidates]
    return _Context(out=out, plan=plan, candidates=candidates, seeds=options.seeds, base=base,
                    data=data, preprocessing=Preprocessing.from_dataset(data), grow=options.grow,
                    call=call)


def retrain(
    run_dir: str | Path,
    *,
    select: str | None = None,
    top: int | None = None,
    seeds: int | None = None,
    epochs: int | None = None,
    width_multiplier: float | None = None,
    subset: int | None = None,
    grow: bool | None = None,
    device: str | None = None,
    threads: int | None = None,
    workers: int = 1,
    out: str | Path | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> RetrainSummary:
    """Retrain the top architectures of a search and its seeds; see the module docstring.

    Every option left at None comes from the run config's ``retrain`` key, else the defaults
    of :mod:`nas.retrain._options`. ``device`` and ``threads`` (torch threads per process)
    default to the search's. ``workers`` processes take jobs in turn (a job is locked while
    it trains, so no model is trained twice).

    Raises:
        ConfigError: not a run folder, a tabular run, a dataset without a test split, an
            option out of range, an ``out`` that is not a retrain folder (the run folder, one
            holding it, a folder of other files), or a retrain folder made with another schedule.
    """
    started = time.time()
    most = max_processes()  # as a search's workers
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= most:
        raise ConfigError(f"must be an integer from 1 to {most} on this machine, got {workers!r}",
                          path="--workers")
    run_dir = Path(run_dir)
    overrides = dict(select=select, top=top, seeds=seeds, epochs=epochs,
                     width_multiplier=width_multiplier, subset=subset, grow=grow)
    call = uuid.uuid4().hex
    context = _prepare(run_dir, out, device, threads, call, **overrides)
    _check_out(context.out, run_dir)
    _check_plan(context.out, context.plan)
    say = log or (lambda line: None)
    plan = context.plan
    say(f"retraining {len(context.candidates)} architectures x {context.seeds} seeds, {plan['epochs']} "
        f"epochs on {plan['train_images']:,} training images; test split: {plan['test_images']:,} images")
    if context.grow and not any(c.selected_by == "grown" for c in context.candidates):
        say("grow: no searched architecture widens within the seeds' MACs (each is at or over them, "
            "or its next rounded width is)")
    for candidate in context.candidates:
        folder = make_folder(context.out / candidate.label, root=context.out)
        atomic_write_text(folder / "genotype.yaml", candidate.genotype.dump())
    skipped = [(c.label, s) for c, s, job in context.jobs() if _read_result(job, c.genotype.hash) is not None]
    helpers = _start_helpers(workers - 1, run_dir, out, device, threads, call, overrides)
    try:
        _work(context, say, progress=progress)
    finally:
        for helper in helpers:
            helper.join()
    # anything a helper left (it died): train it here; wait for a job another nas retrain on
    # this folder is training, so the table lists every job (it left out the other's jobs)
    _work(context, say, progress=progress, wait=True)
    results = [_read_result(job, c.genotype.hash) for c, _, job in context.jobs()]
    done = [((c.label, s), job) for (c, s, job), result in zip(context.jobs(), results)
            if result is not None and (c.label, s) not in skipped]
    trained = [key for key, job in done if _claimed_by(job) == call]
    by_others = [key for key, job in done if _claimed_by(job) != call]
    table = _table.summarise([r for r in results if r is not None])
    _table.write_outputs(table, plan, context.out)
    tau, _ = _table.tau_of(table)
    return RetrainSummary(out=context.out, table=table, tau=tau, trained=trained, skipped=skipped,
                          elapsed=time.time() - started, by_others=by_others)


def _work(context: _Context, say: Callable[[str], None], *, progress: bool, wait: bool = False) -> None:
    """Train every job that is neither finished nor locked by another process; with ``wait``,
    a locked job is waited for, then trained if that process left it unfinished."""
    import torch

    import nas
    from nas.io import try_file_lock

    with torch_threads(context.base.threads):  # latency and export too, not only training
        for candidate, seed, job in context.jobs():
            if _read_result(job, candidate.genotype.hash) is not None:
                continue
            make_folder(job, root=job.parent.parent)  # never through a link: out/LABEL/seedS
            with try_file_lock(job / ".lock", wait=wait) as mine:
                if not mine or _read_result(job, candidate.genotype.hash) is not None:
                    continue
                _claim(job, candidate.genotype.hash, context.call)
                torch.manual_seed(seed)
                model = nas.build_model(candidate.genotype)
                record = _train_one(model, candidate, nas.analyze(candidate.genotype), context.data,
                                    context.base.replace(seed=seed), job, context.preprocessing,
                                    progress=progress)
            accuracy = record["test_accuracy"]
            say(f"{candidate.label} seed {seed}: "
                + (f"test accuracy {accuracy:.4f}" if accuracy is not None
                   else f"{record['status']}: {record['reason']}")
                + f" ({record['epochs']} epochs, {record['train_time']:.0f} s)")


def _start_helpers(count: int, run_dir: Path, out: Any, device: Any, threads: Any, call: str,
                   overrides: dict[str, Any]) -> list[Any]:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    helpers = [context.Process(target=_helper, args=(str(run_dir), out, device, threads, call, overrides),
                               name=f"nas-retrain-{i + 1}", daemon=True) for i in range(count)]
    for helper in helpers:
        helper.start()
    return helpers


def _helper(run_dir: str, out: Any, device: Any, threads: Any, call: str, overrides: dict[str, Any]) -> None:
    from nas.search._workers import die_with_parent

    die_with_parent()  # a killed retrain leaves no helper training on behind it
    context = _prepare(Path(run_dir), out, device, threads, call, **overrides)
    _work(context, lambda line: print(line, flush=True), progress=False)


def _claim(job: Path, genotype_hash: str, call: str) -> None:
    """Mark ``job`` as training ``genotype_hash`` for the call ``call``; files a job of another
    genotype left there (a checkpoint it could resume from, its result) are deleted first."""
    marker = job / "job.json"
    data, _ = read_json_object(marker)
    old = data.get("hash") if data is not None else None
    if old != genotype_hash:
        for name in ("test.json", "checkpoint.pt", "model.pth", "result.json", "metrics.csv"):
            (job / name).unlink(missing_ok=True)
    atomic_write_text(marker, json.dumps({"hash": genotype_hash, "call": call}) + "\n")


def _claimed_by(job: Path) -> str | None:
    """The call that last claimed ``job`` (:func:`_claim`), or None when unknown."""
    data, _ = read_json_object(job / "job.json")
    call = data.get("call") if data is not None else None
    return call if isinstance(call, str) else None


def _read_result(job: Path, genotype_hash: str) -> dict[str, Any] | None:
    """The job's finished result, or None when it has none, or one of another genotype (a
    foreign or stale file: the job is trained again and the file replaced)."""
    record, _ = read_json_object(job / RESULT)  # written atomically: a damaged one is foreign
    if record is None or record.get("hash") != genotype_hash or not _is_valid_result(record):
        return None  # damaged fields are treated like an unreadable file: the job is retrained
    return record


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_finite(value: Any, low: float = -math.inf, high: float = math.inf) -> bool:
    """A finite real number (:func:`nas._checks.finite`) in [low, high]."""
    return finite(value) and low <= value <= high


def _is_valid_result(record: dict[str, Any]) -> bool:
    """True when every field the summary reads has the type and range :func:`_train_one`
    writes: ``label`` and ``selected_by`` strings, ``params``/``macs``/``training_seed``
    non-negative integers, ``trial`` such an integer or null, ``test_accuracy`` and
    ``proxy_val_accuracy`` null or finite (the former in [0, 1]), ``latency_s`` null or
    finite >= 0."""
    def optional(key: str, check: Callable[[Any], bool]) -> bool:
        return record.get(key) is None or check(record[key])

    return (isinstance(record.get("label"), str) and isinstance(record.get("selected_by"), str)
            and all(_is_count(record.get(key)) for key in ("params", "macs", "training_seed"))
            and optional("trial", _is_count)
            and optional("test_accuracy", lambda v: _is_finite(v, 0.0, 1.0))
            and optional("proxy_val_accuracy", _is_finite)
            and optional("latency_s", lambda v: _is_finite(v, 0.0)))


def _train_one(model: Any, candidate: Candidate, stats: Any, data: Any, train_config: Any, job: Path,
               preprocessing: Any, *, progress: bool) -> dict[str, Any]:
    import torch

    from nas.errors import GenotypeError
    from nas.export import export_model
    from nas.train import TrainResult, measure_latency, train_to_folder
    from nas.train._memory import check_training_memory

    try:  # on the CPU, the out-of-memory killer would end the retrain (and its helpers' jobs)
        check_training_memory(candidate.genotype, train_config, data)
        result = train_to_folder(model, data, train_config, job, resume=True, progress=progress)
    except GenotypeError as error:
        result = TrainResult(status="oom", reason=error.message, best_val_accuracy=None, final_val_accuracy=None)
    ok = result.status == "completed"
    latency = None
    if ok:
        model = model.to("cpu", memory_format=torch.contiguous_format).eval()
        latency = measure_latency(model, tuple(candidate.genotype.input_shape), device="cpu",
                                  batch_size=1, repeats=20, warmup=5)
        export_model(candidate.genotype, job / "model.onnx", model=model, preprocessing=preprocessing)
    record = {
        "label": candidate.label, "selected_by": candidate.selected_by, "trial": candidate.trial,
        "seed_architecture": candidate.seed, "training_seed": train_config.seed,
        "proxy_val_accuracy": candidate.proxy_val_accuracy,
        "test_accuracy": result.final_val_accuracy if ok else None, "split": "test",
        "status": result.status, "reason": result.reason, "epochs": result.epochs,
        "train_time": result.wall_time, "params": stats.params, "macs": stats.macs,
        "latency_s": latency, "hash": candidate.genotype.hash,
        "history": [dataclasses.asdict(h) for h in result.history],
    }
    atomic_write_text(job / RESULT, json.dumps(record, indent=2) + "\n")
    return record
