"""This machine's run folder ``runs/NAME/``: the frozen config, ``run.json``, the ask lock.

Layout in :mod:`nas.search`. Every file is written atomically (:mod:`nas.io`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nas._yaml import dump_yaml, load_yaml_file, read_bounded
from nas.errors import ConfigError
from nas.genotype import Genotype, load_genotype
from nas.io import atomic_write_text
from nas.search._config import RunConfig, load_config
from nas.search._records import trial_number, write_json
from nas.search._storage import mask

__all__ = ["check_trial_folders", "file_lock", "iso_time", "load_run_config", "prepare_run_dir", "write_run_info"]

#: Keys of the frozen config that may change between a run and its --resume.
#: They are this machine's choices, so a machine joining a study may differ in them too
#: (plugins are absolute paths on this machine; the frozen genotype still has to match).
RESUMABLE = ("trials", "timeout", "workers", "threads", "storage", "devices", "trials_per_device",
             "heartbeat", "plugins")


def freeze(config: RunConfig) -> tuple[dict[str, Any], str]:
    """``(config.yaml data, space_genotype.yaml text)``: the config with its space's genotype
    pointing at the frozen file and no storage URL."""
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


def prepare_run_dir(config: RunConfig, run_dir: Path, *, resume: bool) -> None:
    """Create ``run_dir`` with the frozen config, or check a resumed one's against ``config``.

    Raises:
        ConfigError: the folder exists without ``resume``, is missing with it, or its frozen
            config differs (other than :data:`RESUMABLE` keys).
    """
    data, genotype_text = freeze(config)
    frozen = run_dir / "config.yaml"
    if resume:
        if not frozen.is_file():
            if os.path.lexists(frozen):  # a folder, a FIFO, a broken link: damage, not "no run"
                raise ConfigError("damaged: not a regular file", file=str(frozen))
            raise ConfigError(f"nothing to resume: {run_dir} holds no run", file=config.file,
                              path="name")
        old = load_yaml_file(frozen, error=ConfigError)
        if not isinstance(old, dict):
            raise ConfigError(f"damaged: not a run config (a {type(old).__name__}, not a mapping)",
                              file=str(frozen))
        # Bounded, and never blocking: a FIFO, a missing or huge file is one line naming it.
        old_raw = read_bounded(run_dir / "space_genotype.yaml", error=ConfigError)
        old_text = old_raw.decode("utf-8", errors="replace")  # not UTF-8: differs, said below
        for key in sorted(set(old) | set(data)):
            if key not in RESUMABLE and old.get(key) != data.get(key):
                raise ConfigError(f"differs from the run being resumed ({frozen}); start a new "
                                  "run with --name", file=config.file, path=key)
        if old_text != genotype_text:
            raise ConfigError(f"the genotype differs from the run being resumed ({frozen})",
                              file=config.file, path="space.genotype")
    elif frozen.exists():
        raise ConfigError(f"run folder {run_dir} exists; use --resume to continue it or --name "
                          "to start another", file=config.file, path="name")
    elif os.path.lexists(run_dir / "trials"):  # an earlier run's results, its config lost
        raise ConfigError(f"run folder {run_dir} holds trials/ but no config.yaml (an earlier run's, "
                          "damaged?); a new run would overwrite its trials: move it aside or use --name",
                          file=config.file, path="name")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "space_genotype.yaml", genotype_text)
    atomic_write_text(frozen, dump_yaml(data))


def check_trial_folders(run_dir: Path, known: int) -> None:
    """Refuse to run on where the study (``known`` trials, numbered from 0) does not know a
    trial folder of ``run_dir``: its storage lost them (a journal deleted, emptied or cut
    short) or is another run's, and the next trials would overwrite them.

    A trials folder, or a trial's folder, that is a symbolic link is refused here too, before
    the study is written to: found at the first trial's first log line
    (:func:`nas.io.make_folder`), the trial Optuna had just made stayed running until a
    resume re-queued it.

    Raises:
        ConfigError: naming the trials folder and the first unknown trial, or the link.
    """
    from nas.io import LINK_REFUSED

    trials = run_dir / "trials"
    if trials.is_symlink():
        raise ConfigError(LINK_REFUSED, file=str(trials))
    if not trials.is_dir():
        return
    folders = [(entry, number) for entry in os.scandir(trials)
               if (number := trial_number(entry.name)) is not None]
    linked = sorted(entry.path for entry, _ in folders if entry.is_symlink())
    if linked:
        raise ConfigError(LINK_REFUSED, file=linked[0])
    unknown = sorted(number for _, number in folders if number >= known)
    if unknown:
        raise ConfigError(f"holds {len(unknown)} trial folder(s) from {unknown[0]:04d} on that the run's "
                          f"storage does not know (it has {known} trials): it lost them or is another "
                          "run's, and new trials would overwrite them; restore the storage or move the "
                          "run folder aside", file=str(trials))


def write_run_info(run_dir: Path, config: RunConfig, storage_url: str) -> None:
    """``run.json``: what the run is and where its study lives (password masked)."""
    write_json(run_dir / "run.json", {
        "name": config.name, "objectives": list(config.objectives),
        "directions": config.directions, "study_name": config.name,
        "storage": "journal.log" if config.storage is None else mask(storage_url),
        "sampler": config.sampler, "pruner": config.pruner, "trials": config.trials,
        "timeout": config.timeout, "tabular": config.tabular is not None,
        "plugins": list(config.plugins), "updated": iso_time(time.time()),
    })


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The frozen config of a run folder (with its frozen genotype), its plugins loaded
    first (the genotype may use their ops)."""
    from nas.plugins import load_plugins

    run_dir = Path(run_dir)
    frozen = load_yaml_file(run_dir / "config.yaml", error=ConfigError)
    plugins = frozen.get("plugins") if isinstance(frozen, dict) else None
    if isinstance(plugins, list):
        load_plugins(plugins, file=str(run_dir / "config.yaml"))
    genotype = load_genotype(run_dir / "space_genotype.yaml")
    return load_config(run_dir / "config.yaml", genotype=genotype)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if absent) for the ``with`` block, waited
    for (:func:`nas.io.try_file_lock`: an ``OSError`` naming ``path`` when it is not a regular
    file; a FIFO there hung the search)."""
    from nas.io import try_file_lock

    with try_file_lock(path, wait=True):
        yield


def iso_time(seconds: float) -> str:
    """Local ISO time to the second."""
    return _dt.datetime.fromtimestamp(seconds).isoformat(timespec="seconds")
