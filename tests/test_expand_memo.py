"""Block expansions kept across a genotype's variants (nas.genotype._memo) change nothing but speed."""

from __future__ import annotations

import dataclasses
import pickle
import random

import pytest

import nas
from nas.genotype import _expand
from nas.genotype._memo import ExpansionMemo
from nas.nb201 import nb201_params

NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
READS_A_PARAMETER = """\
input: [3, 8, 8]
params: {k: 3, c: 4}
blocks:
  unit:
    nodes:
      - conv(c, k=k)
      - relu
network:
  - unit
  - unit
"""


def fresh(genotype: nas.Genotype):
    """The genotype's graph expanded without any kept expansion."""
    return _expand.expand(dataclasses.replace(genotype, _memo=ExpansionMemo()))


def same_graph(a, b) -> bool:
    return (
        list(a.nodes(data=True)) == list(b.nodes(data=True))
        and list(a.edges(data=True)) == list(b.edges(data=True))
        and a.graph == b.graph
    )


def test_variants_equal_expansions_made_from_scratch():
    rng = random.Random(7)
    nb201 = nas.load_genotype("nb201")
    resnet = nas.load_genotype("genotypes/search/resnet_cifar.yaml")
    variants = []
    for _ in range(8):
        e = [rng.choice(NB201_OPS) for _ in range(6)]
        variants.append(nb201.with_params(**nb201_params(f"|{e[0]}~0|+|{e[1]}~0|{e[2]}~1|+|{e[3]}~0|{e[4]}~1|{e[5]}~2|")))
        variants.append(resnet.with_params(
            block=rng.choice(["cifar_basic", "basic_se", "bottleneck"]),
            depths=[rng.randint(1, 4) for _ in range(3)],
            widths=[rng.choice([16, 24, 32]) for _ in range(3)],
        ))
    variants.append(nb201.with_input((3, 16, 16)))
    for variant in variants:
        assert same_graph(variant.graph, fresh(variant))
        assert variant.hash == nas.genotype.graph_hash(fresh(variant))


def test_a_block_reading_a_parameter_is_not_reused_for_another_value():
    base = nas.load_genotype(READS_A_PARAMETER)
    kernels = {k: [d["args"]["k"] for _, d in base.with_params(k=k).graph.nodes(data=True) if d["op"] == "conv"]
               for k in (3, 5, 3, 1)}
    assert kernels == {3: [3, 3], 5: [5, 5], 1: [1, 1]}


def test_parameter_values_are_compared_with_their_type():
    base = nas.load_genotype(READS_A_PARAMETER)
    base.with_params(c=4).graph  # noqa: B018 - kept with c=4 (an int)
    variant = base.with_params(c=4.0)
    with pytest.raises(nas.GenotypeError) as kept:
        variant.graph  # noqa: B018
    with pytest.raises(nas.GenotypeError) as scratch:
        fresh(variant)
    assert str(kept.value) == str(scratch.value)


def test_genotypes_with_other_blocks_do_not_use_the_memo():
    base = nas.load_genotype(READS_A_PARAMETER)
    base.graph  # noqa: B018
    other = nas.load_genotype(READS_A_PARAMETER.replace("- relu", "- bn"))
    mixed = dataclasses.replace(base, blocks=other.blocks)  # base's memo, other blocks
    assert [d["op"] for _, d in mixed.graph.nodes(data=True)] == ["input", "conv", "bn", "conv", "bn"]


def test_the_memo_is_bounded_and_not_pickled():
    memo = ExpansionMemo(max_nodes=5)
    for index in range(4):
        memo.keep(("key", index), (), f"expansion {index}", 2)
    assert memo.find(("key", 0), lambda names: ()) is None  # the oldest left
    assert memo.find(("key", 3), lambda names: ()) == "expansion 3"
    memo.keep(("big",), (), "too big", 6)
    assert memo.find(("big",), lambda names: ()) is None
    assert pickle.loads(pickle.dumps(memo)).find(("key", 3), lambda names: ()) is None


def test_expansion_and_hash_pause_the_collector_and_restore_it(monkeypatch):
    import gc

    from nas._gc import gc_paused

    seen = []
    real = _expand.expand_labelled
    monkeypatch.setattr(_expand, "expand_labelled", lambda g: (seen.append(gc.isenabled()), real(g))[1])
    assert gc.isenabled()
    genotype = nas.load_genotype("nb201").with_params(width=12)  # a new variant: not expanded yet
    assert genotype.hash and seen and not any(seen) and gc.isenabled()
    gc.disable()
    try:
        with gc_paused():  # already disabled: left disabled
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(ZeroDivisionError), gc_paused():
        1 / 0
    assert gc.isenabled()
