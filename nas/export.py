"""Save a genotype's model in a deployable format, chosen by the file suffix.

``.onnx`` (ONNX, dynamic batch), ``.pt`` (TorchScript, loads without this package),
``.pt2`` (``torch.export`` program) and ``.pth`` (``state_dict`` only; load it with
``torch.load(path, weights_only=True)``). Files are written atomically.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch

from nas.analysis import MAX_MEMORY
from nas.build import build_model
from nas.errors import ConfigError
from nas.genotype import Genotype
from nas.io import atomic_write_bytes

__all__ = ["export_model", "FORMATS"]

FORMATS = (".onnx", ".pt", ".pt2", ".pth")


def export_model(
    genotype: Genotype, path: str | Path, *, model: torch.nn.Module | None = None, max_memory: int = MAX_MEMORY
) -> Path:
    """Build ``genotype`` (or take ``model``, built from it, e.g. trained) in eval mode and save
    it to ``path``. Raises :class:`ConfigError` for an unknown suffix and
    :class:`nas.GenotypeError` when the network needs more than ``max_memory`` bytes
    (:func:`nas.analysis.check_memory`)."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise ConfigError(f"unknown model format '{path.suffix}' (use one of {', '.join(FORMATS)})", file=str(path))
    model = (model if model is not None else build_model(genotype, max_memory=max_memory)).eval()
    example = torch.zeros(1, *genotype.input_shape)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporters warn about deprecations that are not the user's
        if path.suffix == ".onnx":
            torch.onnx.export(
                model, (example,), buffer, dynamo=False, input_names=["input"],
                output_names=[f"output{i}" if i else "output" for i in range(_outputs(genotype))],
                dynamic_axes={"input": {0: "batch"}},
            )
        elif path.suffix == ".pt":
            torch.jit.save(torch.jit.script(model), buffer)
        elif path.suffix == ".pt2":
            torch.export.save(torch.export.export(model, (example,)), buffer)
        else:
            torch.save(model.state_dict(), buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _outputs(genotype: Genotype) -> int:
    return len(genotype.graph.graph["outputs"])
