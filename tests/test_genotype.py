"""The language: features, canonical dump, hashing, parameters."""

from __future__ import annotations

import copy
import pickle
import textwrap

import pytest

import nas
from nas.analysis import analyze
from nas.errors import GenotypeError

CELL = textwrap.dedent(
    """
    name: cell
    input: [3, 16, 16]
    params: {width: 8, op_a: conv3, op_b: identity, classes: 10, se_on: false}
    blocks:
      conv3:
        args: {c: "cin"}
        nodes: ['conv(c, k=3)', bn, relu]
      unit:
        args: {c: required, mid: "c // 2"}
        nodes:
          a: op_a() <- in
          b: op_b <- in
          reduce: conv(mid, k=1) <- a
          expand: conv(c, k=1)
          gate: "se(max(1, cin // 4)) if se_on else identity"
          out: add <- gate, b
    network:
      - stem: conv(width, k=3)
      - body: repeat(2, unit(width))
      - head: seq(gap, dropout(0.1), linear(classes))
    """
)


def test_features_expand_to_the_expected_graph():
    genotype = nas.load_genotype(CELL)
    stats = analyze(genotype)
    assert stats.output_shape == (10,)
    paths = [node.path for node in stats.nodes]
    assert paths[:3] == ["stem", "body.0.a.conv0", "body.0.a.bn0"]
    assert "body.1.expand" in paths and "head.2" in paths
    # mid defaults to c // 2 = 4; cin inside conv3 is the unit input's 8 channels
    reduce = next(n for n in stats.nodes if n.path == "body.0.reduce")
    assert reduce.output_shape == (4, 16, 16)
    assert reduce.params == 8 * 4 + 4  # bias derived on: no batch norm reads it


def test_conv_bias_is_derived_from_readers():
    genotype = nas.load_genotype(CELL)
    args = genotype.graph.nodes["body.0.a.conv0"]["args"]
    assert args["bias"] is False  # a batch norm reads it
    assert genotype.graph.nodes["stem"]["args"]["bias"] is True


def test_op_valued_and_conditional_parameters():
    base = nas.load_genotype(CELL)
    swapped = base.with_params(op_a="identity", op_b="conv3")
    assert analyze(swapped).params == analyze(base).params  # same ops, other edges
    assert swapped.hash != base.hash
    with_se = base.with_params(se_on=True)
    assert "body.0.gate" in with_se.graph and with_se.graph.nodes["body.0.gate"]["op"] == "se"
    assert analyze(with_se).params > analyze(base).params


def test_dump_round_trips_and_is_stable():
    genotype = nas.load_genotype(CELL)
    text = genotype.dump()
    again = nas.load_genotype(text)
    assert again == genotype
    assert again.dump() == text
    assert again.hash == genotype.hash


def test_dump_cached_by_entry_equals_a_whole_dump():
    from nas._yaml import _dump, dump_yaml

    shared = [1, 2]
    documents = [nas.load_genotype(p).to_dict() for p in sorted(nas.zoo_dir().rglob("*.yaml"))
                 if "lib" not in p.relative_to(nas.zoo_dir()).parts]
    documents += [{"a": shared, "b": shared},  # one list twice: an anchor and an alias
                  {"a": {"x": shared}, "b": [shared]}, {"a": "x", "b": "kept\n\n"},
                  {"a": 1, "b": 1.0, "c": True, "d": "1"}, {"a": 1.0, "b": 1, "c": "1", "d": True}, {}]
    base = nas.load_genotype(CELL)
    documents += [base.with_params(op_a=op).to_dict() for op in ("conv3", "identity", "conv3")]
    for data in documents * 2:  # the second round reads the cache
        assert dump_yaml(data) == _dump(data)


def test_dump_inlines_only_reachable_blocks(tmp_path):
    genotype = nas.load_genotype("resnet18")
    blocks = genotype.to_dict()["blocks"]
    assert set(blocks) == {"basic", "shortcut", "conv_bn"}  # not `bottleneck`
    path = tmp_path / "copy.yaml"
    path.write_text(genotype.dump())
    assert nas.load_genotype(path) == genotype


def test_hash_is_invariant_to_names_and_order():
    first = """
input: [3, 8, 8]
network:
  a: conv(4) <- in
  b: conv(4, k=1) <- in
  out: add <- a, b
"""
    second = """
input: [3, 8, 8]
network:
  y: conv(4, k=1) <- in
  x: conv(4) <- in
  out: add <- y, x
"""
    third = first.replace("conv(4, k=1)", "conv(4, k=5)")
    assert nas.load_genotype(first).hash == nas.load_genotype(second).hash
    assert nas.load_genotype(first).hash != nas.load_genotype(third).hash


def test_concat_order_matters_for_the_hash():
    text = """
input: [3, 8, 8]
network:
  a: conv(4) <- in
  b: conv(8) <- in
  out: concat <- {}
"""
    assert nas.load_genotype(text.format("a, b")).hash != nas.load_genotype(text.format("b, a")).hash


def test_with_params_checks_kind():
    genotype = nas.load_genotype(CELL)
    with pytest.raises(GenotypeError, match="expects a value like 8"):
        genotype.with_params(width="wide")
    assert genotype.with_params(width=16).params["width"] == 16


def test_with_params_refuses_an_integer_beyond_float_range():
    genotype = nas.load_genotype(CELL)
    with pytest.raises(GenotypeError, match=r"params.width: 1000\.\.\.\(401 digits\) is not a finite number"):
        genotype.with_params(width=10**400)


def test_load_keyword_params_and_input():
    genotype = nas.load_genotype("resnet18", width=32, classes=10).with_input((3, 32, 32))
    stats = analyze(genotype)
    assert stats.output_shape == (10,)
    assert stats.input_shape == (3, 32, 32)


def test_absent_nodes_and_extra_outputs():
    text = """
input: [3, 8, 8]
params: {aux: false}
outputs: [out, side]
network:
  trunk: conv(4) <- in
  side: "seq(gap, linear(2)) if aux else None <- trunk"
  out: seq(gap, linear(3)) <- trunk
"""
    assert analyze(nas.load_genotype(text)).output_shapes == ((3,),)
    assert analyze(nas.load_genotype(text, aux=True)).output_shapes == ((3,), (2,))


def test_multi_input_block():
    text = """
input: [3, 8, 8]
blocks:
  cell:
    inputs: [s0, s1]
    nodes:
      a: conv(4) <- s0
      b: conv(4) <- s1
      out: add <- a, b
network:
  p: conv(3) <- in
  c: cell <- in, p
"""
    assert analyze(nas.load_genotype(text)).output_shape == (4, 8, 8)


def test_zero_repeat_is_identity():
    genotype = nas.load_genotype("resnet18", depths=[0, 1, 1, 1])
    assert not any(node.startswith("layer1.") for node in genotype.graph)
    assert analyze(genotype).output_shape == (1000,)


def test_memory_estimates():
    stats = analyze(nas.load_genotype("resnet18"))
    # The stem's output alone is 64 * 112 * 112 floats; the peak holds at least two of them.
    assert stats.peak_activation_bytes >= 2 * 64 * 112 * 112 * 4
    assert stats.activation_bytes > stats.peak_activation_bytes
    frame = stats.per_node
    assert list(frame.columns[:3]) == ["path", "op", "args"]
    assert frame["params"].sum() == stats.params


def test_joins_skip_absent_inputs():
    text = """
input: [3, 8, 8]
params: {c: 3}
blocks:
  unit:
    args: {c: required}
    nodes:
      body: conv(c) <- in
      skip: "identity if c == cin else None <- in"
      out: add <- body, skip
network:
  - u: unit(c)
"""
    residual = nas.load_genotype(text)
    assert residual.graph.nodes["u.out"]["op"] == "add"
    plain = nas.load_genotype(text, c=5)
    assert "u.out" not in plain.graph and plain.graph.graph["outputs"] == ["u.body"]


def test_repeat_binds_the_copy_index():
    text = """
input: [3, 8, 8]
params: {depths: [2, 3]}
network:
  - a: repeat(depths[0], drop_path(0.5 * i / sum(depths)))
  - b: repeat(depths[1], drop_path(0.5 * (depths[0] + i) / sum(depths)))
"""
    graph = nas.load_genotype(text).graph
    rates = [graph.nodes[n]["args"]["p"] for n in ("a.0", "a.1", "b.0", "b.1", "b.2")]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_block_argument_may_not_hide_an_op():
    with pytest.raises(GenotypeError, match="argument 'se' would hide the op 'se'"):
        nas.load_genotype("input: [3, 8, 8]\nblocks:\n  b: {args: {se: 0}, nodes: [relu]}\nnetwork: [b]\n")


def test_copy_index_is_reserved():
    with pytest.raises(GenotypeError, match="'i' is reserved"):
        nas.load_genotype("input: [3, 8, 8]\nblocks:\n  b: {args: {i: 0}, nodes: [relu]}\nnetwork: [b]\n")


def test_mobile_macro_seeds_are_the_zoo_networks():
    path = nas.zoo_dir() / "search" / "mobile_macro.yaml"
    assert nas.analyze(nas.load_genotype(path)).params == 3_504_872  # MobileNetV2
    efficientnet_b0 = nas.load_genotype(
        path,
        widths=[32, 16, 24, 40, 80, 112, 192, 320, 1280],
        depths=[1, 2, 2, 3, 3, 4, 1],
        kernels=[3, 3, 5, 3, 5, 5, 3],
        se_ratios=[0.25] * 7,
        act="silu",
    )
    assert nas.analyze(efficientnet_b0).params == 5_288_548


@pytest.mark.parametrize("copier", [lambda g: pickle.loads(pickle.dumps(g)), copy.deepcopy, copy.copy])
def test_a_genotype_pickles_and_copies(copier):
    genotype = nas.load_genotype("resnet18", width=8, classes=10).with_input((3, 32, 32))
    copied = copier(genotype)
    assert copied == genotype and copied.hash == genotype.hash
    assert copied.blocks["basic"].parsed_defaults.keys() == genotype.blocks["basic"].parsed_defaults.keys()
    with pytest.raises(TypeError):
        copied.params["width"] = 1  # still read-only
