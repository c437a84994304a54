"""Replayed block expansions and the direct WL hash change nothing but speed."""

from __future__ import annotations

import gc
import pickle
import random
import warnings

import networkx as nx
import pytest

import nas
from nas import ops
from nas.genotype import _expand, _hash
from nas.nb201 import nb201_params

NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


def _candidates() -> list[nas.Genotype]:
    rng = random.Random(3)
    genotypes = [nas.load_genotype(name) for name in ("resnet18", "densenet121", "darts_v2", "nb201", "mobilenet_v2")]
    nb201 = nas.load_genotype("nb201")
    for _ in range(6):
        e = [rng.choice(NB201_OPS) for _ in range(6)]
        genotypes.append(nb201.with_params(**nb201_params(f"|{e[0]}~0|+|{e[1]}~0|{e[2]}~1|+|{e[3]}~0|{e[4]}~1|{e[5]}~2|")))
    resnet = nas.load_genotype("genotypes/search/resnet_cifar.yaml")
    for block in ("cifar_basic", "basic_se", "bottleneck"):
        genotypes.append(resnet.with_params(block=block, depths=[rng.randint(1, 6) for _ in range(3)]))
    genotypes.append(nas.load_genotype(
        "input: [3, 8, 8]\n"
        "blocks:\n  pair:\n    inputs: [a, b]\n    nodes:\n      x: conv(4) <- a\n      y: conv(4) <- b\n"
        "      out: add <- x, y\n"
        "network:\n  s: relu\n  t: relu <- in\n  p: pair <- s, s\n  q: pair <- s, t\n  r: pair <- t, s\n"
        "  out: add <- p, q, r\n"
    ))
    genotypes.append(nas.load_genotype(  # a replayed node reading one source twice: one edge
        "input: [3, 8, 8]\nblocks:\n  twice:\n    nodes:\n      a: relu\n      out: add <- a, a\n"
        "network: [twice, twice, twice]\n"
    ))
    return genotypes


CANDIDATES = _candidates()


@pytest.mark.parametrize("genotype", CANDIDATES, ids=lambda g: g.name)
def test_replayed_expansion_equals_full_expansion(genotype, monkeypatch):
    replayed = _expand.expand(genotype)
    monkeypatch.setattr(_expand._Replay, "fits", lambda *args: False)
    full = _expand.expand(genotype)
    assert list(replayed.nodes(data=True)) == list(full.nodes(data=True))
    assert list(replayed.edges(data=True)) == list(full.edges(data=True))
    assert replayed.graph == full.graph


MIXED_CALLS = """\
input: [3, 8, 8]
network:
  - conv(4, k=1)
  - conv(4, k=1)
  - avgpool(2)
  - conv(4, k=1)
  - conv(4, k=1, bias=True)
  - bn
  - conv(4, k=1)
"""


@pytest.mark.parametrize("genotype", [*CANDIDATES, "mixed_calls"], ids=lambda g: getattr(g, "name", g))
def test_expansion_running_each_static_rule_once_equals_running_it_per_node(genotype, monkeypatch):
    # equal calls (op, arguments, input shapes) share one OpInfo; the same arguments at
    # another input shape, or resolved otherwise by their readers, are other calls
    genotype = nas.load_genotype(MIXED_CALLS) if genotype == "mixed_calls" else genotype
    cached = _expand.expand(genotype)
    monkeypatch.setattr(_expand._Expander, "infer", lambda self, op, args, shapes: op.infer(args, shapes))
    uncached = _expand.expand(genotype)
    assert list(cached.nodes(data=True)) == list(uncached.nodes(data=True))


def _networkx_hash(graph: nx.DiGraph) -> str:
    labelled = nx.DiGraph()
    outputs = graph.graph["outputs"]
    for node, data in graph.nodes(data=True):
        args = ",".join(f"{k}={data['args'][k]!r}" for k in sorted(data["args"]))
        marker = f"out{outputs.index(node)}" if node in outputs else ""
        labelled.add_node(node, label=f"{data['op']}({args}){data['shape']}{marker}")
    for source, target, data in graph.edges(data=True):
        op = graph.nodes[target]["op"]
        commutative = op == "input" or ops.get(op).commutative
        labelled.add_edge(source, target, port="" if commutative else str(data["port"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return nx.weisfeiler_lehman_graph_hash(labelled, node_attr="label", edge_attr="port", iterations=4, digest_size=16)


@pytest.mark.parametrize("genotype", CANDIDATES, ids=lambda g: g.name)
def test_hash_equals_networkx_weisfeiler_lehman(genotype):
    assert genotype.hash == _networkx_hash(genotype.graph)


@pytest.mark.parametrize("genotype", [*CANDIDATES, "bias_by_reader"], ids=lambda g: getattr(g, "name", g))
def test_expansion_labels_every_node_as_its_data_says(genotype):
    # the labels genotype.hash uses come from expansion (replays bring theirs, resolved nodes
    # are relabelled): each must be what the node's data gives now
    genotype = nas.load_genotype(BIAS_BY_READER) if genotype == "bias_by_reader" else genotype
    graph, labels = _expand.expand_labelled(genotype)
    assert {node: _hash.node_label(d["op"], d["args"], d["shape"]) for node, d in graph.nodes(data=True)} == labels
    assert _hash.graph_hash(graph, labels=labels) == _hash.graph_hash(graph)


def test_replay_keeps_recursion_through_parameters_an_error():
    text = (
        "input: [3, 8, 8]\nparams: {inner: relu}\n"
        "blocks:\n  a: ['seq(b(inner), b(inner))']\n  b:\n    args: {f: required}\n    nodes: ['f']\n"
        "network: [a, 'b(a)']\n"
    )
    with pytest.raises(nas.GenotypeError, match="references itself"):
        nas.load_genotype(text)


BIAS_BY_READER = """\
input: [3, 8, 8]
blocks:
  unit:
    nodes: [conv(4), bn, conv(4)]
network:
  a: unit
  b: bn
  c: unit <- b
  d: relu
  e: unit <- d
"""


@pytest.mark.parametrize("replays", [True, False])
def test_a_replayed_blocks_output_is_resolved_by_its_own_readers(replays, monkeypatch):
    # c and e are one block call (same arguments and input shape): e is c replayed; the inner
    # conv is resolved inside the block, the output conv by whatever reads it outside
    if not replays:
        monkeypatch.setattr(_expand._Replay, "fits", lambda *args: False)
    graph = _expand.expand(nas.load_genotype(BIAS_BY_READER))
    bias = {node: data["args"]["bias"] for node, data in graph.nodes(data=True) if data["op"] == "conv"}
    assert bias == {
        "a.conv0": False, "a.conv1": False,  # a's output is read by bn
        "c.conv0": False, "c.conv1": True,  # c's output is read by relu
        "e.conv0": False, "e.conv1": True,  # e's output is the network's
    }
    assert graph.nodes["c.conv1"]["params"] == 4 * 4 * 9 + 4
    assert graph.nodes["a.conv1"]["params"] == 4 * 4 * 9


@pytest.mark.parametrize("limits", [_expand.Limits(max_nodes=15), _expand.Limits(max_params=600)])
def test_limits_reached_inside_a_replay_fail_at_the_same_node(limits, monkeypatch):
    # the last unit is the one before it replayed, and crosses the limit at its second node
    genotype = nas.load_genotype(
        "input: [3, 8, 8]\nblocks:\n  unit:\n    nodes: [conv(4), bn, relu]\n"
        "network:\n  - repeat(3, unit)\n  - 'conv(4, k=1, s=2)'\n  - unit\n  - unit\n"
    )
    with pytest.raises(nas.GenotypeError) as replayed:
        _expand.expand(genotype, limits)
    monkeypatch.setattr(_expand._Replay, "fits", lambda *args: False)
    with pytest.raises(nas.GenotypeError) as full:
        _expand.expand(genotype, limits)
    assert "unit1" in str(replayed.value)
    assert str(replayed.value) == str(full.value)


@pytest.mark.parametrize("counts", [[], [("0f" * 16, 1)], [("0f" * 16, 3), ("a1" * 16, 12)]])
def test_the_counts_text_is_the_tuples_str(counts):
    assert _hash._tuple_text(counts) == str(tuple(counts))


def test_hash_tables_keep_label_texts_apart():
    # equal values of other types or signs would share a kept label if the key ignored them
    for args in ({"x": 1}, {"x": 1.0}, {"x": True}, {"x": 0.0}, {"x": -0.0}, {"x": (1, 2)}, {"x": [1, 2]}):
        assert _hash.node_label("op", args, (4, 8, 8)) == _hash._label_text("op", args, (4, 8, 8))
    assert _hash.node_label("op", {"x": 1}, (4.0, 8, 8)) == "op(x=1)(4.0, 8, 8)"


def test_hash_is_the_same_from_empty_and_from_full_tables(monkeypatch):
    genotypes = CANDIDATES[5:9]
    warm = [_hash.graph_hash(g.graph) for g in genotypes]
    monkeypatch.setattr(_hash, "MAX_KEPT", 7)  # emptied over and over
    _hash._DIGESTS.clear()
    _hash._LABELS.clear()
    assert [_hash.graph_hash(g.graph) for g in genotypes] == warm
    assert len(_hash._DIGESTS) <= 7 and len(_hash._LABELS) <= 7


def test_a_replay_passing_its_input_through_leaves_the_inputs_bias_to_its_readers(monkeypatch):
    # `same` adds no node; it is recorded while `a` waits for its readers, and replayed inside
    # `wrap`, where `a` must not be settled as wrap's own: relu reads `a` after wrap
    genotype = nas.load_genotype(
        "input: [3, 8, 8]\nblocks:\n  same:\n    nodes: ['repeat(0, relu)']\n  wrap:\n    nodes: [same, bn]\n"
        "network:\n  a: conv(4)\n  r: same <- a\n  w: wrap <- a\n  out: relu <- a\noutputs: [out, w]\n"
    )
    replayed = genotype.graph
    monkeypatch.setattr(_expand._Replay, "fits", lambda *args: False)
    full = _expand.expand(genotype)
    assert full.nodes["a"]["args"]["bias"] is True  # relu does not cancel a bias
    assert list(replayed.nodes(data=True)) == list(full.nodes(data=True))


def test_add_in_bulk_leaves_the_graph_as_add_node_and_add_edge_do():
    # _add_in_bulk writes networkx's private adjacency dicts: this fails if networkx keeps
    # anything else for a node or an edge, or lays these out differently
    # (b reads a twice: one edge, the last port)
    nodes = [("a", {"op": "relu", "args": {}, "inputs": ("s",)}),
             ("b", {"op": "add", "args": {}, "inputs": ("s", "a", "a")})]
    bulk, public = nx.DiGraph(), nx.DiGraph()
    for graph in (bulk, public):
        graph.add_node("s", op="input")
    templates = [{**data, "inputs": ("stale",)} for _, data in nodes]  # a replay's, other names
    _expand._add_in_bulk(bulk, [name for name, _ in nodes], templates, [data["inputs"] for _, data in nodes])
    for node, data in nodes:
        public.add_node(node, **data)
        for port, source in enumerate(data["inputs"]):
            public.add_edge(source, node, port=port)

    def layout(graph: nx.DiGraph) -> dict:
        return {key: list(value.items()) if isinstance(value, dict) else value for key, value in vars(graph).items()}

    assert layout(bulk) == layout(public)
    assert list(bulk.edges(data=True)) == list(public.edges(data=True))
    assert list(bulk.in_edges(data=True)) == list(public.in_edges(data=True))
    assert bulk.adj["a"]["b"] is bulk.pred["b"]["a"]  # one edge dict, as networkx shares it


def test_hash_keeps_no_digest_of_a_long_text():
    # `a` has 40 readers: its refinement texts are longer than the tables keep
    readers = "".join(f"  n{i}: bn <- a\n" for i in range(40))
    genotype = nas.load_genotype(
        f"input: [3, 8, 8]\nnetwork:\n  a: relu\n{readers}  out: add <- {', '.join(f'n{i}' for i in range(40))}\n"
    )
    _hash._DIGESTS.clear()
    assert _hash.graph_hash(genotype.graph) == _networkx_hash(genotype.graph)

    def text_length(key: tuple) -> int:  # the length of the text a kept key stands for
        if isinstance(key[1], str):  # one reader, one source: five strings
            return sum(map(len, key))
        return len(key[0]) + sum(map(len, key[1][1:])) + sum(map(len, key[2:]))

    assert _hash._DIGESTS and max(map(text_length, _hash._DIGESTS)) <= _hash.MAX_KEPT_TEXT


def test_a_recorded_expansion_shares_no_arguments_with_the_graph_it_was_recorded_from():
    # the memo outlives the graph: a caller's edit of one genotype's graph must not reach a
    # variant's expansion
    genotype = nas.load_genotype(
        "input: [3, 8, 8]\nparams: {w: 4}\nblocks:\n  unit:\n    nodes: [conv(4), bn]\nnetwork: [unit, 'conv(w)']\n"
    )
    genotype.graph.nodes["unit0.conv0"]["args"]["k"] = 5
    assert genotype.with_params(w=8).graph.nodes["unit0.conv0"]["args"]["k"] == 3


@pytest.mark.parametrize("max_params", [3 * 81, 3 * 81 - 1])
def test_a_replay_counts_parameters_as_the_full_expansion_does(max_params, monkeypatch):
    # the limit counts a node's parameters when it is added: unit's conv (81 weights) gets its
    # bias (relu reads it) only when the block ends, and a replay must not count that bias
    genotype = nas.load_genotype("input: [3, 8, 8]\nblocks:\n  unit:\n    nodes: [conv(3), relu]\nnetwork: [unit, unit, unit]\n")
    limits = _expand.Limits(max_params=max_params)

    def outcome() -> object:
        try:
            return list(_expand.expand(genotype, limits).nodes(data=True))
        except nas.GenotypeError as error:
            return str(error)

    replayed = outcome()
    monkeypatch.setattr(_expand._Replay, "fits", lambda *args: False)
    assert replayed == outcome()


def test_expansion_and_hash_leave_no_reference_cycles():
    # garbage in reference cycles is freed only by the collector (call_text made one per block call)
    base = nas.load_genotype("nb201")
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for cell in ("nor_conv_3x3", "skip_connect", "none"):
            genotype = base.with_params(node1_in0=cell, node3_in2="avg_pool_3x3")
            assert genotype.hash and genotype.graph
        del genotype
        assert gc.collect() == 0
    finally:
        if enabled:
            gc.enable()


def test_block_calls_are_flattened_when_first_read_and_pickle_as_a_dict():
    genotype = nas.load_genotype("resnet18")
    blocks = genotype.graph.graph["blocks"]
    assert blocks._flat is None  # expansion leaves them to the reader (drawings)
    assert list(blocks.items())[:3] == [("layer1.0", "basic(64)"), ("layer1.0.downsample", "shortcut(64, 1)"),
                                        ("layer1.1", "basic(64)")]
    assert len(blocks) == 19 and "layer4.1" in blocks and blocks == dict(blocks)
    copied = pickle.loads(pickle.dumps(genotype.graph)).graph["blocks"]
    assert type(copied) is dict and copied == blocks
