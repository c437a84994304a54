"""An exported ONNX file computes what the torch model computes: onnxruntime runs it (the dev
extra declares onnxruntime for this), at the exported batch size and another (dynamic batch)."""

from __future__ import annotations

import numpy as np
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
    import pytest

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
