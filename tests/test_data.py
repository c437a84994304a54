"""nas.data: sources, split, subset, resize, and the device-resident batch pipeline."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import DeviceLoader, Dataset, dataset_names, load_dataset, read_idx
from nas.errors import ConfigError

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def test_digits_loads_offline_with_the_right_counts(digits: Dataset) -> None:
    assert len(digits.train_labels) + len(digits.val_labels) == 1797
    assert digits.num_classes == 10
    assert digits.input_shape == (1, 8, 8)
    assert digits.train_images.dtype == torch.uint8
    assert int(digits.train_images.max()) == 255  # 16 scaled to 255
    assert not digits.flip
    assert len(digits.val_labels) == round(0.2 * 1797)
    # Stratified: every class holds 35-37 of the 359 validation images.
    counts = torch.bincount(digits.val_labels, minlength=10).tolist()
    assert counts == pytest.approx([36] * 10, abs=1)


def test_digits_are_scikit_learns_read_without_importing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.datasets import load_digits as sklearn_digits

    from nas.data._sources import _digits_arrays

    bunch = sklearn_digits()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # an import of it would fail
    images, target = _digits_arrays()
    assert np.array_equal(images, bunch.images) and np.array_equal(target, bunch.target)


def test_split_is_seeded_and_disjoint() -> None:
    a, b = load_dataset("digits", seed=3), load_dataset("digits", seed=3)
    c = load_dataset("digits", seed=4)
    assert torch.equal(a.val_images, b.val_images)
    assert not torch.equal(a.val_images, c.val_images)
    train = {bytes(x.numpy()) for x in a.train_images}
    assert not any(bytes(x.numpy()) in train for x in a.val_images[:50])


def test_subset_is_stratified_and_resolution_resizes() -> None:
    data = load_dataset("digits", subset=200, val_subset=50, resolution=16)
    assert len(data.train_labels) == 200 and len(data.val_labels) == 50
    assert data.input_shape == (1, 16, 16)
    counts = torch.bincount(data.train_labels, minlength=10).tolist()
    assert counts == pytest.approx([20] * 10, abs=1)


def test_statistics_are_those_of_the_training_images(digits: Dataset) -> None:
    pixels = digits.train_images.double() / 255
    assert digits.mean[0] == pytest.approx(pixels.mean().item(), rel=1e-9)
    assert digits.std[0] == pytest.approx(pixels.std(unbiased=False).item(), rel=1e-9)


def test_unknown_names_and_options_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown dataset 'cifar'.*cifar10, cifar100, digits"):
        load_dataset("cifar")
    with pytest.raises(ConfigError, match="unknown option 'root'.*valid: resolution"):
        load_dataset("digits", root="x")
    for name, given, missing in (("idx", {"images": "x.idx"}, "labels"), ("npz", {}, "path"), ("folder", {}, "root")):
        with pytest.raises(ConfigError, match=f"dataset '{name}' needs option '{missing}'") as error:
            load_dataset(name, **given)
        assert error.value.path == missing
    with pytest.raises(ConfigError, match="no test split"):
        load_dataset("digits", val_split="test")
    with pytest.raises(ConfigError) as error:
        load_dataset("digits", subset=0)
    assert error.value.path == "subset"
    assert {"digits", "mnist", "fashion_mnist", "cifar10", "cifar100"} <= set(dataset_names())


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100"])
def test_torchvision_dataset_without_files_offline_says_where_to_put_them(
    name: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as error:
        load_dataset(name, root=tmp_path, download=False)
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path) in message and "put" in message


def test_reachability_check_is_bounded_when_the_name_lookup_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    # the socket's timeout does not cover the name lookup: a resolver that does not answer
    # must not hold a config check (which asks whether CIFAR-10 could be downloaded) for long
    import socket
    import threading
    import time

    import nas.data._sources as sources

    released = threading.Event()  # set at the end, so the lookup's thread ends quietly

    def unanswered(*args: object, **kwargs: object) -> None:
        released.wait(30)
        raise socket.gaierror("no answer")

    monkeypatch.setattr(socket, "getaddrinfo", unanswered)
    started = time.monotonic()
    try:
        assert sources._reachable.__wrapped__("https://unanswered.invalid/x.tar.gz", timeout=0.2) is False
        assert time.monotonic() - started < 10  # a guard against the hang, not a timing target
    finally:
        released.set()


def test_torchvision_class_names_travel_with_the_data(tmp_path: Path) -> None:
    import struct

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, count in (("train", 30), ("t10k", 10)):
        pixels = np.arange(count * 28 * 28, dtype=np.uint8)
        header = struct.pack(">IIII", 0x0803, count, 28, 28)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(header + pixels.tobytes())
        labels = (np.arange(count) % 10).astype(np.uint8)
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 0x0801, count) + labels.tobytes()
        )
    data = load_dataset("mnist", root=tmp_path, download=False, val_split="test")
    assert data.classes[:2] == ("0 - zero", "1 - one") and len(data.classes) == 10
    assert len(data.train_labels) == 30 and len(data.val_labels) == 10
    assert load_dataset("digits").classes == tuple("0123456789")


@pytest.mark.skipif(not MNIST.is_dir(), reason=f"reference data absent: {MNIST}")
def test_idx_reads_the_mnist_test_set() -> None:
    images = read_idx(MNIST / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(MNIST / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == MNIST_TEST_COUNTS
    data = load_dataset(
        "idx",
        images=MNIST / "t10k-images-idx3-ubyte.gz",
        labels=MNIST / "t10k-labels-idx1-ubyte.gz",
    )
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    counts = torch.bincount(data.train_labels) + torch.bincount(data.val_labels)
    assert counts.tolist() == MNIST_TEST_COUNTS


def test_idx_uncompressed_and_malformed(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 0x08, 3]) + np.array(array.shape, dtype=">u4").tobytes()
    (tmp_path / "a.idx").write_bytes(header + array.tobytes())
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(header + array.tobytes()))
    assert np.array_equal(read_idx(tmp_path / "a.idx"), array)
    assert np.array_equal(read_idx(tmp_path / "a.idx.gz"), array)
    (tmp_path / "short.idx").write_bytes(header + array.tobytes()[:-1])
    with pytest.raises(ConfigError, match="data bytes"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "bad.idx").write_bytes(b"PK\x03\x04")
    with pytest.raises(ConfigError, match="not an IDX file") as error:
        read_idx(tmp_path / "bad.idx")
    assert error.value.file == str(tmp_path / "bad.idx")


def test_npz_with_nhwc_images_and_a_test_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 6, 6, 3), dtype=np.uint8)
    y = np.arange(40) % 4
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    data = load_dataset("npz", path=tmp_path / "d.npz", val_split="test")
    assert data.input_shape == (3, 6, 6) and data.num_classes == 4
    assert len(data.train_labels) == 40 and len(data.val_labels) == 8
    assert torch.equal(data.val_images[0], torch.from_numpy(x[0]).permute(2, 0, 1))
    np.savez(tmp_path / "wrong.npz", pictures=x)
    with pytest.raises(ConfigError, match="x_train/y_train or images/labels"):
        load_dataset("npz", path=tmp_path / "wrong.npz")


def test_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "images"
    for label, name in enumerate(["cat", "dog"]):
        (root / name).mkdir(parents=True)
        for i in range(5):
            size = (10 + i, 10) if label else (10, 10)
            Image.new("RGB", size, (label * 200, i * 40, 0)).save(root / name / f"{i}.png")
    cache = tmp_path / "cache"
    with pytest.raises(ConfigError, match="different sizes; set resolution"):
        load_dataset("folder", root=root, cache=cache)
    data = load_dataset("folder", root=root, cache=cache, resolution=8, val_fraction=0.4,
                        test_fraction=0)
    assert data.input_shape == (3, 8, 8) and data.num_classes == 2 and data.flip
    assert data.classes == ("cat", "dog")
    assert sorted(torch.cat([data.train_labels, data.val_labels]).tolist()) == [0] * 5 + [1] * 5


@pytest.mark.parametrize("options, message", [
    # 10**9 classes failed allocating their templates (19 GB, a torch traceback); 400,000
    # took 4.9 GB of templates for 4,096 images; a 2**70 seed was an OverflowError traceback
    ({"num_classes": 10**9}, "num_classes: 1,000,000,000 class templates of [3, 32, 32] are "
     "12,288,000,000,000 bytes; at most 1,048,576 classes and 4,294,967,296 bytes"),
    ({"num_classes": 400_000}, "num_classes: 400,000 class templates of [3, 32, 32] are "
     "4,915,200,000 bytes; at most 1,048,576 classes and 4,294,967,296 bytes"),
    ({"data_seed": 2**70}, f"data_seed: must be an integer in [0, 4294967295], got {2**70}"),
])
def test_synthetic_classes_and_seed_are_bounded(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_dataset("synthetic", **options)
    assert str(error.value) == message


def test_synthetic_is_seeded() -> None:
    a = load_dataset("synthetic", num_images=64, shape=(3, 16, 16), data_seed=1)
    b = load_dataset("synthetic", num_images=64, shape=(3, 16, 16), data_seed=1)
    c = load_dataset("synthetic", num_images=64, shape=(3, 16, 16), data_seed=2)
    assert torch.equal(a.train_images, b.train_images)
    assert not torch.equal(a.train_images, c.train_images)
    assert a.input_shape == (3, 16, 16)


@pytest.mark.parametrize("shape", [(3, 5, 7), (1, 2, 2)])
def test_synthetic_images_made_in_chunks_are_those_of_one_draw(monkeypatch, shape) -> None:
    # chunks bound the float32 work (50,000 CIFAR-sized images peaked at 2.9 GiB of RSS for
    # 146 MiB of images; the 4 GiB bound would have needed ~64 GiB)
    from nas.data import _sources

    options = dict(num_images=288, test_images=18, shape=shape, num_classes=4, data_seed=3)
    whole = _sources.load_synthetic(**options)
    monkeypatch.setattr(_sources, "_SYNTHETIC_CHUNK", 64)  # chunks of 16 images; 1 x 2 x 2: 2 left, merged
    chunked = _sources.load_synthetic(**options)
    assert torch.equal(whole.images, chunked.images) and torch.equal(whole.labels, chunked.labels)
    assert torch.equal(whole.test_images, chunked.test_images)


# --- the device pipeline ---------------------------------------------------------------


def _images(n: int = 12, c: int = 3, h: int = 6, w: int = 5) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=generator)


def _loader(images: torch.Tensor, **options: object) -> DeviceLoader:
    c = images.shape[1]
    labels = torch.arange(len(images))  # label = index, to find each image's source
    options = {"batch_size": 5, "mean": (0.5,) * c, "std": (0.25,) * c, **options}
    return DeviceLoader(images, labels, **options)  # type: ignore[arg-type]


def test_loader_without_augmentation_normalises_in_order() -> None:
    images = _images()
    loader = _loader(images, mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))
    batches = list(loader)
    assert len(loader) == len(batches) == 3 and [len(y) for _, y in batches] == [5, 5, 2]
    x = torch.cat([b for b, _ in batches])
    mean = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    std = torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    assert x.dtype == torch.float32 and x.is_contiguous()
    torch.testing.assert_close(x, (images.float() / 255 - mean) / std)
    assert torch.cat([y for _, y in batches]).tolist() == list(range(12))


def test_shuffle_visits_every_image_once_per_epoch_and_drop_last() -> None:
    loader = _loader(_images(), shuffle=True, drop_last=True)
    assert len(loader) == 2
    full = _loader(_images(), shuffle=True)
    for _ in range(2):
        assert sorted(torch.cat([y for _, y in full]).tolist()) == list(range(12))


def test_crop_and_flip_take_a_window_of_the_padded_image() -> None:
    images = _images(n=64, h=6, w=5)
    p = 2
    identity = {"mean": (0.0,) * 3, "std": (1 / 255,) * 3}
    loader = _loader(images, batch_size=64, crop_padding=p, flip=True, **identity)
    x, y = next(iter(loader))
    assert x.shape == (64, 3, 6, 5)
    padded = torch.nn.functional.pad(images.float(), (p, p, p, p))
    seen_flip = seen_plain = 0
    for out, label in zip(x, y):
        source = padded[label]
        windows = [
            (flip, source[:, i : i + 6, j : j + 5])
            for i in range(2 * p + 1)
            for j in range(2 * p + 1)
            for flip in (False, True)
        ]
        matches = [flip for flip, w in windows if torch.equal(out, w.flip(-1) if flip else w)]
        assert matches, "every output is a (possibly flipped) window of its padded source"
        seen_flip += all(matches)
        seen_plain += not any(matches)
    assert seen_flip > 10 and seen_plain > 10  # both flipped and unflipped images occur


def test_augmentation_is_seeded_and_varies_across_epochs() -> None:
    def epochs(seed: int) -> list[torch.Tensor]:
        loader = _loader(_images(), shuffle=True, crop_padding=2, flip=True, seed=seed)
        return [torch.cat([x for x, _ in loader]) for _ in range(2)]

    first, again, other = epochs(0), epochs(0), epochs(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], first[1])
    assert not torch.equal(first[0], other[0])


@pytest.mark.parametrize("option, value, message", [
    # True was a batch of 1 image; crop_padding=True failed in F.pad (a TypeError), 10**6
    # allocating 5 PB; seeds failed in manual_seed (2**70: an OverflowError, 1.5) or were taken
    ("batch_size", True, "batch_size: must be an integer in [1, inf), got True"),
    ("crop_padding", True, "crop_padding: must be an integer in [0, 6], got True"),
    ("crop_padding", 10**6, "crop_padding: must be an integer in [0, 6], got 1000000"),
    ("seed", 2**70, f"seed: must be an integer in [0, 4294967295], got {2**70}"),
    ("seed", 1.5, "seed: must be an integer in [0, 4294967295], got 1.5"),
    ("seed", -1, "seed: must be an integer in [0, 4294967295], got -1"),
])
def test_loader_sizes_and_seeds_are_checked_integers(option: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        next(iter(_loader(_images(), **{option: value})))
    assert str(error.value) == message


def test_channels_last_batches_and_bad_arguments() -> None:
    x, _ = next(iter(_loader(_images(), channels_last=True, crop_padding=1)))
    assert x.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ConfigError, match="batch_size"):
        _loader(_images(), batch_size=0)
    with pytest.raises(ConfigError, match="uint8"):
        labels = torch.zeros(2, dtype=torch.int64)
        DeviceLoader(torch.zeros(2, 1, 4, 4), labels, batch_size=1, mean=(0.0,), std=(1.0,))


def _write_idx(path: Path, array: np.ndarray) -> None:
    code = {np.dtype(np.uint8): 0x08}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.tobytes())


def test_root_is_where_idx_and_npz_read_relative_names(tmp_path: Path) -> None:
    generator = np.random.default_rng(0)
    images = generator.integers(0, 256, (40, 8, 8), dtype=np.uint8)
    labels = (np.arange(40) % 4).astype(np.uint8)
    _write_idx(tmp_path / "x.idx", images)
    _write_idx(tmp_path / "y.idx", labels)
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    from_idx = load_dataset("idx", root=tmp_path, images="x.idx", labels="y.idx")
    from_npz = load_dataset("npz", root=str(tmp_path), path="d.npz")
    absolute = load_dataset("idx", root="/nonexistent", images=tmp_path / "x.idx",
                            labels=tmp_path / "y.idx")
    for data in (from_idx, from_npz, absolute):
        assert data.num_classes == 4 and len(data.train_labels) + len(data.val_labels) == 40
    assert torch.equal(from_idx.train_images, from_npz.train_images)
    with pytest.raises(ConfigError) as error:
        load_dataset("idx", root=tmp_path / "elsewhere", images="x.idx", labels="y.idx")
    assert error.value.path == "images" and str(tmp_path / "elsewhere" / "x.idx") in str(error.value)


def test_nas_train_root_for_idx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nas.cli import main

    generator = np.random.default_rng(0)
    _write_idx(tmp_path / "x.idx", generator.integers(0, 256, (60, 8, 8), dtype=np.uint8))
    _write_idx(tmp_path / "y.idx", (np.arange(60) % 3).astype(np.uint8))
    out = tmp_path / "run"
    common = ["train", "resnet20", "--set", "width=4", "--resolution", "8", "--epochs", "1",
              "--batch-size", "24", "--device", "cpu", "--quiet", "--out", str(out)]
    assert main([*common, "--dataset", "idx", "--root", str(tmp_path), "--data-option",
                 "images=x.idx", "--data-option", "labels=y.idx"]) == 0
    assert (out / "model.pth").is_file()
    capsys.readouterr()
    assert main([*common, "--dataset", "digits", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown option 'root' for dataset 'digits'" in err[0]


def test_a_resolution_too_large_for_memory_is_one_line() -> None:
    with pytest.raises(ConfigError) as error:
        load_dataset("digits", resolution=4096)
    assert error.value.path == "resolution" and "at most 8,589,934,592" in str(error.value)
    with pytest.raises(ConfigError, match="must be an integer in"):
        load_dataset("digits", resolution=10**6)


def _idx(path: Path, code: int, shape: tuple[int, ...], body: bytes) -> Path:
    path.write_bytes(bytes([0, 0, code, len(shape)]) + np.array(shape, dtype=">u4").tobytes() + body)
    return path


def _hostile_array_files(case: str, tmp_path: Path) -> tuple[str, dict[str, object], Path]:
    """``(source, options, the file the error must name)`` of one hostile IDX or npz input."""
    import io
    import zipfile

    if case.startswith("idx"):
        images = _idx(tmp_path / "images", 0x08, (4, 8, 8), bytes(4 * 64))
        labels = _idx(tmp_path / "labels", 0x08, (4,), bytes([0, 1, 0, 1]))
        if case == "idx_dims_overflow":  # the product of the dimensions wraps int64 to 0
            images = _idx(images, 0x08, (4, 1 << 31, 1 << 31, 1 << 31, 1 << 30, 2, 2), b"")
        elif case == "idx_huge_label":
            labels = _idx(labels, 0x0C, (4,), np.array([2**31 - 1, 0, 1, 0], ">i4").tobytes())
        elif case == "idx_negative_label":
            labels = _idx(labels, 0x09, (4,), bytes([255, 0, 1, 0]))
        elif case == "idx_test_size":  # test images of another size than the train images
            test_images = _idx(tmp_path / "test_images", 0x08, (2, 16, 16), bytes(2 * 256))
            test_labels = _idx(tmp_path / "test_labels", 0x08, (2,), bytes([0, 1]))
            return "idx", {"images": images, "labels": labels, "test_images": test_images,
                           "test_labels": test_labels}, test_images
        bad = labels if "label" in case else images
        return "idx", {"images": images, "labels": labels}, bad
    path = tmp_path / "d.npz"
    if case == "npz_claims_huge":  # a header of 150 GB of images over 100 bytes of data
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "|u1", "fortran_order": False, "shape": (10**6, 3, 224, 224)})
        labels = io.BytesIO()
        np.save(labels, np.arange(10))
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("images.npy", header.getvalue() + bytes(100))
            archive.writestr("labels.npy", labels.getvalue())
    elif case == "npz_empty":
        np.savez(path, images=np.zeros((0, 8, 8), np.uint8), labels=np.zeros(0, np.int64))
    elif case == "npz_huge_label":
        np.savez(path, images=np.zeros((4, 8, 8), np.uint8), labels=np.array([2**40, 0, 1, 0]))
    elif case == "npz_uint64_label":  # was reported as [-1, 0]: the conversion to int64 wrapped
        np.savez(path, images=np.zeros((4, 8, 8), np.uint8), labels=np.array([2**64 - 1, 0, 1, 0], np.uint64))
    elif case == "npz_test_size":  # named no file: 'npz: train images are (1, 8, 8) but ...'
        np.savez(path, x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.array([0, 1, 0, 1]),
                 x_test=np.zeros((2, 16, 16), np.uint8), y_test=np.array([0, 1]))
    return "npz", {"path": path}, path


@pytest.mark.parametrize("case", ["idx_dims_overflow", "idx_huge_label", "idx_negative_label",
                                  "idx_test_size", "npz_claims_huge", "npz_empty",
                                  "npz_huge_label", "npz_uint64_label", "npz_test_size"])
def test_hostile_array_files_fail_in_one_line_naming_the_file(case: str, tmp_path: Path) -> None:
    source, options, bad = _hostile_array_files(case, tmp_path)
    with pytest.raises(ConfigError) as error:
        load_dataset(source, **options)
    assert error.value.file == str(bad) and "\n" not in str(error.value)
    if case == "npz_uint64_label":
        assert f"got [0, {2**64 - 1:,}]" in error.value.message


def test_array_files_over_max_bytes_are_refused_before_reading(tmp_path: Path) -> None:
    images = _idx(tmp_path / "images.gz", 0x08, (4, 8, 8), bytes(4 * 64))
    images.write_bytes(gzip.compress(images.read_bytes()))
    with pytest.raises(ConfigError, match=r"256 bytes: more than max_bytes \(100\)"):
        read_idx(images, max_bytes=100)
    np.savez(tmp_path / "d.npz", images=np.zeros((4, 8, 8), np.uint8), labels=np.arange(4))
    with pytest.raises(ConfigError, match=r"more than max_bytes \(100\)"):
        load_dataset("npz", path=tmp_path / "d.npz", max_bytes=100)
    np.savez(tmp_path / "o.npz", images=np.array([{}, {}], dtype=object), labels=np.arange(2))
    with pytest.raises(ConfigError, match="'images' holds Python objects"):
        load_dataset("npz", path=tmp_path / "o.npz")


@pytest.mark.parametrize("max_bytes", [True, -1, 1.5, "1000"])
def test_read_idx_max_bytes_is_a_checked_integer(tmp_path: Path, max_bytes: object) -> None:
    # True was a bound of 1 byte, -1 and 1.5 bounds no file met ("more than max_bytes (1.5)"),
    # "1000" a TypeError comparing it
    images = _idx(tmp_path / "images", 0x08, (4, 8, 8), bytes(4 * 64))
    with pytest.raises(ConfigError, match=rf"^max_bytes: must be an integer in \[0, inf\), got "):
        read_idx(images, max_bytes=max_bytes)


def test_dataset_options_given_as_one_string_are_refused_not_spelled_out():
    from nas.data import check_dataset_options

    # "subset" was checked as the options 's', 'u', 'b', ...: "unknown option 'b'".
    with pytest.raises(ConfigError, match=r"^options must be a list of names, got the string 'subset'"):
        check_dataset_options("synthetic", "subset")
    check_dataset_options("synthetic", ["subset"])


@pytest.mark.parametrize("options, message", [
    ({"mean": (0.5, 0.5, 0.5)}, r"mean: must be 1 finite number\(s\), one per channel, got \(0.5, 0.5, 0.5\)"),
    ({"std": (0.0,)}, r"std: must be 1 finite number\(s\), one per channel, above 0, got \(0.0,\)"),
    ({"std": (float("nan"),)}, "std: must be 1 finite"),
    ({"dtype": torch.int64}, "dtype: must be a floating torch.dtype, got torch.int64"),
    ({"dtype": "float16"}, "dtype: must be a floating torch.dtype, got 'float16'"),
])
def test_a_loader_refuses_statistics_and_dtypes_that_would_give_other_images(options, message):
    # Three means made 1-channel images 3-channel, std 0 made them infinite and int64 rounded
    # them, all silently; dtype="float16" failed inside Tensor.to.
    images, labels = torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ConfigError, match=f"^{message}"):
        DeviceLoader(images, labels, batch_size=2, **{"mean": (0.5,), "std": (0.25,), **options})


@pytest.mark.parametrize("images, labels, message", [
    # an image of no pixels was 'unexpected RuntimeError' in training
    (np.zeros((20, 0, 8), np.uint8), np.arange(20) % 2,
     "npz: source images must be a uint8 tensor [N, C, H, W] of at least one pixel, got "
     "torch.uint8 with shape (20, 1, 0, 8)"),
    # one class trained to a validation accuracy of 1.0
    (np.zeros((20, 8, 8), np.uint8), np.zeros(20, np.int64),
     "npz: all 20 training images have label 0; a classifier needs at least 2 classes"),
])
def test_images_without_pixels_or_labels_of_one_class_are_refused(tmp_path: Path, images, labels,
                                                                  message: str) -> None:
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    with pytest.raises(ConfigError) as error:
        load_dataset("npz", path=tmp_path / "d.npz")
    assert str(error.value) == message
    with pytest.raises(ConfigError, match="at least 2 classes"):
        load_dataset("synthetic", num_images=20, num_classes=1)


def _npz_with(path: Path, extra: dict[str, bytes], compression: int = 8) -> Path:
    """An .npz of 4 blank 8x8 images and their labels, plus the members ``extra``
    (``compression``: a zipfile method, 8 being deflate)."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", compression) as archive:
        for key, array in (("images", np.zeros((4, 8, 8), np.uint8)), ("labels", np.arange(4) % 2)):
            buffer = io.BytesIO()
            np.save(buffer, array)
            archive.writestr(f"{key}.npy", buffer.getvalue())
        for name, data in extra.items():
            archive.writestr(name, data)
    return path


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """The .npy header of a uint8 array of ``shape`` (its data is the caller's)."""
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return header.getvalue()


@pytest.mark.parametrize("name", ["junk", "extra"])
def test_npz_members_count_inflated_and_unused_ones_are_never_read(tmp_path: Path, name: str) -> None:
    """max_bytes bounded only the headers of NAME.npy members: np.load inflated every other
    member whole (a 32 KB file held 32 MB of zeros named 'junk'; a 1 MB one, 1 GB) and read
    'extra', an array without the suffix, past the header check."""
    import tracemalloc

    data = (_npy_header((32 << 20,)) if name == "extra" else b"") + bytes(32 << 20)
    path = _npz_with(tmp_path / "d.npz", {name: data})
    assert path.stat().st_size < 100_000
    with pytest.raises(ConfigError, match=r"^\S+d.npz: its members hold 33,5[\d,]+ bytes uncompressed: "
                                          r"more than max_bytes \(1,048,576\) \(a compression bomb\?\)$"):
        load_dataset("npz", path=path, max_bytes=1 << 20)
    tracemalloc.start()
    try:
        assert load_dataset("npz", path=path).num_classes == 2  # within 16 GiB: 'name' is not read
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_an_npz_array_over_its_members_size_or_not_deflated_is_refused(tmp_path: Path) -> None:
    import zipfile

    # 100 MB by its header, under max_bytes, over 100 bytes of data: allocated, then EOF
    path = _npz_with(tmp_path / "claims.npz", {"x_train.npy": _npy_header((100, 1000, 1000)) + bytes(100),
                                               "y_train.npy": b""})
    with pytest.raises(ConfigError, match=r"^\S+claims.npz: array 'x_train' says \(100, 1000, 1000\) of "
                                          r"uint8, 100,000,000 bytes, but its member holds 228$"):
        load_dataset("npz", path=path)
    path = _npz_with(tmp_path / "bzip2.npz", {}, compression=zipfile.ZIP_BZIP2)
    with pytest.raises(ConfigError, match=r"^\S+bzip2.npz: cannot read .npz file: member 'images.npy' "
                                          r"is compressed with bzip2, which is not read"):
        load_dataset("npz", path=path)
