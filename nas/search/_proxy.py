"""The genotype as trained: a space's genotype fitted to a dataset at a width multiplier.

One home for the rule, shared by proxy training in a search and by ``nas retrain``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nas.errors import GenotypeError
from nas.genotype import Genotype

__all__ = ["check_classifier", "fit_to_data", "scale_widths"]


def scale_widths(genotype: Genotype, multiplier: float) -> Genotype:
    """``genotype`` with each parameter its ``scaling.width`` names multiplied by
    ``multiplier`` (integers, or integers in a list; rounded, at least 1)."""
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


def fit_to_data(genotype: Genotype, input_shape: Sequence[int], num_classes: int,
                width_multiplier: float = 1.0) -> Genotype:
    """``genotype`` taking ``input_shape`` images, with ``classes`` (when it has that
    parameter) set to ``num_classes``, widths scaled by ``width_multiplier``.

    Raises:
        GenotypeError: the result is not a valid genotype.
    """
    genotype = genotype.with_input(tuple(input_shape))
    if "classes" in genotype.params:
        genotype = genotype.with_params(classes=num_classes)
    return check_classifier(scale_widths(genotype, width_multiplier), num_classes)


def check_classifier(genotype: Genotype, num_classes: int) -> Genotype:
    """``genotype``, whose (first) output must be one score per class: ``(num_classes,)``.

    Raises:
        GenotypeError: another output shape, naming the genotype's file.
    """
    shape = genotype.output_shape
    if shape != (num_classes,):
        raise GenotypeError(
            f"the network outputs {shape}, not one score for each of the dataset's {num_classes} "
            f"classes: give it a 'classes' parameter, or end it with linear({num_classes})",
            file=genotype.source)
    return genotype
