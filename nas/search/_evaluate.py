"""Evaluating one trial: parameters -> genotype -> static checks -> dedup -> training or the
table -> a :class:`TrialRecord`.

Contract: nothing a candidate does stops the search. An invalid genotype, a build error, a NaN
loss, running out of memory or time each end the trial with a state and a reason; an engine
bug inside one trial ends it as ``fail`` / ``error`` with its traceback. :meth:`Evaluator.run`
has one exit: the record is ended, its log line written, ``metrics.json`` saved, and the
record with the dashboard's attributes (:data:`~nas.search._storage.DASHBOARD_ATTRS`) set on
the trial in one storage write, in that order. Telling Optuna the outcome is the caller's.
Every trained epoch's validation accuracy is the trial's intermediate value at that epoch,
whatever the pruner (in a multi-objective study, a ``nas.rung.EPOCH`` attribute while it runs
and intermediate values once it completes: :func:`~nas.search._storage.report_value`).

Writes to the storage per trial (beyond Optuna's own: the trial, its parameters, its
outcome): the worker (``nas.worker``) and, with dedup, the reservation; then the record. In
a journal the parameters and the worker are written with the reservation (one append, one
fsync), or with the record when the trial ends before it (four appends per trial where
Optuna's own loop makes eight); in an RDB storage the parameters likewise (one transaction,
where Optuna's loop commits each parameter), and the worker loop writes the worker with the
trial's first heartbeat, before evaluation starts (the liveness check reads it).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import NasError
from nas.io import atomic_write_text, is_disk_full, make_folder, open_append
from nas.search._config import RunConfig
from nas.search._folder import iso_time
from nas.search._keep import BestEpoch, WeightKeeper
from nas.search._proxy import fit_to_data
from nas.search._proxies import PROXIES_ATTR, PROXY_OBJECTIVE
from nas.search._records import METRICS_SCHEMA, plain_json, trial_dir, write_json
from nas.search._space import _plain
from nas.search._storage import (
    DASHBOARD_ATTRS,
    REJECTED_ATTR,
    RETRY_ATTR,
    RECORD_ATTR,
    SEED_ATTR,
    TABLE_ATTR,
    WORKER_ATTR,
    is_indexed_journal,
    report_curve,
    report_value,
    reserve,
    rung_values,
    set_user_attrs,
    trial_by_number,
    writes_held,
)
from nas.search._study import HalvingRule

if TYPE_CHECKING:
    import optuna

    from nas.genotype import Genotype

__all__ = ["Evaluator", "TrialLog", "TrialRecord", "load_run_dataset", "one_line"]


def load_run_dataset(config: RunConfig) -> Any:
    """The run's proxy-training :class:`nas.data.Dataset` (train and holdout validation
    splits of the training images, as the config's ``dataset`` says).

    :func:`~nas.search.run_search` calls it once before any trial, so a missing or malformed
    source fails in one line and a first decode fills the dataset cache once; every worker
    calls it again (then from the cache).

    Raises:
        NasError: the dataset cannot be loaded; located in the config file when the error
            names no file of its own.
    """
    from nas.data import load_dataset

    options = dict(config.dataset)
    name = options.pop("name")
    try:
        return load_dataset(name, **options)
    except NasError as error:
        raise error.located(file=config.file) from None


@dataclass
class TrialRecord:
    """What one trial produced: the ``metrics.json`` of its folder (fields documented in
    :mod:`nas.search`). ``state`` is ``None`` until :meth:`end`."""

    run: str
    trial: int
    worker: str | None = None
    seed: str | None = None
    retry_of: int | None = None
    schema: int = METRICS_SCHEMA
    state: str | None = None
    end_reason: str | None = None
    status: str | None = None
    counted: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    genotype: dict[str, Any] | None = None
    static: dict[str, Any] | None = None
    objectives: dict[str, Any] = field(default_factory=dict)
    values: list[float] | None = None
    table: dict[str, float] | None = None
    proxies: dict[str, float | None] | None = None
    duplicate_of: int | None = None
    epochs: int = 0
    best_val_accuracy: float | None = None
    final_val_accuracy: float | None = None
    latency_s: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    weights: dict[str, Any] | None = None
    batch_size: int | None = None
    train_time: float | None = None
    started: str | None = None
    finished: str | None = None
    wall_time: float | None = None
    sampler_seed: int | None = None
    rejected: int | None = None
    cuda_visible_devices: str | None = None
    traceback: str | None = None
    _t0: float = field(default_factory=time.time, repr=False)

    def end(self, state: str, status: str, reason: str, values: list[float] | None = None) -> TrialRecord:
        """Set the outcome and the finishing time; returns ``self``."""
        now = time.time()
        self.state, self.status, self.end_reason, self.values = state, status, reason, values
        self.finished, self.wall_time = iso_time(now), now - self._t0
        return self

    def to_json(self) -> dict[str, Any]:
        """The ``metrics.json`` mapping (schema order: the dataclass's field order)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}
        schema = data.pop("schema")
        return {"schema": schema, **data}

    def save(self, run_dir: Path) -> None:
        """Write ``trials/NNNN/metrics.json`` atomically, not forced to disk: the storage
        holds the record durably (``nas.record``), the file is this machine's copy."""
        write_json(trial_dir(run_dir, self.trial) / "metrics.json", self.to_json(), sync=False)


class TrialLog:
    """The trial's ``log.txt``: timestamped lines, appended and flushed one by one (not synced
    to disk: a log is for reading, the record is the result; a crash costs its last lines).
    Each line makes the trial's folder if missing, inside ``root`` (the run folder), never
    through a symbolic link (:func:`nas.io.make_folder`)."""

    def __init__(self, path: Path, *, root: Path):
        self.path, self.root = path, root

    def write(self, line: str) -> None:
        stamp = _dt.datetime.now().strftime("%H:%M:%S")
        make_folder(self.path.parent, root=self.root)
        with open(open_append(self.path), "a", encoding="utf-8") as handle:  # never through a link
            handle.write(f"{stamp} {line.rstrip()}\n")


def one_line(error: BaseException) -> str:
    """``Type: message`` on one line, at most 400 characters."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"[:400]


class Evaluator:
    """Turns Optuna trials into records for one worker; holds the dataset or the table,
    loaded at the first trial that needs it."""

    def __init__(self, config: RunConfig, run_dir: Path, worker: str, *,
                 halving: HalvingRule | None, deadline: float | None, sampler_seed: int | None = None,
                 device: str | None = None, on_wait: Callable[[], None] | None = None):
        """``device`` overrides the training device; ``on_wait`` is called while a trial waits
        for a running twin (the worker recovers stale trials there)."""
        self.config, self.run_dir, self.worker = config, run_dir, worker
        self.halving, self.deadline = halving, deadline
        self.sampler_seed, self.device, self.on_wait = sampler_seed, device, on_wait
        self._data: Any = None
        self._objective: Any = None
        self.keeper = None
        if config.keep_weights is not None and config.tabular is None:
            self.keeper = WeightKeeper(run_dir, config.keep_weights, config.objectives, config.directions)
        self._scorer: Any = None
        #: Trial number -> infeasible proposals its sampler skipped (a FeasibleSampler's
        #: ``rejected``, set by the worker), or None.
        self.rejected: dict[int, int] | None = None
        self._generations: dict[str, int] = {}

    def data(self) -> Any:
        """The proxy-training dataset."""
        if self._data is None:
            self._data = load_run_dataset(self.config)
        return self._data

    def table(self) -> Any:
        """The NAS-Bench-201 objective of a tabular run."""
        if self._objective is None:
            from nas.nb201 import make_nb201_objective

            tabular = self.config.tabular
            self._objective = make_nb201_objective(tabular["table"], tabular["objective"],
                                                   report=tabular["report"])
        return self._objective

    def scorer(self) -> Any:
        """The run's :class:`~nas.search._proxies.TrialScorer` (zero-cost proxies)."""
        if self._scorer is None:
            from nas.search._proxies import TrialScorer

            self._scorer = TrialScorer(self.config, self.data)
        return self._scorer

    def feasible(self, params: Mapping[str, Any]) -> bool:
        """Whether the candidate of Optuna parameters ``params`` passes the space's static
        constraints (as trained: proxy width, the dataset's input); True when it cannot tell
        (a choice missing, an invalid genotype: the trial reports those)."""
        from nas.analysis import analyze

        space, values = self.config.space, {}
        for c in space.choices:
            if c.active(values):
                if c.label not in params:
                    return True
                values[c.label] = c.decode(params[c.label])
        try:
            stats = analyze(self.proxy(space.make_genotype(values)))
        except Exception:  # noqa: BLE001 - the trial itself reports a candidate that fails here
            return True
        return space.check_constraints(stats) is None

    def proxy(self, genotype: Genotype) -> Genotype:
        """The genotype as trained: the dataset's input and classes, proxy width."""
        data = self.data()
        return fit_to_data(genotype, data.input_shape, data.num_classes, self.config.width_multiplier)

    def run(self, study: optuna.Study, trial: optuna.Trial) -> TrialRecord:
        """Evaluate ``trial`` (see the module's contract); the record's state is complete,
        pruned or fail."""
        import optuna

        with writes_held(study):  # the parameters, written with the trial's next write
            attempt = _Attempt(self, study, trial)
            try:
                record = attempt.run()
            except Exception as error:  # noqa: BLE001 - an engine bug in one trial: record, go on
                if is_disk_full(error):  # stops the run; the trial is re-run on --resume
                    raise
                attempt.record.traceback = traceback.format_exc()
                record = attempt.record.end("fail", "error", f"internal error: {one_line(error)}")
            attempt.log.write(f"end: {record.state} ({record.status}): {record.end_reason}")
            # The storage first: a worker killed after this write, before its tell, leaves a
            # trial that recovery finishes with this record (and writes its metrics.json).
            try:
                set_user_attrs(study, trial, {**attempt.pending, RECORD_ATTR: plain_json(record.to_json()),
                                              **dashboard_attrs(record)})
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another worker took this trial for dead and re-queued it; its retry reruns it
            else:
                record.save(self.run_dir)
        return record


_GENOTYPE_TEXT = 300  # characters of the genotype's one-line text among the dashboard's attributes


def dashboard_attrs(record: TrialRecord) -> dict[str, Any]:
    """The record's :data:`~nas.search._storage.DASHBOARD_ATTRS` that it has (no ``None``)."""
    genotype, static = record.genotype or {}, record.static or {}
    text = genotype.get("cell")
    if text is None and genotype.get("name") is not None:
        params = ", ".join(f"{k}={v}" for k, v in (genotype.get("params") or {}).items())
        text = f"{genotype['name']}({params})"
    if text is not None and len(text) > _GENOTYPE_TEXT:
        text = text[: _GENOTYPE_TEXT - 3] + "..."
    values = {"status": record.status, "end_reason": record.end_reason, "duplicate_of": record.duplicate_of,
              "params": static.get("params"), "macs": static.get("macs"), "latency_s": record.latency_s,
              "genotype_hash": genotype.get("hash"), "genotype": text}
    return {k: plain_json({k: values[k]})[k] for k in DASHBOARD_ATTRS if values[k] is not None}


class _Attempt:
    """One evaluation of one trial: its record and log, and the steps that fill them."""

    def __init__(self, evaluator: Evaluator, study: optuna.Study, trial: optuna.Trial):
        self.ev, self.config, self.study, self.trial = evaluator, evaluator.config, study, trial
        self.log = TrialLog(trial_dir(evaluator.run_dir, trial.number) / "log.txt", root=evaluator.run_dir)
        self.record = TrialRecord(
            run=self.config.name, trial=trial.number, worker=evaluator.worker,
            seed=trial.user_attrs.get(SEED_ATTR), retry_of=trial.user_attrs.get(RETRY_ATTR),
            objectives={o: None for o in self.config.objectives}, sampler_seed=evaluator.sampler_seed,
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))
        self.record.started = iso_time(self.record._t0)
        # Attributes not written yet: written with the trial's next write (see the module).
        # Elsewhere than in a journal the worker loop wrote the worker with the first beat.
        self.pending: dict[str, Any] = {WORKER_ATTR: evaluator.worker} if is_indexed_journal(study) else {}

    def _flush(self) -> None:
        """Write the pending attributes and the held parameters now."""
        set_user_attrs(self.study, self.trial, self.pending)
        self.pending = {}

    def run(self) -> TrialRecord:
        config, record, space = self.config, self.record, self.config.space
        values = space.suggest(self.trial)  # the sampler proposes here (Optuna samples lazily)
        record.params = dict(self.trial.params)
        if self.ev.rejected is not None:
            record.rejected = self.ev.rejected.pop(self.trial.number, 0)
            self.trial.set_user_attr(REJECTED_ATTR, record.rejected)
        self.log.write(f"trial {self.trial.number} on {self.ev.worker}; seed: {record.seed}; "
                       f"params: {values}")
        try:
            genotype = space.make_genotype(values)
            key = None  # a cell's key is its isomorphism key, set by _tabular
            if config.tabular is None:
                genotype = self.ev.proxy(genotype)
                key = genotype.hash
        except NasError as error:
            return record.end("fail", "invalid_genotype", f"invalid genotype: {error}")
        text = genotype.dump()
        # A copy of the record's genotype text (in the storage): not forced to disk.
        atomic_write_text(trial_dir(self.ev.run_dir, self.trial.number) / "genotype.yaml", text, sync=False)
        record.genotype = {"name": genotype.name, "hash": key, "path": "genotype.yaml",
                           "text": text,
                           "params": {k: _plain(v) for k, v in genotype.params.items()},
                           "input": list(genotype.input_shape)}
        if config.tabular is not None:
            return self._tabular(values, genotype)
        return self._trained(genotype, key)

    # -- the two kinds of candidate
    def _tabular(self, values: dict[str, Any], genotype: Genotype) -> TrialRecord:
        from nas.nb201 import Cell

        objective = self.ev.table()
        cell = Cell.from_params(values)
        key = cell.key()  # the cell's isomorphism key is the dedup key
        self.record.genotype.update(cell=cell.to_str(), cell_key=key)
        reused = self._register(key)
        if reused is not None:
            return reused
        try:
            row = objective.table.row(cell)
        except NasError as error:
            return self.record.end("fail", "not_in_table", str(error))
        table = {c: float(objective.table.values(c)[row]) for c in (objective.column, *objective.report)}
        accuracy = table[objective.column]
        self.record.objectives["table_accuracy"] = accuracy
        self.record.table = table
        self.log.write(f"cell {cell.to_str()}: " + ", ".join(f"{c} {v:.2f}" for c, v in table.items()))
        stopped = self._score_proxies(genotype)
        if stopped is not None:
            return stopped
        values = [float(self.record.objectives[o]) for o in self.config.objectives]
        return self.record.end("complete", "completed", "looked up in the NAS-Bench-201 table", values)

    def _trained(self, genotype: Genotype, key: str) -> TrialRecord:
        from nas.analysis import analyze, depends_on_input

        record = self.record
        t0 = time.perf_counter()
        try:
            stats = analyze(genotype)
        except NasError as error:
            return record.end("fail", "invalid_genotype", f"analysis failed: {error}")
        record.static = {"params": stats.params, "macs": stats.macs,
                         "activation_bytes": stats.activation_bytes,
                         "peak_activation_bytes": stats.peak_activation_bytes}
        record.objectives.update({k: v for k, v in (("params", stats.params), ("macs", stats.macs))
                                  if k in self.config.objectives})
        violated = self.config.space.check_constraints(stats)
        if violated:
            ms = (time.perf_counter() - t0) * 1000
            return record.end("pruned", "constraint", f"constraint: {violated} (checked in {ms:.0f} ms)")
        if not depends_on_input(genotype.graph):
            return record.end("pruned", "constraint", "the output does not depend on the input (every path "
                              "from it passes through a zero): a constant, not trained")
        self.log.write(f"genotype {key[:12]}: {stats.params:,} params, {stats.macs:,} MACs")
        reused = self._register(key)
        if reused is not None:
            return reused
        stopped = self._score_proxies(genotype)
        if stopped is not None:
            return stopped
        return self._train(genotype)

    # -- zero-cost proxies: recorded, constraints, objectives
    def _score_proxies(self, genotype: Genotype) -> TrialRecord | None:
        """Score the network with the run's proxies and record the scores; return the record
        ended when a proxy constraint fails or a proxy objective is undefined, else None."""
        if self.config.proxies is None:
            return None
        record, scorer = self.record, self.ev.scorer()
        try:
            scores = scorer.score(genotype)
        except NasError as error:
            return record.end("fail", "proxy_error", f"proxy scoring failed: {error}")
        record.proxies = {n: (s.value if s.defined else None) for n, s in scores.items()}
        self.trial.set_user_attr(PROXIES_ATTR, record.proxies)
        self.log.write("proxies: " + ", ".join(
            f"{n} {s.value:.6g}" if s.defined else f"{n} NaN ({s.reason})" for n, s in scores.items()))
        violated = scorer.violated(scores)
        if violated is not None:
            return record.end("pruned", "constraint", f"proxy constraint: {violated}")
        for objective in self.config.objectives:
            if objective.startswith(PROXY_OBJECTIVE):
                s = scores[objective[len(PROXY_OBJECTIVE):]]
                if not s.defined:
                    return record.end("fail", "proxy_undefined", f"objective {objective} is undefined: {s.reason}")
                record.objectives[objective] = s.value
        return None

    # -- dedup: the one path both kinds take
    def _register(self, key: str) -> TrialRecord | None:
        """Record ``key`` as this trial's genotype hash. With dedup on, reserve it (see
        :func:`~nas.search._storage.reserve`): None when this trial holds the reservation and
        evaluates; else wait for the twin holding it and return this record ended as a
        duplicate of the twin's result. A twin that ended without a result (pruned, failed,
        interrupted) passes the reservation on to a later trial."""
        from optuna.trial import TrialState

        self.record.genotype["hash"] = key
        if not self.config.dedup:
            self._flush()
            return None
        generation = self.ev._generations.get(key, 0)
        while True:
            generation, owner = reserve(self.study, self.trial, key, generation=generation,
                                        attrs=self.pending)
            self.pending = {}
            self.ev._generations[key] = generation
            if owner is None:
                return None
            twin, waited = self._wait_for(owner)
            if twin.state == TrialState.COMPLETE and twin.values is not None:
                break
            generation += 1
        record = self.record
        record.duplicate_of = twin.number
        prior = dict(zip(self.config.objectives, twin.values))
        record.objectives.update(prior)
        twin_record = twin.user_attrs.get(RECORD_ATTR) or {}
        for attr, name in ((TABLE_ATTR, "table"), (PROXIES_ATTR, "proxies")):
            value = twin_record.get(name) or twin.user_attrs.get(attr)
            if value is not None:  # in this trial's record (the storage's nas.record) too
                setattr(record, name, dict(value))
        if "val_accuracy" in prior:
            record.best_val_accuracy = prior["val_accuracy"]
        wait = f" (waited {waited:.0f} s for it to finish)" if waited >= 1 else ""
        return record.end("complete", "duplicate",
                          f"isomorphic to trial {twin.number}: its result is reused{wait}",
                          list(twin.values))

    def _wait_for(self, number: int) -> tuple[Any, float]:
        """The trial ``number`` once it has finished, and the seconds waited for it."""
        t0 = time.time()
        twin = trial_by_number(self.study, number)
        if not twin.state.is_finished():
            self.log.write(f"waiting for trial {number}, which is evaluating the same genotype")
        while not twin.state.is_finished():
            time.sleep(0.5)
            if self.ev.on_wait is not None:
                self.ev.on_wait()
            twin = trial_by_number(self.study, number)
        return twin, time.time() - t0

    # -- proxy training
    def _train(self, genotype: Genotype) -> TrialRecord:
        import torch

        from nas.build import build_model
        from nas.train import measure_latency, train_model
        from nas.train._memory import check_training_memory

        config, record = self.config, self.record
        try:
            train_config = config.train_config()
            if self.ev.device is not None:
                train_config = train_config.replace(device=self.ev.device)
            if self.ev.deadline is not None:
                left = max(1.0, self.ev.deadline - time.time())
                limit = train_config.time_limit
                train_config = train_config.replace(time_limit=min(limit or left, left))
        except NasError as error:  # pragma: no cover - validated when loaded
            return record.end("fail", "config", str(error))
        try:
            check_training_memory(genotype, train_config, self.ev.data())
        except NasError as error:  # on the CPU, the out-of-memory killer would end the search
            return record.end("fail", "oom", str(error))
        try:
            torch.manual_seed(train_config.seed)
            model = build_model(genotype)
        except Exception as error:  # noqa: BLE001 - any build failure ends the trial only
            return record.end("fail", "build_error", f"build failed: {one_line(error)}")

        best_epoch = BestEpoch(model) if self.ev.keeper is not None else None
        self.epochs = train_config.epochs  # a finished trial is never pruned (_report)
        try:
            result = train_model(model, self.ev.data(), train_config, report=self._report,
                                 on_epoch=best_epoch)
        except Exception as error:  # noqa: BLE001 - a trial's failure must not stop the search
            self.log.write(traceback.format_exc())
            return record.end("fail", "error", f"training failed: {one_line(error)}")
        record.epochs, record.best_val_accuracy = result.epochs, result.best_val_accuracy
        record.final_val_accuracy = result.final_val_accuracy
        record.history = [dataclasses.asdict(h) for h in result.history]
        record.batch_size, record.train_time = result.batch_size, result.wall_time
        if result.status in ("nan_loss", "oom"):
            return record.end("fail", result.status, result.reason)
        if result.status in ("pruned", "timeout"):
            return record.end("pruned", result.status, result.reason)
        report_curve(self.study, self.trial, {h.epoch: h.val_accuracy for h in result.history})
        record.objectives["val_accuracy"] = result.best_val_accuracy
        if "latency" in config.objectives:
            lat = config.latency
            try:
                seconds = measure_latency(model, tuple(genotype.input_shape), device=train_config.device,
                                          batch_size=lat["batch_size"], repeats=lat["repeats"],
                                          warmup=lat["warmup"])
            except Exception as error:  # noqa: BLE001
                return record.end("fail", "error", f"latency measurement failed: {one_line(error)}")
            record.latency_s = seconds
            record.objectives["latency"] = seconds
        values = [float(record.objectives[o]) for o in config.objectives]
        if best_epoch is not None and best_epoch.state is not None:
            record.weights = self.ev.keeper.offer_safely(self.trial.number, values, best_epoch.state,
                                                         self.ev.data())
        return record.end("complete", "completed", result.reason, values)

    def _report(self, epoch: int, accuracy: float) -> bool:
        """Training's per-epoch callback: log, store the accuracy as the trial's intermediate
        value, and tell whether to stop (pruning or halving). After the last epoch the trial
        has finished: Optuna's pruner still sees the value (later trials compete with it),
        and nothing is pruned (:data:`nas.train.ReportFn`)."""
        self.log.write(f"epoch {epoch}: val_accuracy {accuracy:.4f}")
        config, trial, halving = self.config, self.trial, self.ev.halving
        report_value(self.study, trial, epoch, accuracy)
        if config.pruner in ("median", "hyperband") and not config.multi_objective:
            return trial.should_prune()
        if halving is not None and epoch in halving.rungs and epoch < self.epochs:
            others = rung_values(self.study, epoch, trial.number)
            if not halving.keep(accuracy, others):
                self.log.write(f"halving: below the top 1/{halving.reduction:g} of "
                               f"{len(others) + 1} trials at epoch {epoch}")
                return True
        return False
