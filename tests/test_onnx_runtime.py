"""An exported ONNX file computes what the torch model computes: onnxruntime runs it (the dev
extra declares onnxruntime for this), at the exported batch size and another (dynamic batch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nas
from nas.export import export_model


def test_onnx_export_runs_in_onnxruntime_with_the_models_outputs(tmp_path):
    import onnxruntime

    genotype = nas.load_genotype("resnet20", width=8).with_input((3, 16, 16))
    torch.manual_seed(0)
    model = nas.build_model(genotype).eval()
    path = export_model(genotype, tmp_path / "model.onnx", model=model)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = torch.randn(batch, 3, 16, 16)
        with torch.no_grad():
            expected = model(x).numpy()
        (got,) = session.run(None, {"input": x.numpy()})
        assert got.shape == expected.shape == (batch, 10)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_a_model_built_from_another_network_is_refused_not_exported(tmp_path):
    genotype = nas.load_genotype("name: m\ninput: [3, 8, 8]\nnetwork: [conv(4), gap, linear(2)]")
    model = nas.build_model(genotype)
    # Both were exported: the file then claimed a 16 x 16 input, or another architecture.
    for other in (genotype.with_input((3, 16, 16)), nas.load_genotype("resnet20", width=8)):
        with pytest.raises(nas.ConfigError, match=r"model\.pt: the model was built from another network than "):
            export_model(other, tmp_path / "model.pt", model=model)
    with pytest.raises(TypeError, match="^model must be a torch.nn.Module, got str$"):
        export_model(genotype, tmp_path / "model.pt", model="model.pth")
    assert not (tmp_path / "model.pt").exists()
    assert export_model(nas.load_genotype(genotype.dump()), tmp_path / "model.pt", model=model).is_file()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_adaptive_pooling_to_a_size_that_does_not_divide_the_input_exports(tmp_path):
    # was 'unexpected SymbolicValueError: Unsupported: ONNX export of operator
    # adaptive_avg_pool2d, output size that are not factor of input size' after the exporter
    # printed its graph (AlexNet's 6 x 6 at any input but multiples of 6)
    import onnxruntime

    genotype = nas.load_genotype("name: m\ninput: [3, 11, 7]\nnetwork: ['conv(4)', 'adaptive_avgpool(5)', "
                                 "flatten, 'linear(3)']")
    torch.manual_seed(0)
    model = nas.build_model(genotype).eval()
    path = export_model(genotype, tmp_path / "model.onnx", model=model)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 11, 7)
    with torch.no_grad():
        expected = model(x).numpy()
        pooled = torch.nn.functional.adaptive_avg_pool2d(model.conv0(x), 5)  # torch's own operator
        np.testing.assert_allclose(model.adaptive_avgpool0(model.conv0(x)).numpy(), pooled.numpy(), atol=1e-6)
    (got,) = session.run(None, {"input": x.numpy()})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # another input size, as torch's own module takes any: was the 11 x 7 input's bins, silently
    bigger = torch.randn(2, 3, 22, 9)
    scripted = torch.jit.load(export_model(genotype, tmp_path / "model.pt", model=model))
    with torch.no_grad():
        features = model.conv0(bigger)
        pooled = torch.nn.functional.adaptive_avg_pool2d(features, 5)
        np.testing.assert_allclose(model.adaptive_avgpool0(features).numpy(), pooled.numpy(), atol=1e-6)
        np.testing.assert_allclose(scripted(bigger).numpy(), model(bigger).numpy(), atol=1e-6)


class _Unscriptable(torch.nn.Module):
    def forward(self, x):
        return x * sum([1 for _ in range(2)], 0)  # a comprehension TorchScript cannot compile


def test_a_module_an_exporter_cannot_convert_is_one_line_naming_the_file(tmp_path):
    # was 'unexpected RuntimeError: Arguments for call are not valid. (an input nas does not
    # check, or a bug ...)' naming the genotype, for a plugin's op TorchScript cannot compile
    from nas.ops import Example, Op, OpInfo, register
    from nas.ops import _registry

    class Unscriptable(Op):
        """An op whose module TorchScript cannot compile."""

        name = "test_unscriptable"
        example = Example()

        def infer(self, args, shapes):
            return OpInfo(shapes[0])

        def build(self, args, shapes, context):
            return _Unscriptable()

    register(Unscriptable)
    try:
        genotype = nas.load_genotype("name: m\ninput: [3, 4, 4]\nnetwork: [test_unscriptable]")
        with pytest.raises(nas.ConfigError) as error:
            export_model(genotype, tmp_path / "model.pt")
        assert str(error.value).startswith(f"{tmp_path / 'model.pt'}: the TorchScript exporter cannot convert "
                                           "this model (RuntimeError: "), str(error.value)
        assert str(error.value).endswith("another format may work (.onnx, .pt2, .pth)")
        assert not (tmp_path / "model.pt").exists()
        assert export_model(genotype, tmp_path / "model.pt2").is_file()
    finally:
        del _registry._REGISTRY["test_unscriptable"], _registry._CANONICAL["test_unscriptable"]
