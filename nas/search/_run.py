"""A search run: the run folder, the study, the workers and the evaluation of one trial.

Contract: :func:`run_search` validates everything (config, storage, run folder) before the
first trial starts, so user errors surface as :class:`~nas.errors.ConfigError`. Inside a
trial nothing a candidate does stops the search: an invalid genotype, a build error, a NaN
loss, running out of memory or time each end that trial with a state and a reason.

The trial budget counts trials that started (any state) except those interrupted by a kill
or Ctrl-C, which are re-enqueued and run again; counting and ``study.ask()`` happen under a
file lock in the run folder, so the workers of one machine never overshoot. Workers on other
machines (an RDB storage) share the count but not the lock: they may overshoot by one trial
each.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import datetime as _dt
import math
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas._yaml import dump_yaml, load_yaml_file
from nas.errors import ConfigError, NasError
from nas.genotype import Genotype, load_genotype
from nas.io import atomic_write_text, is_disk_full
from nas.search._config import RunConfig, load_config
from nas.search._records import METRICS_SCHEMA, best_trials, trial_dir, write_json
from nas.search._study import RUNG_ATTR, HalvingRule, make_pruner, make_sampler, open_storage

if TYPE_CHECKING:
    import optuna

__all__ = ["SearchSummary", "run_search"]

HASH_ATTR = "nas.hash"
SEED_ATTR = "nas.seed"
REASON_ATTR = "nas.end_reason"
UNCOUNTED_ATTR = "nas.uncounted"
RETRY_ATTR = "nas.retry_of"
DUPLICATE_ATTR = "nas.duplicate_of"
# Keys of the frozen config that may change between a run and its --resume.
_RESUMABLE = ("trials", "timeout", "workers", "threads", "storage")


@dataclass(frozen=True)
class SearchSummary:
    """What :func:`run_search` returns.

    Attributes:
        run_dir: The run folder.
        counts: Trials per state (``complete``, ``pruned``, ``fail``) over the whole study.
        best: The best trial's ``metrics.json`` (one objective) or the Pareto set.
        objectives: The objective names, in order.
        elapsed: Seconds this call took.
    """

    run_dir: Path
    counts: Mapping[str, int]
    best: list[dict[str, Any]]
    objectives: tuple[str, ...]
    elapsed: float


# --------------------------------------------------------------------------- the run folder


def _freeze(config: RunConfig) -> tuple[dict[str, Any], str]:
    data = dict(config.data)
    data["space"] = dict(data["space"], genotype="space_genotype.yaml")
    data.pop("storage", None)
    return data, _genotype_with_all_blocks(config.space.genotype)


def _genotype_with_all_blocks(genotype: Genotype) -> str:
    """Canonical YAML of ``genotype`` keeping every block, not only those its defaults reach:
    the space's other choices (``block: bottleneck``) need them."""
    data = genotype.to_dict()
    blocks = {name: genotype.blocks[name].dump() for name in sorted(genotype.blocks)}
    out = {}
    for key, value in data.items():
        if key == "network":
            out["blocks"] = blocks
        if key != "blocks":
            out[key] = value
    return dump_yaml(out)


def _prepare_run_dir(config: RunConfig, run_dir: Path, *, resume: bool) -> None:
    data, genotype_text = _freeze(config)
    frozen = run_dir / "config.yaml"
    if resume:
        if not frozen.is_file():
            raise ConfigError(f"nothing to resume: {run_dir} holds no run", file=config.file,
                              path="name")
        old = load_yaml_file(frozen, error=ConfigError)
        old_text = (run_dir / "space_genotype.yaml").read_text()
        for key in sorted(set(old) | set(data)):
            if key not in _RESUMABLE and old.get(key) != data.get(key):
                raise ConfigError(f"differs from the run being resumed ({frozen}); start a new "
                                  "run with --name", file=config.file, path=key)
        if old_text != genotype_text:
            raise ConfigError(f"the genotype differs from the run being resumed ({frozen})",
                              file=config.file, path="space.genotype")
    elif frozen.exists():
        raise ConfigError(f"run folder {run_dir} exists; use --resume to continue it or --name "
                          "to start another", file=config.file, path="name")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "space_genotype.yaml", genotype_text)
    atomic_write_text(frozen, dump_yaml(data))


def load_run_config(run_dir: Path) -> RunConfig:
    """The frozen config of a run folder (with its frozen genotype)."""
    genotype = load_genotype(run_dir / "space_genotype.yaml")
    return load_config(run_dir / "config.yaml", genotype=genotype)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- the study


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _open_study(config: RunConfig, storage_url: str, *, create: bool, sampler: Any = None,
                storage_path: str = "storage") -> optuna.Study:
    import optuna

    storage = open_storage(storage_url, file=config.file, path=storage_path)
    kwargs = {"study_name": config.name, "storage": storage, "sampler": sampler,
              "pruner": make_pruner(config)}
    if not create:
        return optuna.load_study(**kwargs)
    study = optuna.create_study(directions=config.directions, load_if_exists=True, **kwargs)
    if list(study.directions) != [optuna.study.StudyDirection[d.upper()] for d in config.directions]:
        raise ConfigError(f"study {config.name!r} in this storage has other objectives",
                          file=config.file, path="objectives")
    return study


def _counted(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state != TrialState.WAITING and not t.user_attrs.get(UNCOUNTED_ATTR))


def _enqueue_seeds(study: optuna.Study, config: RunConfig) -> None:
    if study.user_attrs.get("nas.seeded"):
        return
    for name, values in config.space.seeds.items():
        study.enqueue_trial(config.space.encode(values), user_attrs={SEED_ATTR: name})
    study.set_user_attr("nas.seeded", True)


def _recover_interrupted(study: optuna.Study, run_dir: Path) -> int:
    """Mark trials left RUNNING by a killed run as failed and uncounted, and enqueue their
    parameters again. Returns how many there were."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        _interrupt(study, trial.number, trial._trial_id, trial.params, trial.user_attrs, run_dir)
    return len(stale)


def _interrupt(study: optuna.Study, number: int, trial_id: int, params: Mapping[str, Any],
               attrs: Mapping[str, Any], run_dir: Path) -> None:
    from optuna.trial import TrialState

    storage = study._storage
    reason = "interrupted (killed or Ctrl-C); its parameters were enqueued again"
    storage.set_trial_user_attr(trial_id, UNCOUNTED_ATTR, True)
    storage.set_trial_user_attr(trial_id, REASON_ATTR, reason)
    with contextlib.suppress(Exception):  # already finished by a racing process
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    retry = {RETRY_ATTR: number}
    if attrs.get(SEED_ATTR):
        retry[SEED_ATTR] = attrs[SEED_ATTR]
    study.enqueue_trial(dict(params), user_attrs=retry)
    folder = trial_dir(run_dir, number)
    path = folder / "metrics.json"
    record = {"schema": METRICS_SCHEMA, "trial": number, "state": "fail", "end_reason": reason,
              "status": "interrupted", "counted": False, "params": dict(params),
              "seed": attrs.get(SEED_ATTR)}
    if folder.exists() or params:
        write_json(path, record)


# --------------------------------------------------------------------------- evaluation


def _scale_widths(genotype: Genotype, multiplier: float) -> Genotype:
    if multiplier == 1.0:
        return genotype
    changes: dict[str, Any] = {}
    for name in genotype.scaling.get("width", ()):
        value = genotype.params.get(name)
        if isinstance(value, (list, tuple)):
            changes[name] = [max(1, round(v * multiplier)) if isinstance(v, int) else v for v in value]
        elif isinstance(value, int) and not isinstance(value, bool):
            changes[name] = max(1, round(value * multiplier))
    return genotype.with_params(**changes) if changes else genotype


class _Evaluator:
    """Turns one Optuna trial into a record: genotype, checks, training, objectives."""

    def __init__(self, config: RunConfig, run_dir: Path, worker: str, *, halving: HalvingRule | None,
                 deadline: float | None):
        self.config, self.run_dir, self.worker = config, run_dir, worker
        self.halving, self.deadline = halving, deadline
        self._data: Any = None
        self._objective: Any = None

    # -- lazily loaded resources
    def data(self) -> Any:
        if self._data is None:
            from nas.data import load_dataset

            options = dict(self.config.dataset)
            name = options.pop("name")
            self._data = load_dataset(name, **options)
        return self._data

    def table(self) -> Any:
        if self._objective is None:
            from nas.tabular import make_nb201_objective

            self._objective = make_nb201_objective(self.config.tabular["table"],
                                                   self.config.tabular["dataset"])
        return self._objective

    def proxy(self, genotype: Genotype) -> Genotype:
        """The genotype as trained: the dataset's input and classes, proxy width."""
        data = self.data()
        genotype = genotype.with_input(data.input_shape)
        if "classes" in genotype.params:
            genotype = genotype.with_params(classes=data.num_classes)
        return _scale_widths(genotype, self.config.width_multiplier)

    # -- one trial
    def run(self, study: optuna.Study, trial: optuna.Trial) -> tuple[str, list[float] | None, dict]:
        """Evaluate ``trial``; returns (state, values, record) with state complete / pruned /
        fail. Writes the trial folder."""
        started = time.time()
        folder = trial_dir(self.run_dir, trial.number)
        log = _Log(folder / "log.txt")
        record: dict[str, Any] = {
            "schema": METRICS_SCHEMA, "run": self.config.name, "trial": trial.number,
            "state": None, "end_reason": None, "status": None, "counted": True,
            "seed": trial.user_attrs.get(SEED_ATTR), "retry_of": trial.user_attrs.get(RETRY_ATTR),
            "worker": self.worker, "params": {}, "genotype": None, "static": None,
            "objectives": {o: None for o in self.config.objectives}, "values": None,
            "duplicate_of": None, "epochs": 0, "best_val_accuracy": None,
            "final_val_accuracy": None, "latency_s": None, "history": [],
            "started": _iso(started), "finished": None, "wall_time": None,
        }

        def finish(state: str, status: str, reason: str, values: list[float] | None = None):
            record.update(state=state, status=status, end_reason=reason, values=values,
                          finished=_iso(time.time()), wall_time=time.time() - started)
            trial.set_user_attr(REASON_ATTR, reason)
            log.write(f"end: {state} ({status}): {reason}")
            write_json(folder / "metrics.json", record)
            return state, values, record

        space = self.config.space
        values = space.suggest(trial)
        record["params"] = dict(trial.params)
        log.write(f"trial {trial.number} on {self.worker}; seed: {record['seed']}; params: {values}")
        try:
            genotype = space.make_genotype(values)
            if self.config.tabular is None:
                genotype = self.proxy(genotype)
                ghash = genotype.hash
            else:  # the cell's isomorphism key (set below) is the dedup key
                ghash = None
        except NasError as error:
            return finish("fail", "invalid_genotype", f"invalid genotype: {error}")
        atomic_write_text(folder / "genotype.yaml", genotype.dump())
        record["genotype"] = {"name": genotype.name, "hash": ghash, "path": "genotype.yaml",
                              "params": {k: _plain(v) for k, v in genotype.params.items()},
                              "input": list(genotype.input_shape)}
        if self.config.tabular is not None:
            return self._tabular(study, trial, values, record, finish, log)

        from nas.analysis import analyze

        t0 = time.perf_counter()
        try:
            stats = analyze(genotype)
        except NasError as error:
            return finish("fail", "invalid_genotype", f"analysis failed: {error}")
        record["static"] = {"params": stats.params, "macs": stats.macs,
                            "activation_bytes": stats.activation_bytes,
                            "peak_activation_bytes": stats.peak_activation_bytes}
        record["objectives"].update({k: v for k, v in (("params", stats.params), ("macs", stats.macs))
                                     if k in self.config.objectives})
        violated = space.check_constraints(stats)
        if violated:
            ms = (time.perf_counter() - t0) * 1000
            return finish("pruned", "constraint", f"constraint: {violated} (checked in {ms:.0f} ms)")
        trial.set_user_attr(HASH_ATTR, ghash)
        log.write(f"genotype {ghash[:12]}: {stats.params:,} params, {stats.macs:,} MACs")

        if self.config.dedup:
            earlier = _find_duplicate(study, ghash, trial.number)
            if earlier is not None:
                record["duplicate_of"] = earlier.number
                prior = dict(zip(self.config.objectives, earlier.values))
                record["objectives"].update(prior)
                record["best_val_accuracy"] = prior.get("val_accuracy")
                trial.set_user_attr(DUPLICATE_ATTR, earlier.number)
                return finish("complete", "duplicate",
                              f"isomorphic to trial {earlier.number}: its result is reused",
                              list(earlier.values))
        return self._train(study, trial, genotype, record, finish, log)

    def _tabular(self, study, trial, values, record, finish, log):
        from nas.tabular import Cell

        objective = self.table()
        cell = Cell.from_params(values)
        key = cell.key()
        record["genotype"]["cell"] = cell.to_str()
        record["genotype"]["cell_key"] = key
        record["genotype"]["hash"] = key
        trial.set_user_attr(HASH_ATTR, key)
        if self.config.dedup:
            earlier = _find_duplicate(study, key, trial.number)
            if earlier is not None:
                record["duplicate_of"] = earlier.number
                record["objectives"]["table_accuracy"] = earlier.values[0]
                trial.set_user_attr(DUPLICATE_ATTR, earlier.number)
                return finish("complete", "duplicate",
                              f"isomorphic to trial {earlier.number}: its result is reused",
                              list(earlier.values))
        try:
            accuracy = float(objective._accuracies[objective.table.row(cell)])
        except NasError as error:
            return finish("fail", "not_in_table", str(error))
        record["objectives"]["table_accuracy"] = accuracy
        log.write(f"cell {cell.to_str()}: {accuracy:.2f}")
        return finish("complete", "completed", "looked up in the NAS-Bench-201 table", [accuracy])

    def _train(self, study, trial, genotype, record, finish, log):
        import torch

        from nas.build import build_model
        from nas.train import measure_latency, train_model

        config = self.config
        try:
            train_config = config.train_config()
            if self.deadline is not None:
                left = max(1.0, self.deadline - time.time())
                limit = train_config.time_limit
                train_config = train_config.replace(time_limit=min(limit or left, left))
        except NasError as error:  # pragma: no cover - validated when loaded
            return finish("fail", "config", str(error))
        try:
            torch.manual_seed(train_config.seed)
            model = build_model(genotype)
        except Exception as error:  # noqa: BLE001 - any build failure ends the trial only
            return finish("fail", "build_error", f"build failed: {_one_line(error)}")

        multi = config.multi_objective
        use_optuna_pruner = config.pruner in ("median", "hyperband") and not multi

        def report(epoch: int, accuracy: float) -> bool:
            log.write(f"epoch {epoch}: val_accuracy {accuracy:.4f}")
            if use_optuna_pruner:
                trial.report(accuracy, epoch)
                return trial.should_prune()
            if self.halving is not None and epoch in self.halving.rungs:
                key = RUNG_ATTR.format(epoch=epoch)
                others = [t.user_attrs[key] for t in study.get_trials(deepcopy=False)
                          if key in t.user_attrs and t.number != trial.number]
                trial.set_user_attr(key, accuracy)
                if not self.halving.keep(accuracy, others):
                    log.write(f"halving: below the top 1/{self.halving.reduction:g} of "
                              f"{len(others) + 1} trials at epoch {epoch}")
                    return True
            return False

        try:
            result = train_model(model, self.data(), train_config, report=report)
        except Exception as error:  # noqa: BLE001 - a trial's failure must not stop the search
            log.write(traceback.format_exc())
            return finish("fail", "error", f"training failed: {_one_line(error)}")
        record.update(epochs=result.epochs, best_val_accuracy=result.best_val_accuracy,
                      final_val_accuracy=result.final_val_accuracy,
                      history=[dataclasses.asdict(h) for h in result.history],
                      batch_size=result.batch_size, train_time=result.wall_time)
        if result.status in ("nan_loss", "oom"):
            return finish("fail", result.status, result.reason)
        if result.status in ("pruned", "timeout"):
            return finish("pruned", result.status, result.reason)
        record["objectives"]["val_accuracy"] = result.best_val_accuracy
        if "latency" in config.objectives:
            lat = config.latency
            try:
                seconds = measure_latency(model, tuple(genotype.input_shape), device=train_config.device,
                                          batch_size=lat["batch_size"], repeats=lat["repeats"],
                                          warmup=lat["warmup"])
            except Exception as error:  # noqa: BLE001
                return finish("fail", "error", f"latency measurement failed: {_one_line(error)}")
            record["latency_s"] = seconds
            record["objectives"]["latency"] = seconds
        values = [float(record["objectives"][o]) for o in config.objectives]
        return finish("complete", "completed", result.reason, values)


def _find_duplicate(study: optuna.Study, key: str, number: int) -> Any:
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.number != number and t.user_attrs.get(HASH_ATTR) == key and t.values is not None:
            return t
    return None


class _Log:
    """The trial's log.txt, rewritten atomically on every line (it stays small)."""

    def __init__(self, path: Path):
        self.path, self.lines = path, []

    def write(self, line: str) -> None:
        stamp = _dt.datetime.now().strftime("%H:%M:%S")
        self.lines.append(f"{stamp} {line.rstrip()}")
        atomic_write_text(self.path, "\n".join(self.lines) + "\n")


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _iso(seconds: float) -> str:
    return _dt.datetime.fromtimestamp(seconds).isoformat(timespec="seconds")


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"[:400]


# --------------------------------------------------------------------------- workers


def _worker_loop(config: RunConfig, run_dir: Path, storage_url: str, *, index: int,
                 deadline: float | None, on_trial: Callable[[], None] | None = None) -> None:
    from optuna.trial import TrialState

    _quiet_optuna()
    if config.tabular is None:
        import torch

        torch.set_num_threads(config.torch_threads())
    study = _open_study(config, storage_url, create=False, sampler=make_sampler(config, worker=index))
    worker = f"{socket.gethostname()}:{os.getpid()}"
    halving = HalvingRule.from_config(config) if config.pruner == "halving" else None
    evaluator = _Evaluator(config, run_dir, worker, halving=halving, deadline=deadline)
    states = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "fail": TrialState.FAIL}
    lock = run_dir / ".ask.lock"
    while True:
        if deadline is not None and time.time() >= deadline:
            return
        with _file_lock(lock):
            if config.trials is not None and _counted(study) >= config.trials:
                return
            trial = study.ask()
        try:
            state, values, _ = evaluator.run(study, trial)
        except KeyboardInterrupt:
            _interrupt(study, trial.number, trial._trial_id, trial.params, trial.user_attrs, run_dir)
            raise
        except Exception as error:  # noqa: BLE001 - an engine bug in one trial: record, go on
            if is_disk_full(error):  # stops the run; the trial is re-run on --resume
                raise
            reason = f"internal error: {_one_line(error)}"
            trial.set_user_attr(REASON_ATTR, reason)
            write_json(trial_dir(run_dir, trial.number) / "metrics.json",
                       {"schema": METRICS_SCHEMA, "trial": trial.number, "state": "fail",
                        "status": "error", "end_reason": reason, "counted": True,
                        "params": dict(trial.params), "traceback": traceback.format_exc()})
            state, values = "fail", None
        if state == "complete":
            study.tell(trial, values)
        else:
            study.tell(trial, state=states[state])
        if on_trial is not None:
            on_trial()


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (best effort)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _worker_main(run_dir: str, storage_url: str, index: int, deadline: float | None,
                 overrides: dict[str, Any]) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    config = load_run_config(Path(run_dir))
    # The frozen config's budget may be older than this call's overrides.
    config = dataclasses.replace(config, **overrides)
    try:
        _worker_loop(config, Path(run_dir), storage_url, index=index, deadline=deadline)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as error:
        if not is_disk_full(error):
            raise
        from nas.cli import disk_full_message

        print(disk_full_message(error), file=sys.stderr)
        sys.exit(2)


# --------------------------------------------------------------------------- progress


class _Progress:
    def __init__(self, study: optuna.Study, config: RunConfig, *, enabled: bool, started: float):
        self.study, self.config, self.started = study, config, started
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=config.trials, unit="trial", dynamic_ncols=True,
                            desc=config.name, file=sys.stderr)
            self.update()

    def update(self) -> None:
        if self.bar is None:
            return
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state.is_finished() and not t.user_attrs.get(UNCOUNTED_ATTR)]
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        postfix = {}
        if complete:
            if self.config.multi_objective:
                postfix["pareto"] = len(self.study.best_trials)
            else:
                sign = 1 if self.config.directions[0] == "maximize" else -1
                postfix["best"] = f"{max(sign * t.values[0] for t in complete) * sign:.4g}"
        pruned = sum(t.state == TrialState.PRUNED for t in finished)
        failed = sum(t.state == TrialState.FAIL for t in finished)
        postfix.update(pruned=pruned, failed=failed)
        self.bar.n = len(finished)
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.update()
            self.bar.close()


# --------------------------------------------------------------------------- entry point


def run_search(
    config: RunConfig | str | Path,
    *,
    resume: bool = False,
    workers: int | None = None,
    storage: str | None = None,
    name: str | None = None,
    trials: int | None = None,
    runs_dir: str | Path = "runs",
    progress: bool = True,
) -> SearchSummary:
    """Run (or resume) the search a config describes, in ``runs_dir/NAME/``.

    Args:
        config: A :class:`RunConfig` or the path of its YAML file.
        resume: Continue the run in ``runs_dir/NAME`` (its config must match).
        workers: Processes on this machine. Default: the config's ``workers``.
        storage: An Optuna RDB URL or a journal file path. Default: the config's, else
            ``runs_dir/NAME/journal.log``.
        name: The run's name. Default: the config's ``name``.
        trials: The trial budget. Default: the config's ``trials``.
        runs_dir: Where run folders live. Default: ``runs``.
        progress: Show a progress bar on stderr.

    Raises:
        ConfigError: for a bad config, an existing run folder without ``resume``, a missing
            one with it, or a storage that cannot be opened; before any trial starts.
    """
    started = time.time()
    if not isinstance(config, RunConfig):
        config = load_config(config)
    changes: dict[str, Any] = {}
    if name is not None:
        if not name or "/" in name or name.startswith("."):
            raise ConfigError(f"must be a folder name, got {name!r}", path="--name")
        changes["name"] = name
        changes["data"] = dict(config.data, name=name)
    if trials is not None:
        if trials < 1:
            raise ConfigError(f"must be at least 1, got {trials}", path="--trials")
        changes["trials"] = trials
    if workers is not None:
        if workers < 1:
            raise ConfigError(f"must be at least 1, got {workers}", path="--workers")
        changes["workers"] = workers
    storage_path = "storage"
    if storage is not None:
        changes["storage"] = storage
        storage_path = "--storage"
    if changes:
        frozen = dict(changes.pop("data", config.data))
        frozen.update({k: v for k, v in changes.items() if k in ("trials", "workers")})
        config = dataclasses.replace(config, data=frozen, **changes)
    run_dir = Path(runs_dir) / config.name
    storage_url = config.storage or str(run_dir / "journal.log")
    if config.storage and "://" not in config.storage:
        storage_url = str(Path(config.storage).resolve())

    _quiet_optuna()
    make_sampler(config)  # a sampler this install lacks, or a bad option: fail before the folder
    if "://" in storage_url:
        open_storage(storage_url, file=config.file, path=storage_path)  # fail before the folder
    _prepare_run_dir(config, run_dir, resume=resume)
    write_json(run_dir / "run.json", {
        "name": config.name, "objectives": list(config.objectives),
        "directions": config.directions, "study_name": config.name,
        "storage": "journal.log" if config.storage is None else _masked(storage_url),
        "sampler": config.sampler, "pruner": config.pruner, "trials": config.trials,
        "timeout": config.timeout, "tabular": config.tabular is not None,
        "updated": _iso(time.time()),
    })
    study = _open_study(config, storage_url, create=True, storage_path=storage_path)
    if resume:
        _recover_interrupted(study, run_dir)
    _enqueue_seeds(study, config)

    deadline = None if config.timeout is None else started + config.timeout
    bar = _Progress(study, config, enabled=progress, started=started)
    try:
        if config.workers == 1:
            _worker_loop(config, run_dir, storage_url, index=0, deadline=deadline, on_trial=bar.update)
        else:
            _spawn_workers(config, run_dir, storage_url, deadline, bar)
    finally:
        bar.close()
    from optuna.trial import TrialState

    counts = {"complete": 0, "pruned": 0, "fail": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) \
                and not t.user_attrs.get(UNCOUNTED_ATTR):
            counts[t.state.name.lower()] += 1
    _, best = best_trials(run_dir)
    return SearchSummary(run_dir=run_dir, counts=counts, best=best,
                         objectives=config.objectives, elapsed=time.time() - started)


def _masked(url: str) -> str:
    from nas.search._study import _mask

    return _mask(url)


def _spawn_workers(config: RunConfig, run_dir: Path, storage_url: str, deadline: float | None,
                   bar: _Progress) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    overrides = {"trials": config.trials, "timeout": config.timeout, "workers": config.workers,
                 "threads": config.threads}
    processes = [
        context.Process(target=_worker_main, args=(str(run_dir), storage_url, i, deadline, overrides),
                        name=f"nas-worker-{i}")
        for i in range(config.workers)
    ]
    for p in processes:
        p.start()
    try:
        while any(p.is_alive() for p in processes):
            time.sleep(1.0)
            with contextlib.suppress(Exception):
                bar.update()
    except KeyboardInterrupt:
        for p in processes:
            if p.is_alive():
                os.kill(p.pid, signal.SIGINT)
        for p in processes:
            p.join(timeout=30)
        raise
    finally:
        for p in processes:
            p.join()
    bad = [p.exitcode for p in processes if p.exitcode not in (0, None)]
    if bad:
        raise ConfigError(f"{len(bad)} worker process(es) failed (exit codes {bad}); see the "
                          f"trials' log.txt in {run_dir}", path="workers")
