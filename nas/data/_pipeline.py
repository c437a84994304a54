"""Batches from device-resident uint8 images, augmented and normalised on the device.

:class:`DeviceLoader` keeps one split on the device as uint8, stored channels-last and
pre-padded for random crops. A training batch is then a single gather — rows picked by a
seeded permutation, a random crop window and an optional horizontal flip per image, all as
index arithmetic on whole batches with no per-image Python — followed by one fused
``uint8 → float → (x / 255 - mean) / std``. No DataLoader workers, no host-to-device copies
per step.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from nas import _checks
from nas.errors import ConfigError

__all__ = ["DeviceLoader"]


class DeviceLoader:
    """Iterates over ``(images, labels)`` batches of one split, on the split's device.

    Args:
        images: uint8 ``[N, C, H, W]`` on the target device.
        labels: int64 ``[N]`` on the same device.
        batch_size: Images per batch.
        mean, std: Per-channel statistics on the 0..1 scale used to normalise.
        shuffle: Visit the images in a new random order each epoch.
        crop_padding: Random crop after zero-padding each side by this many pixels
            (``0``: no crop), at most the image's larger side.
        flip: Flip each image horizontally with probability 1/2.
        drop_last: Leave out the last, smaller batch.
        seed: Seed of the loader's own ``torch.Generator`` (order, crops, flips). The
            generator advances across epochs: the same seed gives the same sequence of
            epochs.
        channels_last: Yield batches in ``torch.channels_last`` memory format (free here,
            since the images are stored that way); otherwise contiguous NCHW.
        dtype: Floating type of the yielded images. Default: float32.

    Yields:
        ``(x, y)``: ``x`` a float ``[B, C, H, W]`` tensor, ``y`` int64 ``[B]``.

    Raises:
        ConfigError: a batch size, padding or seed that is not an integer in its range
            (bools are not), tensors of the wrong type or shape, a mean
            or std not of one finite number per channel (or one for all; a std above 0), a
            non-float dtype.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        shuffle: bool = False,
        crop_padding: int = 0,
        flip: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ConfigError(
                f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}"
            )
        if labels.shape != images.shape[:1]:
            raise ConfigError(
                f"need one label per image, got {tuple(labels.shape)} for {images.shape[0]}"
            )
        n, c, h, w = images.shape
        batch_size = _checks.number(batch_size, path="batch_size", low=1, integer=True)
        crop_padding = _checks.crop_padding(crop_padding, image=(h, w), path="crop_padding")
        seed = _checks.seed(seed, path="seed")
        for key, stats in (("mean", mean), ("std", std)):
            values = torch.tensor(stats, dtype=torch.float64).flatten()
            if len(values) not in (1, c) or not values.isfinite().all() or (key == "std" and not (values > 0).all()):
                raise ConfigError(f"must be {'1 or ' * (c != 1)}{c} finite number(s), one per channel"
                                  f"{', above 0' if key == 'std' else ''}, got {stats!r}", path=key)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ConfigError(f"must be a floating torch.dtype, got {dtype!r}", path="dtype")
        device = images.device
        self.batch_size = batch_size
        self.shuffle, self.flip, self.drop_last = shuffle, flip, drop_last
        self.padding = crop_padding
        self.channels_last = channels_last
        self.dtype = dtype
        self.shape = (c, h, w)
        self.labels = labels
        p = crop_padding
        # [N, H + 2p, W + 2p, C]: a batch gathered from it is already channels-last.
        self._pixels = F.pad(images, (p, p, p, p)).permute(0, 2, 3, 1).contiguous()
        mean64 = torch.tensor(mean, dtype=torch.float64)
        std64 = torch.tensor(std, dtype=torch.float64)
        self._scale = (1.0 / (255.0 * std64)).to(device, dtype)
        self._shift = (-mean64 / std64).to(device, dtype)
        self._rows = torch.arange(h, device=device)
        self._cols = torch.arange(w, device=device)
        self._mirror = torch.arange(w - 1, -1, -1, device=device)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self._length = n

    def __len__(self) -> int:
        """Batches per epoch."""
        full, rest = divmod(self._length, self.batch_size)
        return full if self.drop_last else full + bool(rest)

    @property
    def num_images(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        device = self._pixels.device
        if self.shuffle:
            order = torch.randperm(self._length, device=device, generator=self.generator)
        else:
            order = torch.arange(self._length, device=device)
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self._batch(index), self.labels[index]

    def _batch(self, index: torch.Tensor) -> torch.Tensor:
        b = index.numel()
        _, h, w = self.shape
        p = self.padding
        if p or self.flip:
            device = index.device
            if p:
                offsets = torch.randint(
                    0, 2 * p + 1, (2, b, 1), device=device, generator=self.generator
                )
                rows = offsets[0] + self._rows
                cols = offsets[1] + self._cols
            else:
                rows = self._rows.expand(b, h)
                cols = self._cols.expand(b, w)
            if self.flip:
                flipped = torch.rand(b, 1, device=device, generator=self.generator) < 0.5
                cols = torch.where(flipped, cols[:, self._mirror], cols)
            pixels = self._pixels[index[:, None, None], rows[:, :, None], cols[:, None, :]]
        else:
            pixels = self._pixels[index]
        x = torch.addcmul(self._shift, pixels.to(self.dtype), self._scale)  # [B, H, W, C]
        x = x.permute(0, 3, 1, 2)  # channels-last strides
        return x if self.channels_last else x.contiguous()
