"""The builder: module names, traceability, export, in-place safety (every op against its
example: tests/test_ops.py)."""

from __future__ import annotations

import copy
import io

import pytest
import torch

import nas
from nas.cli import main
from nas.build import GenotypeModule
from nas.nb201 import nb201_params

SMALL = (3, 32, 32)


@pytest.fixture(scope="module")
def resnet():
    genotype = nas.load_genotype("resnet18", width=16, classes=10).with_input(SMALL)
    return genotype, nas.build_model(genotype)


def test_module_names_are_hierarchical_paths(resnet):
    genotype, model = resnet
    keys = list(model.state_dict())
    assert keys[:2] == ["conv1.weight", "bn1.weight"]
    assert "layer2.0.downsample.proj.conv.weight" in keys
    assert list(nas.build_model(genotype).state_dict()) == keys  # stable


def test_fx_trace_and_torchscript_agree(resnet):
    _, model = resnet
    model.eval()
    x = torch.randn(2, *SMALL)
    expected = model(x)
    traced = torch.fx.symbolic_trace(model)
    scripted = torch.jit.script(model)
    torch.testing.assert_close(traced(x), expected)
    torch.testing.assert_close(scripted(x), expected)


def test_inplace_gives_the_same_gradients(resnet):
    genotype, _ = resnet
    torch.manual_seed(0)
    fast = nas.build_model(genotype)
    plain = nas.build_model(genotype, inplace=False)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(2, *SMALL)
    fast(x).square().sum().backward()
    plain(x).square().sum().backward()
    for (name, a), (_, b) in zip(fast.named_parameters(), plain.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_multiple_outputs_return_a_tuple():
    text = """
input: [3, 8, 8]
params: {aux: true}
outputs: [out, side]
network:
  trunk: conv(4) <- in
  side: "seq(gap, linear(2)) if aux else None <- trunk"
  out: seq(gap, linear(3)) <- trunk
"""
    out, side = nas.build_model(nas.load_genotype(text))(torch.randn(1, 3, 8, 8))
    assert out.shape == (1, 3) and side.shape == (1, 2)


@pytest.mark.parametrize("suffix", [".onnx", ".pt", ".pth"])
def test_decode_writes_a_loadable_model(tmp_path, suffix, capsys):
    out = tmp_path / f"model{suffix}"
    assert main(["decode", "resnet18", "--set", "classes=10", "--input", "3,32,32", "--out", str(out)]) == 0
    if suffix == ".onnx":
        import onnx

        onnx.checker.check_model(onnx.load(str(out)))
    elif suffix == ".pt":
        assert torch.jit.load(str(out))(torch.randn(1, *SMALL)).shape == (1, 10)
    else:
        state = torch.load(out, weights_only=True)
        assert "fc.weight" in state


@pytest.mark.parametrize("fmt, start", [("dot", "digraph resnet18 {"), ("mermaid", "flowchart TD")])
def test_graph_drawings(capsys, fmt, start):
    assert main(["graph", "resnet18", "--format", fmt]) == 0
    text = capsys.readouterr().out
    assert text.startswith(start)
    assert "layer1.0-1: basic(64) x2" in text and "fc: linear 1000" in text
    assert text.count("->" if fmt == "dot" else "-->") == 11  # a chain of 12 boxes


def test_join_keeps_at_least_one_input_and_means_in_eval():
    genotype = nas.load_genotype("input: [2, 4, 4]\nnetwork:\n  a: scale(2.0) <- in\n  out: join(0.9) <- a, in\n")
    model = nas.build_model(genotype)
    x = torch.rand(1, 2, 4, 4) + 1
    torch.testing.assert_close(model.eval()(x), 1.5 * x)
    model.train()
    torch.manual_seed(0)
    seen = {round((model(x) / x).mean().item(), 4) for _ in range(60)}
    assert seen <= {1.0, 2.0, 1.5} and {1.0, 2.0} <= seen  # single survivors happen; never zero


PRUNABLE = """
input: [3, 8, 8]
network:
  a: conv(4) <- in
  dead: seq(relu, conv(4, k=3), bn) <- a
  zeros: zero <- dead
  gone: skip <- zeros
  sum: add <- a, gone
  r: relu <- sum
  both: add <- r, a
  out: seq(gap, linear(3)) <- both
"""


def _pruned_and_full(genotype):
    torch.manual_seed(0)
    pruned = nas.build_model(genotype)
    full = nas.build_model(genotype, prune=False)
    full.load_state_dict(pruned.state_dict())
    return pruned, full


def test_pruning_skips_dead_work_and_keeps_parameters_outputs_and_gradients():
    # `sum` adds a zero (through an alias), so it is `a` itself, an alias: the in-place relu
    # reading it must not overwrite `a`, which `both` reads; then nothing needs `gone` or `dead`
    pruned, full = _pruned_and_full(nas.load_genotype(PRUNABLE))
    assert list(pruned.state_dict()) == list(full.state_dict())
    assert "dead" in full.code and "zeros" in full.code
    assert "dead" not in pruned.code and "zeros" not in pruned.code and "sum" not in pruned.code
    x = torch.randn(2, 3, 8, 8)
    out = pruned(x)
    expected = full(x)
    torch.testing.assert_close(out, expected)
    out.square().sum().backward()
    expected.square().sum().backward()
    for (name, a), (_, b) in zip(pruned.named_parameters(), full.named_parameters()):
        if name.startswith("dead."):
            assert a.grad is None and not b.grad.any(), name
        else:
            torch.testing.assert_close(a.grad, b.grad, msg=name)


@pytest.mark.parametrize("cell", [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",  # node 2 dead
    "|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|none~1|none~2|",  # nodes 1 and 2 dead
    "|none~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_1x1~1|nor_conv_3x3~2|",  # disconnected
])
def test_pruned_nb201_cells_train_as_the_full_network(cell):
    genotype = nas.load_genotype("nb201", width=4, cells=1, **nb201_params(cell)).with_input((3, 8, 8))
    models = _pruned_and_full(genotype)
    assert len(models[0].graph.nodes) < len(models[1].graph.nodes)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    losses = []
    for model in models:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(3):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)  # bit-identical here; rounding may differ


def _torch_save_and_load(model):
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


@pytest.mark.parametrize("copier", [copy.deepcopy, _torch_save_and_load])
def test_a_built_model_copies_and_saves_whole(copier):
    """deepcopy (EMA and SWA copies, best-model snapshots) and torch.save of the model keep its
    class, genotype, mode, every submodule (a pruned branch's too) and its outputs."""
    cell = "|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|none~1|none~2|"
    genotype = nas.load_genotype("nb201", width=4, cells=1, **nb201_params(cell)).with_input((3, 8, 8))
    model = nas.build_model(genotype).eval()
    x = torch.randn(2, 3, 8, 8)
    copied = copier(model)
    assert isinstance(copied, GenotypeModule) and copied.genotype == genotype and not copied.training
    assert list(copied.state_dict()) == list(model.state_dict()) and copied.code == model.code
    assert not {id(p) for p in copied.parameters()} & {id(p) for p in model.parameters()}
    torch.testing.assert_close(copied(x), model(x))


@pytest.mark.parametrize("cell, depends", [
    ("|none~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_1x1~1|nor_conv_3x3~2|", False),  # 10% in the table
    ("|none~0|+|skip_connect~0|none~1|+|none~0|none~1|nor_conv_3x3~2|", True),
    ("|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|none~1|none~2|", True),
])
def test_depends_on_input_sees_cells_cut_off_by_none_edges(cell, depends):
    from nas.analysis import depends_on_input

    assert depends_on_input(nas.load_genotype("nb201", **nb201_params(cell)).graph) is depends


@pytest.mark.parametrize("graph", [None, "nb201", "genotype", "digraph", "graph"])
def test_depends_on_input_of_something_else_than_a_genotype_graph_is_a_type_error(graph):
    import networkx as nx

    from nas.analysis import depends_on_input

    # A Genotype, an empty DiGraph or an undirected Graph failed with AttributeError or KeyError.
    graph = {"genotype": nas.load_genotype("resnet18"), "digraph": nx.DiGraph(),
             "graph": nx.Graph([(1, 2)])}.get(graph, graph)
    with pytest.raises(TypeError, match=r"^graph must be an expanded genotype's graph \(Genotype.graph\), got "):
        depends_on_input(graph)


@pytest.mark.parametrize("max_memory", [float("nan"), -1, "4G", None, True])
def test_a_memory_limit_that_is_not_a_number_of_bytes_is_refused(max_memory):
    # NaN turned the limit off silently; "4G" and None failed comparing them with an int.
    with pytest.raises(nas.ConfigError, match="^max_memory: must be a number of bytes >= 0, got "):
        nas.build_model(nas.load_genotype("name: m\ninput: [4]\nnetwork: [linear(2)]"), max_memory=max_memory)
