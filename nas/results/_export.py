"""Export a run's best genotype(s): canonical YAML plus an ONNX model each (untrained weights:
the architecture, for deployment tools and for training in full with ``nas train``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nas.errors import ConfigError
from nas.io import atomic_write_text
from nas.results._load import load
from nas.results._summary import best

__all__ = ["ExportedGenotype", "export_best"]


@dataclass(frozen=True)
class ExportedGenotype:
    """One exported trial: its number, seed name (or ``None``) and the files written."""

    trial: int
    seed: str | None
    yaml: Path
    onnx: Path | None


def export_best(run_dir: str | Path, out: str | Path, *, onnx: bool = True) -> list[ExportedGenotype]:
    """Write ``trial_NNNN.yaml`` (and ``trial_NNNN.onnx``) into ``out`` for the run's best trial
    (one objective) or every member of its Pareto set (several), the genotype as trained
    (the dataset's input shape and classes, the proxy width).

    Raises:
        ConfigError: not a run folder, no complete trial, or a best trial without its genotype file.
    """
    from nas.genotype import load_genotype

    run_dir, out = Path(run_dir), Path(out)
    top = best(load(run_dir))
    if top.empty:
        raise ConfigError("no complete trial to export", file=str(run_dir))
    exported = []
    for _, row in top.iterrows():
        number = int(row["number"])
        source = row["genotype_path"]
        if not isinstance(source, str) or not Path(source).is_file():
            raise ConfigError(f"trial {number} has no genotype file", file=str(run_dir))
        genotype = load_genotype(source)
        yaml_path = out / f"trial_{number:04d}.yaml"
        atomic_write_text(yaml_path, genotype.dump())
        onnx_path = None
        if onnx:
            from nas.export import export_model

            onnx_path = export_model(genotype, out / f"trial_{number:04d}.onnx")
        exported.append(ExportedGenotype(trial=number, seed=row["seed"] if row["is_seed"] else None,
                                         yaml=yaml_path, onnx=onnx_path))
    return exported
