"""The builder: module names, traceability, export, in-place safety (every op against its
example: tests/test_ops.py)."""

from __future__ import annotations

import pytest
import torch

import nas
from nas.cli import main

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
