"""Score genotypes with named proxies: :func:`score` and the batch it reads, :func:`image_batch`.

Contract: for a valid genotype and valid names, :func:`score` never raises because of the
network. A score that does not exist for it (no weights, no ReLU, an output that ignores the
input, a singular kernel, a non-finite value, running out of memory) is a NaN with the reason.
Bad requests (an unknown proxy name, data a proxy needs but was not given) are
:class:`~nas.errors.ConfigError`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, Any

import torch

from nas import _checks
from nas.analysis import MAX_MEMORY, check_memory
from nas.errors import ConfigError
from nas.proxies._network import RANDOM_BATCH, Network
from nas.proxies._registry import Proxy, Undefined, get_proxy, proxy_names

if TYPE_CHECKING:
    from nas.data import Dataset
    from nas.genotype import Genotype

__all__ = ["ProxyScore", "image_batch", "score"]

#: The reason given for every data-dependent score of a network whose output ignores its input.
DISCONNECTED = "the output does not depend on the input (a disconnected network)"

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class ProxyScore:
    """One proxy's score of one network.

    Attributes:
        name: The proxy.
        value: The score (larger predicts better), NaN when undefined.
        reason: Why the score is NaN (``None`` when it is defined).
        seconds: Wall time spent computing it (the shared model build excluded; a pass several
            proxies share counts for the first that needs it).
        cpu_seconds: Processor time of this process over the same span (all its threads).
    """

    name: str
    value: float
    reason: str | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def defined(self) -> bool:
        return self.reason is None


def image_batch(data: Dataset | Batch, *, batch_size: int = 64, seed: int = 0) -> Batch:
    """The float images and labels a proxy reads.

    Args:
        data: A :class:`nas.data.Dataset` (a seeded, class-stratified sample of
            ``batch_size`` training images, normalised with the dataset's mean and std), or
            an ``(images, labels)`` pair already prepared (used as it is).
        batch_size: Images taken from a dataset, 2 to :data:`nas._checks.MAX_BATCH` (4,096:
            the bound of ``nas score --batch`` and a run's ``proxies.batch``).
        seed: Chooses the images taken from a dataset.

    Raises:
        ConfigError: for anything else, a ``batch_size`` that is not an integer in
            ``[2, MAX_BATCH]`` or a seed outside ``[0, 2**32)`` (checked whatever ``data``
            is), a batch of fewer than 2 or
            more than ``MAX_BATCH`` images or images that are not float32.
    """
    from nas.data import Dataset, stratified_order

    batch_size = _checks.batch_size(batch_size, path="batch_size")
    seed = _checks.seed(seed, path="seed")
    if isinstance(data, Dataset):
        generator = torch.Generator().manual_seed(seed)
        index = stratified_order(data.train_labels, generator)[:batch_size]
        images = data.train_images[index].float().div_(255)
        mean = torch.tensor(data.mean).view(1, -1, 1, 1)
        std = torch.tensor(data.std).view(1, -1, 1, 1)
        inputs, targets = (images - mean) / std, data.train_labels[index]
    elif isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        inputs, targets = data
        if inputs.dtype != torch.float32:  # the model's dtype
            raise ConfigError(f"images must be a float32 tensor, got {inputs.dtype}")
    else:
        raise ConfigError("data must be a nas.data.Dataset or an (images, labels) pair of tensors")
    if inputs.dim() < 2 or not 2 <= len(inputs) <= _checks.MAX_BATCH or len(targets) != len(inputs):
        raise ConfigError(f"need 2 to {_checks.MAX_BATCH:,} images with one label each, got images "
                          f"{tuple(inputs.shape)} and labels {tuple(targets.shape)}")
    return inputs, targets


def _check_batch(genotype: Genotype, inputs: torch.Tensor, targets: torch.Tensor) -> None:
    """Images of the genotype's input shape and, for a classifier (an output of ``(K,)``),
    one int64 label in ``[0, K)`` per image: what the proxies' loss reads.

    Raises:
        ConfigError: saying what does not fit.
    """
    if tuple(inputs.shape[1:]) != genotype.input_shape:
        raise ConfigError(f"images are {tuple(inputs.shape[1:])} but genotype {genotype.name!r} "
                          f"takes {genotype.input_shape} (see Genotype.with_input)")
    output = genotype.output_shape
    if len(output) != 1:
        return
    if targets.dim() != 1 or targets.dtype not in (torch.int64, torch.uint8):  # cross_entropy's
        raise ConfigError(f"labels must be a 1-D int64 tensor, got {targets.dtype} of shape "
                          f"{tuple(targets.shape)}")
    if len(targets) and not 0 <= int(targets.min()) <= int(targets.max()) < output[0]:
        raise ConfigError(f"labels must lie in [0, {output[0]}) (the network's {output[0]} classes), "
                          f"got {int(targets.min())} to {int(targets.max())}")


def _as_genotype(genotype: Genotype | str | PathLike[str]) -> Genotype:
    from nas.genotype import Genotype, load_genotype

    return genotype if isinstance(genotype, Genotype) else load_genotype(genotype)


def _run(proxy: Proxy, subject: Any) -> ProxyScore:
    started, cpu = time.perf_counter(), time.process_time()
    value, reason = math.nan, None
    try:
        value = float(proxy.fn(subject))
    except Undefined as why:
        reason = str(why)
    except torch.linalg.LinAlgError as error:
        reason = f"linear algebra failed: {str(error).splitlines()[0]}"
    except torch.OutOfMemoryError:
        reason = "out of memory"
    if reason is None and not math.isfinite(value):
        reason = f"the score is not finite ({value})"
    return ProxyScore(proxy.name, math.nan if reason else value, reason,
                      time.perf_counter() - started, time.process_time() - cpu)


def score(
    genotype: Genotype | str | PathLike[str],
    data: Dataset | Batch | None = None,
    names: Sequence[str] | None = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    max_memory: float = MAX_MEMORY,
) -> dict[str, ProxyScore]:
    """Score one genotype with the named proxies.

    The model is built once with weights initialised under ``seed``; every proxy starts from
    those weights, so a proxy's score depends only on the genotype, the data and the seed,
    not on which other proxies run. A network whose output does not depend on its input gets
    NaN (reason :data:`DISCONNECTED`) from every proxy but the static ones.

    Args:
        genotype: A :class:`~nas.genotype.Genotype`, or a file or zoo name to load.
        data: Images for the proxies that read data (see :func:`image_batch`); may be
            ``None`` when only data-free proxies (``synflow``, ``zen``, ``params``, ``macs``)
            are asked for.
        names: Proxies to compute (default: all registered), in the order given.
        seed: Seeds the initial weights and any random input.
        device: ``"cpu"``, ``"cuda"``...
        batch_size: Images taken when ``data`` is a dataset, 2 to
            :data:`nas._checks.MAX_BATCH` (4,096).
        max_memory: Bytes the proxies' largest batch may need in training
            (:func:`nas.analysis.check_memory`): the image batch, or 16 random inputs (zen).

    Returns:
        ``{name: ProxyScore}`` in the order of ``names``.

    Raises:
        ConfigError: an unknown proxy name (the message lists the valid ones), a proxy that
            needs data when ``data`` is ``None``, unusable data (images not of the genotype's
            input shape, labels not classes of its output, more than ``MAX_BATCH`` images), a
            ``batch_size`` not an integer in ``[2, MAX_BATCH]``, a seed outside ``[0, 2**32)``,
            a device this machine lacks (:func:`nas._checks.device`).
        GenotypeError: a genotype that does not load or expand, or whose largest batch
            needs more than ``max_memory`` bytes.
    """
    _checks.name_list(names, path="names")
    proxies = [get_proxy(n) for n in (proxy_names() if names is None else names)]
    _checks.seed(seed, path="seed")
    _checks.device(str(device), path="device")
    batch_size = _checks.batch_size(batch_size, path="batch_size")
    genotype = _as_genotype(genotype)
    needy = [p.name for p in proxies if p.needs_data]
    if needy and data is None:
        raise ConfigError(f"proxies {', '.join(needy)} need images: pass data")
    results: dict[str, ProxyScore] = {}
    for proxy in proxies:
        if proxy.static:
            results[proxy.name] = _run(proxy, genotype)
    dynamic = [p for p in proxies if not p.static]
    if dynamic:
        inputs, targets = (None, None) if data is None else image_batch(data, batch_size=batch_size, seed=seed)
        if inputs is not None:
            _check_batch(genotype, inputs, targets)
        largest = max(RANDOM_BATCH, 0 if inputs is None else len(inputs))
        check_memory(genotype, max_memory, batch=largest)
        net = Network(genotype, inputs, targets, seed=seed, device=torch.device(device))
        if not net.depends_on_input():
            for proxy in dynamic:
                results[proxy.name] = ProxyScore(proxy.name, math.nan, DISCONNECTED)
        else:
            for proxy in dynamic:
                results[proxy.name] = _run(proxy, net)
    return {p.name: results[p.name] for p in proxies}
