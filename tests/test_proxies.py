"""nas.proxies: every score against a closed form or an independent few-line implementation
on tiny networks, the NaN cases, determinism, the ensemble and ``nas score``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import nas
import nas.proxies as P
from nas.errors import ConfigError

MLP = """
name: mlp
input: [4]
network:
  - linear(3)
  - relu
  - linear(2)
"""
CHAIN = "name: chain\ninput: [4]\nnetwork:\n  - linear(3, bias=False)\n  - linear(2, bias=False)\n"
SEED = 3


def weights(text: str, seed: int = SEED) -> dict[str, torch.Tensor]:
    """The initial weights score() sees: the model built under ``seed``."""
    torch.manual_seed(seed)
    model = nas.build_model(nas.load_genotype(text), inplace=False)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 4, generator=g), torch.tensor([0, 1, 1, 0, 1, 0])


def value(name: str, text: str, data=None) -> float:
    result = P.score(nas.load_genotype(text), data, [name], seed=SEED)[name]
    assert result.defined, result.reason
    return result.value


def mlp_forward(w, x):
    z1 = x @ w["linear0.weight"].T + w["linear0.bias"]
    return z1, z1.relu() @ w["linear1.weight"].T + w["linear1.bias"]


def test_synflow_of_a_linear_chain_is_its_closed_form():
    w = weights(CHAIN)
    path = w["linear1.weight"].abs().double() @ w["linear0.weight"].abs().double() @ torch.ones(4).double()
    # R = 1^T |W2| |W1| 1 is linear in each layer's weights, so each layer contributes R.
    assert value("synflow", CHAIN) == pytest.approx(2 * float(path.sum()), rel=1e-12)


def test_snip_and_grad_norm_match_a_hand_written_backward(batch):
    x, y = batch
    w = {k: v.requires_grad_(True) for k, v in weights(MLP).items()}
    loss = F.cross_entropy(mlp_forward(w, x)[1], y)
    g0, g1 = torch.autograd.grad(loss, [w["linear0.weight"], w["linear1.weight"]])
    snip = (g0 * w["linear0.weight"]).abs().sum() + (g1 * w["linear1.weight"]).abs().sum()
    assert value("snip", MLP, batch) == pytest.approx(float(snip.detach()), rel=1e-5)
    assert value("grad_norm", MLP, batch) == pytest.approx(float(g0.norm() + g1.norm()), rel=1e-5)


def test_grasp_matches_the_full_hessian(batch):
    x, y = batch
    w = weights(MLP)
    shapes = [w["linear0.weight"].shape, w["linear1.weight"].shape]
    flat = torch.cat([w["linear0.weight"].flatten(), w["linear1.weight"].flatten()]).double()

    def loss(theta):
        w0 = theta[:12].view(shapes[0])
        w1 = theta[12:].view(shapes[1])
        z = (x.double() @ w0.T + w["linear0.bias"].double()).relu() @ w1.T + w["linear1.bias"].double()
        return F.cross_entropy(z, y)

    g = torch.autograd.functional.jacobian(loss, flat)
    h = torch.autograd.functional.hessian(loss, flat)
    assert value("grasp", MLP, batch) == pytest.approx(float(-(flat * (h @ g)).sum()), rel=1e-4, abs=1e-9)


def test_fisher_matches_the_closed_form_of_activation_gradients(batch):
    x, y = batch
    w = weights(MLP)
    z1, z2 = mlp_forward(w, x)
    g2 = (z2.softmax(1) - F.one_hot(y, 2)) / len(x)  # dL/dz2 of the mean cross-entropy
    g1 = (g2 @ w["linear1.weight"]) * (z1 > 0)
    fisher = sum(0.5 * (z * g).pow(2).mean(0).sum() for z, g in ((z1, g1), (z2, g2)))
    assert value("fisher", MLP, batch) == pytest.approx(float(fisher), rel=1e-4)


def test_naswot_is_the_log_determinant_of_hamming_similarities(batch):
    x, _ = batch
    z1, _ = mlp_forward(weights(MLP), x)
    codes = (z1 > 0).numpy()
    n, units = codes.shape
    kernel = np.array([[units - np.sum(codes[i] != codes[j]) for j in range(n)] for i in range(n)])
    sign, logdet = np.linalg.slogdet(kernel.astype(float))
    if sign <= 0:  # the tiny net may repeat a pattern: then the score must be NaN
        assert math.isnan(P.score(nas.load_genotype(MLP), batch, ["naswot"], seed=SEED)["naswot"].value)
    else:
        assert value("naswot", MLP, batch) == pytest.approx(logdet, rel=1e-9)


def test_naswot_on_a_wider_net_matches_numpy():
    text = "name: wide\ninput: [4]\nnetwork:\n  - linear(32)\n  - relu\n  - linear(2)\n"
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 4, generator=g), torch.tensor([0, 1, 0, 1, 0])
    w = weights(text)
    codes = ((x @ w["linear0.weight"].T + w["linear0.bias"]) > 0).numpy()
    kernel = np.array([[32 - np.sum(a != b) for b in codes] for a in codes], dtype=float)
    assert value("naswot", text, (x, y)) == pytest.approx(np.linalg.slogdet(kernel)[1], rel=1e-9)


def test_jacov_of_a_linear_network_is_its_closed_form(batch):
    # Every image has the same Jacobian, so the correlation matrix is all ones: eigenvalues N, 0...
    n, k = len(batch[0]), 1e-5
    expected = -(math.log(n + k) + 1 / (n + k) + (n - 1) * (math.log(k) + 1 / k))
    assert value("jacov", CHAIN, batch) == pytest.approx(expected, rel=1e-6)


def test_zen_matches_an_independent_implementation():
    text = "name: c\ninput: [2, 4, 4]\nnetwork:\n  - conv(3, k=1, bias=False)\n  - gap\n  - linear(2, bias=False)\n"
    shape = (16, 2, 4, 4)
    g = torch.Generator().manual_seed(SEED)  # draw order: weights, then x, then the noise
    conv = torch.randn(3, 2, 1, 1, generator=g)
    torch.randn(2, 3, generator=g)
    x = torch.randn(shape, generator=g)
    x2 = x + 0.01 * torch.randn(shape, generator=g)
    delta = (F.conv2d(x, conv) - F.conv2d(x2, conv)).abs().flatten(1).sum(1).mean()
    assert value("zen", text) == pytest.approx(math.log(float(delta)), rel=1e-5)


def test_meco_matches_numpy():
    text = "name: c\ninput: [2, 4, 4]\nnetwork:\n  - conv(3, k=1, bias=False)\n  - gap\n  - linear(2)\n"
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 2, 4, 4, generator=g), torch.tensor([0, 1, 0, 1])
    out = F.conv2d(x[:1], weights(text)["conv0.weight"])[0].reshape(3, -1).double().numpy()
    expected = np.linalg.eigvalsh(np.corrcoef(out))[0]
    assert value("meco", text, (x, y)) == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_static_scores():
    assert value("params", MLP) == 4 * 3 + 3 + 3 * 2 + 2
    assert value("macs", CHAIN) == 4 * 3 + 3 * 2


def test_no_weights_gives_nan_with_a_reason():
    text = "name: pool\ninput: [2, 4, 4]\nnetwork:\n  - gap\n"
    x, y = torch.randn(4, 2, 4, 4), torch.tensor([0, 1, 0, 1])
    scores = P.score(nas.load_genotype(text), (x, y), ["snip", "grad_norm", "grasp", "fisher",
                                                       "synflow", "naswot", "params"])
    for name in ("snip", "grad_norm", "grasp", "fisher", "synflow"):
        assert math.isnan(scores[name].value) and "no convolution or linear" in scores[name].reason
    assert "no ReLU" in scores["naswot"].reason
    assert scores["params"].value == 0 and scores["params"].defined


def test_disconnected_cell_gives_nan_for_every_dynamic_proxy():
    from nas.nb201 import nb201_params

    arch = "|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"
    g = nas.load_genotype("nb201", width=4, cells=1, **nb201_params(arch))
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    scores = P.score(g, (x, y))
    for name, s in scores.items():
        if P.get_proxy(name).static:
            assert s.defined
        else:
            assert math.isnan(s.value) and s.reason == P.DISCONNECTED, name


def test_scores_are_deterministic_given_the_seed():
    from nas.nb201 import nb201_params

    arch = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    g = nas.load_genotype("nb201", width=4, cells=1, **nb201_params(arch))
    gen = torch.Generator().manual_seed(0)
    data = (torch.randn(8, 3, 32, 32, generator=gen), torch.arange(8) % 10)
    first = P.score(g, data, seed=5)
    again = P.score(g, data, seed=5)
    reordered = P.score(g, data, list(reversed(P.proxy_names())), seed=5)
    other = P.score(g, data, ["snip", "synflow", "zen"], seed=6)
    for name, s in first.items():
        assert s.defined, (name, s.reason)
        assert again[name].value == s.value and reordered[name].value == s.value, name
    for name in ("snip", "synflow", "zen"):
        assert other[name].value != first[name].value


def test_bad_requests_are_config_errors():
    with pytest.raises(ConfigError, match="unknown proxy 'nope'; valid: .*synflow"):
        P.score(nas.load_genotype(MLP), None, ["nope"])
    with pytest.raises(ConfigError, match="need images"):
        P.score(nas.load_genotype(MLP), None, ["snip"])


X4, Y2 = torch.zeros(3, 4), torch.tensor([0, 1, 0])


@pytest.mark.parametrize("data, options, message", [
    ((X4, Y2), {"names": "snip"}, r"names must be a list of names, got the string 'snip' \(for one: \['snip'\]\)"),
    ((torch.zeros(3, 5), Y2), {}, r"images are \(5,\) but genotype 'mlp' takes \(4,\)"),
    ((torch.zeros(3, 1, 4), Y2), {}, r"images are \(1, 4\) but genotype 'mlp' takes \(4,\)"),
    ((X4.double(), Y2), {}, "images must be a float32 tensor, got torch.float64"),
    ((X4, torch.tensor([0, 1, 2])), {}, r"labels must lie in \[0, 2\) \(the network's 2 classes\), got 0 to 2"),
    ((X4, torch.tensor([0, -1, 1])), {}, r"labels must lie in \[0, 2\)"),
    ((X4, Y2.float()), {}, r"labels must be a 1-D int64 tensor, got torch.float32 of shape \(3,\)"),
    ((X4, Y2[:, None]), {}, r"labels must be a 1-D int64 tensor, got torch.int64 of shape \(3, 1\)"),
    ((X4, Y2), {"seed": -1}, r"seed: must be an integer in \[0, 4294967295\], got -1"),
    ((X4, Y2), {"seed": 2**70}, "seed: must be an integer"),
    ((X4, Y2), {"device": "tpu"}, "device: must be cpu, cuda or cuda:N, got 'tpu'"),
    ((X4, Y2), {"device": "cuda:99"}, "device: cuda:99: this machine has"),
])
def test_misused_arguments_are_one_line_config_errors_not_torch_tracebacks(data, options, message):
    # Each failed inside torch (a conv's channel message, "Target 2 is out of bounds", an
    # overflow unpacking the seed, no NVIDIA driver) or, for names="snip", as proxy 's'.
    options = {"names": ["snip"], **options}
    with pytest.raises(ConfigError, match=f"^{message}"):
        P.score(nas.load_genotype(MLP), data, options.pop("names"), **options)


@pytest.mark.parametrize("batch_size", [-3, 1, 4097, 10**9, True, 2.5])
def test_a_batch_size_outside_two_to_max_batch_is_refused_not_sliced(batch_size):
    from nas.data import load_dataset

    # batch_size=-3 took all but the last 3 images; 10**9 took the whole training split (the
    # bound nas score --batch and proxies.batch had, the API had not); True was 2 images.
    data = load_dataset("digits", subset=200)
    message = rf"^batch_size: must be an integer in \[2, 4096\], got {batch_size}$"
    with pytest.raises(ConfigError, match=message):
        P.image_batch(data, batch_size=batch_size)
    for given in (data, (X4, Y2)):  # checked whatever the data, even a prepared batch
        with pytest.raises(ConfigError, match=message):
            P.score(nas.load_genotype(MLP), given, ["naswot"], batch_size=batch_size)


@pytest.mark.parametrize("seed", [True, 1.5, 2**70])
def test_an_image_batch_seed_is_checked(seed):
    from nas.data import load_dataset

    # each failed in torch's manual_seed (2**70: an OverflowError traceback)
    with pytest.raises(ConfigError, match=r"^seed: must be an integer in \[0, 4294967295\], got "):
        P.image_batch(load_dataset("digits", subset=200), seed=seed)


def test_a_prepared_batch_over_max_batch_is_refused():
    images, labels = torch.zeros(4097, 4), torch.zeros(4097, dtype=torch.int64)
    with pytest.raises(ConfigError, match=r"^need 2 to 4,096 images with one label each, got images \(4097, 4\)"):
        P.score(nas.load_genotype(MLP), (images, labels), ["naswot"])
    assert P.score(nas.load_genotype(MLP), (images[:4096], labels[:4096]), ["naswot"])  # scored


def test_dataset_batch_is_stratified_and_normalised():
    from nas.data import load_dataset

    data = load_dataset("digits", subset=200)
    x, y = P.image_batch(data, batch_size=20, seed=1)
    assert x.shape[0] == 20 and x.dtype == torch.float32
    assert sorted(torch.bincount(y, minlength=10).tolist()) == [2] * 10


def test_rank_ensemble_and_correlations():
    scores = {"a": [1.0, 2.0, 3.0, math.nan], "b": [4.0, 1.0, 3.0, 2.0]}
    # ranks a: 2, 3, 4, 1 (NaN last); b: 4, 1, 3, 2; normalised by N = 4
    assert P.rank_ensemble(scores).tolist() == pytest.approx([0.75, 0.5, 0.875, 0.375])
    expected_log = [math.log(0.5 * 1), math.log(0.75 * 0.25), math.log(1 * 0.75), math.log(0.25 * 0.5)]
    assert P.rank_ensemble(scores, method="log").tolist() == pytest.approx(expected_log)
    assert P.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert P.spearman([math.nan, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert P.kendall([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(ConfigError, match="valid: mean, log"):
        P.rank_ensemble(scores, method="max")


@pytest.mark.parametrize("correlation", [P.spearman, P.kendall])
@pytest.mark.parametrize("y", [[1.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
def test_correlations_of_unequal_lengths_say_so(correlation, y):
    # numpy's "dimensions ... must match exactly" and scipy's "shapes are incompatible".
    with pytest.raises(ValueError, match=rf"^x and y must be equally long \(one score per network each\), "
                                         rf"got 3 and {len(y)}$"):
        correlation([1.0, 2.0, 3.0], y)


def test_cli_score_prints_scores_and_reasons(capsys, tmp_path):
    from nas.cli import main

    (tmp_path / "mlp.yaml").write_text(MLP)
    (tmp_path / "chain.yaml").write_text(CHAIN)
    files = [str(tmp_path / "mlp.yaml"), str(tmp_path / "chain.yaml")]
    assert main(["score", *files, "--proxy", "synflow", "--proxy", "params", "--ensemble", "mean",
                 "--json", "--seed", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["scores"]["params"] for r in lines] == [23, 18]
    assert lines[0]["scores"]["synflow"] == pytest.approx(value("synflow", MLP))
    assert main(["score", files[0], "--proxy", "snip"]) == 2
    assert "need images" in capsys.readouterr().err
    assert main(["score", files[0], "--proxy", "bogus"]) == 2
    assert capsys.readouterr().err.strip().endswith("macs")


@pytest.mark.parametrize("text", [
    "name: bn_vector\ninput: [3, 8, 8]\nnetwork:\n  - conv(4)\n  - relu\n  - gap\n  - bn\n  - linear(2)\n",
    "name: bn_1x1\ninput: [3, 8, 8]\nnetwork:\n  - conv(4, k=8, s=8, p=0)\n  - bn\n  - relu\n  - gap\n  - linear(2)\n",
], ids=["vector", "1x1"])
def test_meco_of_a_batch_norm_on_one_value_per_channel_is_nan_with_a_reason(text):
    # MeCo reads one image in training mode: a batch norm of a vector (or a 1 x 1 map) cannot
    # run on it. It raised torch's ValueError, an internal error in every search trial.
    data = (torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 0, 1]))
    scores = P.score(nas.load_genotype(text), data, ["meco", "naswot"], seed=SEED)
    assert math.isnan(scores["meco"].value) and "one value per channel" in scores["meco"].reason
    assert scores["naswot"].defined


def test_the_largest_batch_a_proxy_runs_is_checked_against_the_memory_limit():
    # the check counted one sample: a network near the limit ran a batch of 64 (or 4,096) and
    # was left to the operating system's out-of-memory killer
    stats = nas.analyze(nas.load_genotype("resnet20"))
    per_sample = stats.input_bytes + stats.activation_bytes
    images = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    for data, batch in ((None, 16), (images, 64)):
        limit = stats.param_bytes + batch * per_sample
        P.score("resnet20", data, ["zen"], max_memory=limit)
        with pytest.raises(nas.GenotypeError, match=f"per sample, times a batch of {batch} in training"):
            P.score("resnet20", data, ["zen"], max_memory=limit - 1)
