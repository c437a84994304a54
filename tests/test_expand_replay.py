"""Replayed block expansions and the direct WL hash change nothing but speed."""

from __future__ import annotations

import random
import warnings

import networkx as nx
import pytest

import nas
from nas import ops
from nas.genotype import _expand
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


def test_replay_keeps_recursion_through_parameters_an_error():
    text = (
        "input: [3, 8, 8]\nparams: {inner: relu}\n"
        "blocks:\n  a: ['seq(b(inner), b(inner))']\n  b:\n    args: {f: required}\n    nodes: ['f']\n"
        "network: [a, 'b(a)']\n"
    )
    with pytest.raises(nas.GenotypeError, match="references itself"):
        nas.load_genotype(text)
