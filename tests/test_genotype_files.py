"""Every genotype file in genotypes/ validates, builds, and agrees with its static analysis."""

from __future__ import annotations

import pytest
import torch

import nas
from nas.errors import GenotypeError

FILES = sorted(p for p in nas.zoo_dir().rglob("*.yaml") if "lib" not in p.relative_to(nas.zoo_dir()).parts)
SIZES = (32, 48, 64, 96, 128, 160, 192, 224, 299)


def small_variant(genotype: nas.Genotype) -> nas.Genotype:
    """The genotype at the smallest square input that keeps its output shape."""
    channels, height, _ = genotype.input_shape
    native = nas.analyze(genotype).output_shapes
    for size in SIZES:
        if size >= height:
            break
        candidate = genotype.with_input((channels, size, size))
        try:
            if nas.analyze(candidate).output_shapes == native:
                return candidate
        except GenotypeError:
            continue
    return genotype


def test_zoo_is_not_empty():
    assert len(FILES) >= 5


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(nas.zoo_dir())))
def test_builds_and_matches_static_analysis(path):
    genotype = small_variant(nas.load_genotype(path))
    stats = nas.analyze(genotype)
    torch.manual_seed(0)
    model = nas.build_model(genotype)
    assert sum(p.numel() for p in model.parameters()) == stats.params
    x = torch.randn(2, *genotype.input_shape, requires_grad=True)
    outputs = model(x)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    assert tuple(tuple(o.shape[1:]) for o in outputs) == stats.output_shapes
    sum(o.sum() for o in outputs).backward()
    assert all(torch.isfinite(o).all() for o in outputs)
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(nas.zoo_dir())))
def test_round_trips_through_its_dump(path):
    genotype = nas.load_genotype(path)
    again = nas.load_genotype(genotype.dump())
    assert again == genotype and again.hash == genotype.hash
