"""Export a run's best genotype(s): canonical YAML, plus the TRAINED model of each as ONNX and
``.pt2`` when the search kept its weights (``trials/NNNN/weights.pth``, see
:mod:`nas.search._keep`).

Exported models take images as users have them (float in [0, 1], NCHW, any batch) and
normalise them inside the graph; ``trial_NNNN.json`` next to them holds the class names and
the normalisation (also in the ONNX ``metadata_props``). Without kept weights nothing is
exported unless ``untrained=True`` asks for the architecture alone (random weights, no
normalisation: for deployment tools and for training in full with ``nas train``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nas.errors import ConfigError
from nas.io import atomic_write_text
from nas.results._load import load
from nas.results._summary import best

if TYPE_CHECKING:
    from torch import nn

    from nas.genotype import Genotype
    from nas.preprocessing import Preprocessing

__all__ = ["ExportedGenotype", "export_best"]

#: Model formats written for each exported trial (ONNX first).
MODEL_FORMATS = (".onnx", ".pt2")


@dataclass(frozen=True)
class ExportedGenotype:
    """One exported trial: its number, seed name (or ``None``), the files written, and
    whether the models hold the trained weights."""

    trial: int
    seed: str | None
    yaml: Path
    onnx: Path | None
    trained: bool = False
    models: tuple[Path, ...] = field(default=())


def export_best(run_dir: str | Path, out: str | Path, *, onnx: bool = True,
                untrained: bool = False, formats: tuple[str, ...] = MODEL_FORMATS) -> list[ExportedGenotype]:
    """Write ``trial_NNNN.yaml`` (and the models ``trial_NNNN.onnx``, ``.pt2`` with
    ``trial_NNNN.json``) into ``out`` for the run's best trial (one objective) or every member
    of its Pareto set (several), the genotype as trained (the dataset's input shape and
    classes, the proxy width).

    Args:
        onnx: Write models (False: YAML only).
        untrained: When a best trial has no kept weights, export its architecture with random
            weights instead of refusing.
        formats: Model suffixes to write (see :data:`nas.export.FORMATS`).

    Raises:
        ConfigError: not a run folder, no complete trial, a best trial without its genotype
            file, (with ``onnx`` and not ``untrained``) a best trial without kept weights, or
            kept weights or ``weights.json`` that do not fit its genotype: in each case before
            anything is written. A model that fails to export leaves no file of its trial.
    """
    from nas.export import export_model
    from nas.genotype import load_genotype
    from nas.search._keep import kept_weights

    run_dir, out = Path(run_dir), Path(out)
    top = best(load(run_dir))
    if top.empty:
        raise ConfigError("no complete trial to export", file=str(run_dir))
    plans = []
    for _, row in top.iterrows():
        number = int(row["number"])
        source = row["genotype_path"]
        if not isinstance(source, str) or not Path(source).is_file():
            raise ConfigError(f"trial {number} has no genotype file", file=str(run_dir))
        weights = kept_weights(Path(source).parent)
        plans.append((number, row, load_genotype(source), weights))
    missing = [number for number, _, _, weights in plans if weights is None]
    if onnx and missing and not untrained:
        raise ConfigError(
            f"no trained weights kept for trial{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(str, missing))}; nothing exported (pass --untrained to export the "
            "architecture with random weights, or retrain it: nas retrain / nas train)",
            file=str(run_dir))
    trained = [_trained(genotype, weights) if onnx else (None, None)
               for _, _, genotype, weights in plans]  # every file checked before any is written
    exported = []
    for (number, row, genotype, weights), (model, preprocessing) in zip(plans, trained):
        stem = out / f"trial_{number:04d}"
        models = [stem.with_suffix(suffix) for suffix in formats] if onnx else []
        files = [stem.with_suffix(".yaml"), *models, *([stem.with_suffix(".json")] if preprocessing else [])]
        try:
            atomic_write_text(files[0], genotype.dump())
            for path in models:
                export_model(genotype, path, model=model, preprocessing=preprocessing)
        except BaseException:
            for path in files:  # no part of a failed export is left behind
                with contextlib.suppress(OSError):  # (--out may be no folder): the error is the first
                    path.unlink()
            raise
        onnx_path = next((m for m in models if m.suffix == ".onnx"), None)
        exported.append(ExportedGenotype(trial=number, seed=row["seed"] if row["is_seed"] else None,
                                         yaml=files[0], onnx=onnx_path, trained=weights is not None,
                                         models=tuple(models)))
    return exported


def _trained(genotype: Genotype, weights: Path | None) -> tuple[nn.Module, Preprocessing | None]:
    """The model of ``genotype`` with the kept ``weights`` and the preprocessing of their
    ``weights.json`` (random weights and None without ``weights``).

    Raises:
        ConfigError: naming the file: the weights do not fit the genotype, or ``weights.json``
            is unreadable or is for another input shape (naming its key ``input``) or another
            number of classes (``classes``).
    """
    from nas.build import build_model
    from nas.preprocessing import Preprocessing
    from nas.search._keep import WEIGHTS_JSON
    from nas.weights import load_state_dict_file, state_dict_bytes

    model = build_model(genotype)
    if weights is None:
        return model, None
    load_state_dict_file(model, weights, max_bytes=2 * state_dict_bytes(model) + (64 << 20))
    meta = weights.parent / WEIGHTS_JSON
    preprocessing = Preprocessing.read(meta)
    if tuple(preprocessing.input_shape) != tuple(genotype.input_shape):
        raise ConfigError(f"the weights were trained at {list(preprocessing.input_shape)}, the "
                          f"trial's genotype takes {list(genotype.input_shape)}",
                          file=str(meta), path="input")
    outputs = genotype.output_shape
    if outputs != (len(preprocessing.classes),):  # the exported class names label its scores
        raise ConfigError(f"names {len(preprocessing.classes):,} classes, the trial's network "
                          f"outputs {outputs}", file=str(meta), path="classes")
    return model, preprocessing
