"""The ``folder`` source: archives and folders as users have them, the cache, bad input.

The images are a few hundred JPEGs taken from the shared CIFAR-10 archive (skipped when
``../shared`` is absent); the hostile archives are made here.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import load_dataset, retrain_options
from nas.data import _cache, _folder
from nas.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CIFAR = REPO.parent / "shared" / "data" / "cifar10" / "cifar10-jpeg.tar.gz"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")
PER_CLASS = {"train": 12, "test": 4}


@pytest.fixture(scope="module")
def members() -> dict[str, bytes]:
    """160 JPEGs of the shared archive: 12 train and 4 test images of each class."""
    if not CIFAR.is_file():
        pytest.skip(f"{CIFAR} is absent (the shared CIFAR-10 archive)")
    wanted = {(s, c): n for s, n in PER_CLASS.items() for c in CLASSES}
    picked: dict[str, bytes] = {}
    with tarfile.open(CIFAR, "r|gz") as archive:
        for info in archive:
            parts = info.name.split("/")
            key = tuple(parts[-3:-1])
            if info.isreg() and wanted.get(key, 0) > 0:
                wanted[key] -= 1
                picked["/".join(parts[-3:])] = archive.extractfile(info).read()
                if not any(wanted.values()):
                    break
    return picked


def _tar(path: Path, files: dict[str, bytes | None], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def _folder_of(path: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def _load(root: Path, cache: Path, **options: object):
    return load_dataset("folder", root=root, cache=cache, val_split="test", **options)


def test_tar_gz_zip_and_folder_give_the_same_splits_and_classes(
    members: dict[str, bytes], tmp_path: Path
) -> None:
    wrapped = {f"cifar10/{k}": v for k, v in members.items()}  # a wrapping folder is stripped
    sources = [
        _tar(tmp_path / "small.tar.gz", members),
        _tar(tmp_path / "small.tar", wrapped, mode="w"),
        _zip(tmp_path / "small.zip", wrapped),
        _folder_of(tmp_path / "small", members),
    ]
    loaded = [_load(source, tmp_path / "cache") for source in sources]
    first = loaded[0]
    assert first.classes == CLASSES and first.num_classes == 10 and first.val_split == "test"
    assert len(first.train_labels) == 120 and len(first.val_labels) == 40
    assert first.input_shape == (3, 32, 32) and first.train_images.dtype == torch.uint8
    assert torch.bincount(first.val_labels).tolist() == [4] * 10
    for other in loaded[1:]:
        assert other.classes == CLASSES
        assert torch.equal(other.train_images, first.train_images)
        assert torch.equal(other.val_labels, first.val_labels)
    # The pixels are the JPEGs' own: the first test image of class "airplane" decoded by hand.
    from PIL import Image

    name = min(k for k in members if k.startswith("test/airplane/"))
    with Image.open(io.BytesIO(members[name])) as image:
        expected = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(first.val_images[0], expected)


def test_search_protocol_validates_on_training_images_only(
    members: dict[str, bytes], tmp_path: Path
) -> None:
    source = _tar(tmp_path / "small.tar.gz", members)
    search = load_dataset("folder", root=source, cache=tmp_path / "cache", val_fraction=0.25)
    retrain = load_dataset("folder", root=source, cache=tmp_path / "cache", val_split="test")
    assert search.val_split == "holdout"
    assert len(search.train_labels) == 90 and len(search.val_labels) == 30
    assert torch.bincount(search.val_labels).tolist() == [3] * 10  # stratified
    train = {bytes(x.numpy()) for x in retrain.train_images}
    test = {bytes(x.numpy()) for x in retrain.val_images}
    searched = {bytes(x.numpy()) for x in torch.cat([search.train_images, search.val_images])}
    assert searched == train and not searched & test
    # A search's options (proxy subsets) made into retraining's: whole train, test split.
    options = {"name": "folder", "root": str(source), "cache": str(tmp_path / "cache"),
               "subset": 50, "val_subset": 20, "val_fraction": 0.25, "resolution": 16}
    assert retrain_options(options) == {"name": "folder", "root": str(source),
                                        "cache": str(tmp_path / "cache"), "resolution": 16,
                                        "val_split": "test"}
    final = load_dataset(**retrain_options(options))
    assert final.val_split == "test" and final.input_shape == (3, 16, 16)
    assert len(final.train_labels) == 120 and len(final.val_labels) == 40


def test_class_folder_root_holds_out_a_seeded_stratified_test_split(
    members: dict[str, bytes], tmp_path: Path
) -> None:
    train_only = {k[len("train/"):]: v for k, v in members.items() if k.startswith("train/")}
    root = _folder_of(tmp_path / "classes", train_only)
    data = _load(root, tmp_path / "cache", test_fraction=0.25)
    again = _load(root, tmp_path / "cache", test_fraction=0.25, seed=5)  # search seed: same test
    other = _load(root, tmp_path / "cache", test_fraction=0.25, test_seed=1)
    assert data.classes == CLASSES
    assert len(data.val_labels) == 30 and torch.bincount(data.val_labels).tolist() == [3] * 10
    assert torch.equal(again.val_images, data.val_images)
    assert not torch.equal(other.val_images, data.val_images)
    # val_root supplies the test split instead.
    test_only = {k[len("test/"):]: v for k, v in members.items() if k.startswith("test/")}
    val_root = _zip(tmp_path / "test.zip", test_only)
    split = _load(root, tmp_path / "cache", val_root=val_root)
    assert len(split.train_labels) == 120 and len(split.val_labels) == 40


def test_second_load_reads_the_cache_and_does_not_decode(
    members: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAS_DATA", str(tmp_path / "data"))
    source = _tar(tmp_path / "small.tar.gz", members)
    calls = []
    decode = _folder.decode_source
    monkeypatch.setattr(_folder, "decode_source", lambda *a, **k: calls.append(1) or decode(*a, **k))
    first = load_dataset("folder", root=source, val_split="test")
    assert calls == [1]
    entries = [p for p in (tmp_path / "data" / "folder-cache").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1 and (entries[0] / "meta.json").is_file()
    copy = tmp_path / "moved.tar.gz"  # keyed by content: a copy elsewhere hits too
    copy.write_bytes(source.read_bytes())
    second = load_dataset("folder", root=copy, val_split="test")
    assert calls == [1]
    assert second.classes == CLASSES
    assert torch.equal(second.train_images, first.train_images)
    load_dataset("folder", root=source, val_split="test", resolution=32)  # their own size
    assert calls == [1]
    load_dataset("folder", root=source, val_split="test", resolution=16)  # another key
    assert calls == [1, 1]
    changed = _tar(tmp_path / "changed.tar.gz", dict(list(members.items())[:-1]))
    load_dataset("folder", root=changed, val_split="test", cache=tmp_path / "c2")
    assert calls == [1, 1, 1]


def test_a_load_at_half_size_first_does_not_take_the_native_entry(
    members: dict[str, bytes], tmp_path: Path
) -> None:
    """JPEG drafting decodes a 32x32 image straight at 16x16, with no resize call: that load
    was cached as the images' own size, and a later native load got 16x16 images."""
    source = _tar(tmp_path / "small.tar.gz", members)
    small = _load(source, tmp_path / "cache", resolution=16)
    native = _load(source, tmp_path / "cache")
    again = _load(source, tmp_path / "cache", resolution=16)
    assert small.input_shape == again.input_shape == (3, 16, 16)
    assert native.input_shape == (3, 32, 32)
    assert torch.equal(small.train_images, again.train_images)


def test_cache_entry_appears_whole_or_not_at_all(
    members: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _tar(tmp_path / "small.tar.gz", members)
    cache = tmp_path / "cache"
    entry = _cache.entry_dir(cache, _cache.fingerprint(source),
                             {"grayscale": False, "resolution": None})
    saves = []
    real_save = np.save

    def crashing_save(file, array, **kwargs):  # a writer killed after its first array
        saves.append(1)
        assert _cache.read_entry(entry) is None  # nobody sees the half-written entry
        if len(saves) == 2:
            raise OSError(28, "No space left on device")
        real_save(file, array, **kwargs)

    monkeypatch.setattr(np, "save", crashing_save)
    with pytest.raises(ConfigError, match="cannot write the dataset cache: No space left"):
        _load(source, cache)
    assert not entry.exists()
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []
    monkeypatch.setattr(np, "save", real_save)
    assert len(_load(source, cache).train_labels) == 120
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    with pytest.raises(ConfigError, match="cannot write the dataset cache: .*cache: false"):
        _load(source, blocked / "cache")
    assert _cache.read_entry(entry) is not None


def test_decoding_in_several_processes_gives_the_same_arrays(
    members: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nas.data import _decode

    source = _tar(tmp_path / "small.tar.gz", members)
    serial = _load(source, tmp_path / "c1", decode_workers=0)
    monkeypatch.setattr(_decode, "_CHUNK", 16)  # 160 images: 10 chunks over 2 processes
    pools = []
    pool_class = _decode.ProcessPoolExecutor
    monkeypatch.setattr(_decode, "ProcessPoolExecutor",
                        lambda *a, **k: pools.append(1) or pool_class(*a, **k))
    pooled = _load(source, tmp_path / "c2", decode_workers=2)
    assert pools == [1]
    assert torch.equal(pooled.train_images, serial.train_images)
    assert torch.equal(pooled.val_images, serial.val_images)
    assert torch.equal(pooled.train_labels, serial.train_labels)


def _die_in_a_worker(names, blobs, grayscale, resolution, budget):
    """Stands in for the chunk decoder in the forked processes: kills the one it runs in."""
    os._exit(9)


def test_a_dying_decoding_process_is_one_line(
    members: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nas.data import _decode

    source = _tar(tmp_path / "small.tar.gz", members)
    monkeypatch.setattr(_decode, "_CHUNK", 16)  # 10 chunks, all sent to the processes
    monkeypatch.setattr(_decode, "_decode", _die_in_a_worker)
    with pytest.raises(ConfigError, match="a decoding process died .*decode_workers to 0"):
        _load(source, tmp_path / "cache", decode_workers=2)
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def _race(source: str, cache: str, log: str, queue) -> None:
    decode = _folder.decode_source

    def counted(*args, **kwargs):
        with open(log, "a") as file:
            file.write("decode\n")
        return decode(*args, **kwargs)

    _folder.decode_source = counted
    data = load_dataset("folder", root=source, cache=cache, val_split="test")
    queue.put(int(data.train_images.sum()) + int(data.val_images.sum()))


def test_racing_first_loads_decode_once_and_agree(members: dict[str, bytes], tmp_path: Path) -> None:
    import multiprocessing

    source = _tar(tmp_path / "small.tar.gz", members)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    log = tmp_path / "decodes.log"
    processes = [
        context.Process(target=_race, args=(str(source), str(tmp_path / "cache"), str(log), queue))
        for _ in range(3)
    ]
    for process in processes:
        process.start()
    sums = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    assert len(set(sums)) == 1
    assert log.read_text() == "decode\n"  # the others waited for the lock, then read the entry


JPEG_MAGIC = b"\xff\xd8\xff"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"../evil/x.jpg": b"x", "train/a/1.jpg": b"x"}, "unsafe member path '../evil/x.jpg'"),
        ({"/etc/x.jpg": b"x"}, "unsafe member path '/etc/x.jpg'"),
        ({"train/a/1.jpg": JPEG_MAGIC + b"garbage", "test/a/1.jpg": JPEG_MAGIC},
         "train/a/1.jpg: cannot read image"),
        ({"train/a/1.jpg": None, "test/b/1.jpg": None}, "no images found"),
        ({"train/a/x.jpg": "ok", "train/b/": None, "test/a/x.jpg": "ok", "test/b/y.jpg": "ok"},
         "class folder 'train/b' holds no images"),
        ({"train/a/x.jpg": "ok", "test/b/x.jpg": "ok"},
         "class folders differ between train/ and test/: only in train/: a; only in test/: b"),
        ({"train/a/x.jpg": "ok"}, "has train/ but neither test/ nor val/"),
        ({"train/": None, "test/a/x.jpg": "ok"}, "train/ holds no images"),
        ({"train/a/": None, "test/a/x.jpg": "ok"}, "class folder 'train/a' holds no images"),
        ({"test/a/x.jpg": "ok", "test/b/x.jpg": "ok"}, "has test/ but no train/"),
        ({"data/val/a/x.jpg": "ok", "data/val/b/x.jpg": "ok"}, "has val/ but no train/"),
        ({"train/x.jpg": "ok", "test/a/x.jpg": "ok"}, "'train/x.jpg' is not inside a class folder"),
        ({"a/x.jpg": "ok", "b/y.jpg": "big"}, "different sizes; set resolution"),
    ],
)
def test_bad_archives_fail_in_one_line(
    tmp_path: Path, files: dict[str, object], message: str
) -> None:
    from PIL import Image

    def image(kind: object) -> bytes | None:
        if not isinstance(kind, str):
            return kind  # bytes as given, or None for a folder
        buffer = io.BytesIO()
        Image.new("RGB", (12, 10) if kind == "big" else (8, 8), (9, 99, 199)).save(buffer, "PNG")
        return buffer.getvalue()

    archive = _tar(tmp_path / "bad.tar.gz", {k.rstrip("/"): image(v) for k, v in files.items()})
    with pytest.raises(ConfigError) as error:
        _load(archive, tmp_path / "cache")
    text = str(error.value)
    assert message in text and "\n" not in text and str(archive) in text
    assert not (tmp_path / "evil").exists() and not Path("/etc/x.jpg").exists()


def test_an_empty_folder_added_to_a_cached_folder_is_seen(tmp_path: Path) -> None:
    # empty folders change the layout (an empty class folder is an error): the cache key has them
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 99, 199)).save(buffer, "PNG")
    image = buffer.getvalue()
    root = _folder_of(tmp_path / "data", {f"{split}/{c}/x.png": image for split in ("train", "test") for c in "ab"})
    assert _load(root, tmp_path / "cache").classes == ("a", "b")
    (root / "train" / "c").mkdir()
    with pytest.raises(ConfigError, match="class folder 'train/c' holds no images"):
        _load(root, tmp_path / "cache")


def test_non_images_are_skipped_and_bounds_are_enforced(tmp_path: Path) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (8, 8), 7).save(buffer, "PNG")
    png = buffer.getvalue()
    files = {f"{c}/{i}.png": png for c in "ab" for i in range(5)}
    files.update({"README.txt": b"hello", "a/.DS_Store": b"\0", "__MACOSX/a/._0.png": b"\0"})
    archive = _zip(tmp_path / "gray.zip", files)
    data = load_dataset("folder", root=archive, cache=False, grayscale=True, test_fraction=0.2)
    assert data.classes == ("a", "b") and data.input_shape == (1, 8, 8)
    assert len(data.train_labels) + len(data.val_labels) == 8  # two held out as test
    with pytest.raises(ConfigError, match="more than 5 members; raise max_members"):
        load_dataset("folder", root=archive, cache=False, max_members=5)
    with pytest.raises(ConfigError, match="decoded images exceed max_decoded_bytes"):
        load_dataset("folder", root=archive, cache=False, max_decoded_bytes=100)
    (tmp_path / "x.rar").write_bytes(b"")
    with pytest.raises(ConfigError, match="not a folder or an archive"):
        load_dataset("folder", root=tmp_path / "x.rar", cache=False)


def test_cli_reports_a_hostile_archive_in_one_line(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "evil.tar", {"../../escape.png": b"x"}, mode="w")
    env = {**os.environ, "PYTHONPATH": str(REPO), "NAS_DATA": str(tmp_path / "data")}
    result = subprocess.run(
        [sys.executable, "-m", "nas", "train", "resnet20", "--dataset", "folder", "--root",
         str(archive), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unsafe member path '../../escape.png'" in lines[0], result.stderr
    assert not (tmp_path.parent / "escape.png").exists()


def test_a_search_on_an_archive_next_to_its_config(members: dict[str, bytes], tmp_path: Path) -> None:
    import yaml

    from nas.search import read_trials, run_search

    (tmp_path / "data").mkdir()
    _tar(tmp_path / "data" / "small.tar.gz", members)
    config = {
        "name": "folder",
        "space": {
            "genotype": str(REPO / "genotypes" / "search" / "resnet_cifar.yaml"),
            "params": {"widths": [4, 8, 8], "depths": [1, 1, 1]},
            "choices": {"block": {"choices": ["cifar_basic", "basic_se"]}},
        },
        "dataset": {"name": "folder", "root": "data/small.tar.gz", "cache": "cache",
                    "resolution": 16, "val_fraction": 0.25},
        "train": {"epochs": 1, "batch_size": 30, "lr": 0.05, "device": "cpu"},
        "sampler": "random", "trials": 2, "threads": 1, "seed": 0,
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    summary = run_search(tmp_path / "run.yaml", runs_dir=tmp_path / "runs", progress=False)
    assert summary.counts["complete"] == 2
    trials = read_trials(summary.run_dir)
    assert all(0 <= t["values"][0] <= 1 for t in trials)
    assert all(t["genotype"]["input"] == [3, 16, 16] for t in trials)
    entries = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1  # decoded once, before the trials


def test_links_in_an_archive_are_skipped_and_zip_paths_checked_too(tmp_path: Path) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, "PNG")
    png = buffer.getvalue()
    path = tmp_path / "links.tar"
    with tarfile.open(path, "w") as archive:
        for name in ("a/0.png", "a/1.png", "b/0.png", "b/1.png", "b/2.png"):
            info = tarfile.TarInfo(name)
            info.size = len(png)
            archive.addfile(info, io.BytesIO(png))
        for name, target in (("a/link.png", "/etc/passwd"), ("b/hard.png", "a/0.png")):
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE if "link" in name else tarfile.LNKTYPE
            info.linkname = target
            archive.addfile(info)
    data = load_dataset("folder", root=path, cache=False, test_fraction=0, val_fraction=0.4)
    assert data.classes == ("a", "b")
    assert len(data.train_labels) + len(data.val_labels) == 5  # the two links left out
    with tarfile.open(path, "a") as archive:  # the same member again, appended
        info = tarfile.TarInfo("a/0.png")
        info.size = len(png)
        archive.addfile(info, io.BytesIO(png))
    with pytest.raises(ConfigError, match="member 'a/0.png' appears twice"):
        load_dataset("folder", root=path, cache=False)
    bad_zip = _zip(tmp_path / "bad.zip", {"a/0.png": png, "a/../../x.png": png})
    with pytest.raises(ConfigError, match="unsafe member path 'a/../../x.png'"):
        load_dataset("folder", root=bad_zip, cache=False)


@pytest.mark.parametrize("link", ["loop", "dangling"])
def test_a_broken_link_in_a_cached_folder_is_one_line(tmp_path: Path, link: str) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, "PNG")
    root = _folder_of(tmp_path / "images", {f"{c}/{i}.png": buffer.getvalue()
                                            for c in "ab" for i in range(3)})
    bad = root / "a" / "bad.png"
    os.symlink("bad.png" if link == "loop" else "/nonexistent/x.png", bad)
    with pytest.raises(ConfigError) as error:  # as without a cache: the read names the link
        load_dataset("folder", root=root, cache=tmp_path / "cache", decode_workers=0)
    assert error.value.file == str(bad) and "cannot read" in str(error.value)


def test_decoding_chunks_are_bounded_in_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A source of a few huge members never holds them all undecoded at once."""
    from nas.data import _decode

    monkeypatch.setattr(_decode, "_CHUNK_BYTES", 3000)
    chunks: list[int] = []
    real = _decode._decode

    def recording(names, blobs, *args):  # type: ignore[no-untyped-def]
        chunks.append(sum(map(len, blobs)))
        return real(names, blobs, *args)

    monkeypatch.setattr(_decode, "_decode", recording)
    rng = np.random.default_rng(0)
    files = {}
    for c in "ab":
        for i in range(4):
            buffer = io.BytesIO()
            from PIL import Image

            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(buffer, "PNG")
            files[f"{c}/{i}.png"] = buffer.getvalue()  # about 800 bytes each
    archive = _zip(tmp_path / "noise.zip", files)
    data = load_dataset("folder", root=archive, cache=False, decode_workers=0, test_fraction=0)
    assert len(data.train_labels) + len(data.val_labels) == 8
    assert len(chunks) > 1 and max(chunks) <= 3000


def test_a_chunk_too_large_to_decode_is_refused_before_allocation(tmp_path: Path) -> None:
    """100 images of 8000x8000 (19 GB decoded, more than max_decoded_bytes) fail in one line
    naming the member, under a 6 GiB address-space limit, without a MemoryError."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8000, 8000)).save(buffer, "PNG")
    archive = _tar(tmp_path / "big.tar", {f"{c}/{i}.png": buffer.getvalue()
                                          for c in "ab" for i in range(50)}, mode="w")
    code = ("import sys, resource; resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30)); "
            "from nas.cli import main; from nas.data import load_dataset; from nas.errors import NasError\n"
            "try:\n    load_dataset('folder', root=sys.argv[1], cache=False, decode_workers=0)\n"
            "except NasError as error:\n    print(error, file=sys.stderr); sys.exit(2)\n")
    result = subprocess.run([sys.executable, "-c", code, str(archive)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"{archive}: a/0.png: decoded images exceed max_decoded_bytes "
                     "(17,179,869,184 bytes); set a smaller resolution or raise the bound"]


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_a_compression_bomb_is_refused_from_its_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Members holding hundreds of times the archive's size fail before their bulk is
    decompressed, even when they would be skipped (not images); max_expansion lets them in."""
    from PIL import Image

    from nas.data import _members

    monkeypatch.setattr(_members, "EXPANSION_SLACK", 0)  # else the first GiB is always allowed
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, "PNG")
    files = {"a/zeros.bin": bytes(4 << 20)}  # compresses to a few kB
    files.update({f"{c}/{i}.png": buffer.getvalue() for c in "ab" for i in range(3)})
    if kind == "zip":
        archive = tmp_path / "bomb.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
            for name, data in files.items():
                handle.writestr(name, data)
    else:
        archive = _tar(tmp_path / "bomb.tar.gz", files)
    with pytest.raises(ConfigError) as error:
        load_dataset("folder", root=archive, cache=False, decode_workers=0)
    assert error.value.file == str(archive) and "\n" not in str(error.value)
    assert "'a/zeros.bin' hold 4,194,304 bytes, more than max_expansion (100)" in str(error.value)
    data = load_dataset("folder", root=archive, cache=False, decode_workers=0, test_fraction=0,
                        max_expansion=100_000)
    assert data.classes == ("a", "b")


@pytest.mark.parametrize("data", [b"", b"hello world", JPEG_MAGIC + b"\0" * 10])
def test_a_non_image_is_named_without_an_object_address(tmp_path: Path, data: bytes) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    archive = _tar(tmp_path / "x.tar", {"a/0.png": buffer.getvalue(), "b/0.png": buffer.getvalue(),
                                        "a/x.jpg": data}, mode="w")
    with pytest.raises(ConfigError) as error:
        load_dataset("folder", root=archive, cache=False, decode_workers=0)
    assert str(error.value).startswith(f"{archive}: a/x.jpg: cannot read image: ")
    assert " at 0x" not in str(error.value)  # messages are stable: the same file, the same line


def test_an_encrypted_zip_is_one_line(tmp_path: Path) -> None:
    # the "encrypted" flag bit set in the local and the central header of every member: zipfile
    # asks for a password (RuntimeError), which is the archive's problem, said in one line
    archive = _zip(tmp_path / "locked.zip", {"a/1.png": b"x" * 40, "b/1.png": b"y" * 40})
    raw = bytearray(archive.read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = raw.find(signature)
        while start != -1:
            raw[start + flags_at] |= 1
            start = raw.find(signature, start + 4)
    archive.write_bytes(bytes(raw))
    with pytest.raises(ConfigError) as error:
        _load(archive, tmp_path / "cache")
    text = str(error.value)
    assert "\n" not in text and text.startswith(f"{archive}: cannot read the zip archive") and "encrypted" in text


@pytest.mark.parametrize("kind", ["fifo", "symlink", "hardlink", "device", "top"])
def test_skipped_members_count_toward_max_members(tmp_path: Path, kind: str) -> None:
    """Non-regular members were skipped before being counted: 300,000 FIFO headers took
    27 s whatever max_members was."""
    path = tmp_path / "many.tar"
    with tarfile.open(path, "w") as archive:
        for i in range(20):
            info = tarfile.TarInfo("./" if kind == "top" else f"a/{i}.png")
            info.type = {"fifo": tarfile.FIFOTYPE, "symlink": tarfile.SYMTYPE, "top": tarfile.DIRTYPE,
                         "hardlink": tarfile.LNKTYPE, "device": tarfile.CHRTYPE}[kind]
            info.linkname = "/etc/passwd"
            archive.addfile(info)
    with pytest.raises(ConfigError, match="more than 5 members; raise max_members") as error:
        load_dataset("folder", root=path, cache=False, max_members=5)
    assert error.value.file == str(path)


def test_fifos_in_a_folder_count_toward_max_members(tmp_path: Path) -> None:
    root = tmp_path / "images"
    root.mkdir()
    for i in range(20):
        os.mkfifo(root / f"{i}.png")
    with pytest.raises(ConfigError, match="more than 5 members; raise max_members"):
        load_dataset("folder", root=root, cache=False, max_members=5)


def _png(color: tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def _damage_meta(change):
    def damage(entry: Path) -> None:
        import json

        meta = json.loads((entry / "meta.json").read_text())
        change(meta)
        (entry / "meta.json").write_text(json.dumps(meta))
    return damage


def _damage_array(name: str, array: np.ndarray):
    return lambda entry: np.save(entry / f"{name}.npy", array)


CACHE_DAMAGE = {
    "classes null": _damage_meta(lambda m: m.update(classes=None)),
    "classes not strings": _damage_meta(lambda m: m.update(classes=[1, 2])),
    "no test_folder": _damage_meta(lambda m: m.pop("test_folder")),
    "test_folder a number": _damage_meta(lambda m: m.update(test_folder=3)),
    "arrays without test_images": _damage_meta(lambda m: m["arrays"].remove("test_images")),
    "five channels": _damage_array("train_images", np.zeros((6, 5, 8, 8), np.uint8)),
    "0-d images": _damage_array("train_images", np.array(7, np.uint8)),
    "float images": _damage_array("train_images", np.zeros((6, 3, 8, 8), np.float32)),
    "3-d images": _damage_array("train_images", np.zeros((6, 8, 8), np.uint8)),
    "test of another size": _damage_array("test_images", np.zeros((4, 3, 16, 16), np.uint8)),
    "labels out of range": _damage_array("train_labels", np.array([0, 0, 0, 1, 1, 5])),
    "negative labels": _damage_array("train_labels", np.array([0, 0, 0, 1, 1, -1])),
    "float labels": _damage_array("train_labels", np.zeros(6, np.float64)),
    "int32 labels": _damage_array("train_labels", np.zeros(6, np.int32)),
    "2-d labels": _damage_array("train_labels", np.zeros((6, 1), np.int64)),
    "too few labels": _damage_array("test_labels", np.zeros(3, np.int64)),
    "truncated": lambda entry: (entry / "test_labels.npy").write_bytes(b"\x93NUMPY"),
}


@pytest.mark.parametrize("damage", list(CACHE_DAMAGE))
def test_a_damaged_cache_entry_is_decoded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    """A damaged entry was trusted: a TypeError or KeyError, a 5-channel image set that
    trained, or out-of-range labels blamed on the dataset. It is a miss now: decoded again,
    the same as a fresh decode, and written again."""
    files = {f"{split}/{c}/{i}.png": _png((i * 40, 99 if c == "a" else 9, 7))
             for split, n in (("train", 3), ("test", 2)) for c in "ab" for i in range(n)}
    root = _folder_of(tmp_path / "images", files)
    fresh = load_dataset("folder", root=root, cache=False, val_split="test")
    cache = tmp_path / "cache"
    _load(root, cache)
    (entry,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    CACHE_DAMAGE[damage](entry)
    calls = []
    decode = _folder.decode_source
    monkeypatch.setattr(_folder, "decode_source", lambda *a, **k: calls.append(1) or decode(*a, **k))
    for expected_calls in ([1], [1]):  # decoded again once, then read from the rewritten entry
        again = _load(root, cache)
        assert calls == expected_calls
        assert again.classes == fresh.classes == ("a", "b")
        for name in ("train_images", "train_labels", "val_images", "val_labels"):
            assert torch.equal(getattr(again, name), getattr(fresh, name)), name


@pytest.mark.parametrize("kind", ["fifo", "folder", "link to a fifo"])
def test_an_entry_array_that_is_not_a_regular_file_is_a_miss_never_a_wait(tmp_path: Path, kind: str) -> None:
    """np.load opened a FIFO in an entry (a shared cache folder) and waited for a writer forever."""
    import signal

    root = _folder_of(tmp_path / "images", {f"{c}/{i}.png": _png((i * 40, 9, 7)) for c in "ab" for i in range(3)})
    cache = tmp_path / "cache"
    fresh = _load(root, cache)
    (entry,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    target = entry / "train_images.npy"
    target.unlink()
    if kind == "folder":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        os.mkfifo(tmp_path / "fifo")
        target.symlink_to(tmp_path / "fifo")

    class Hung(BaseException):  # not an OSError, which a cache read takes for a miss
        pass

    def hung(*_: object) -> None:
        raise Hung("the load waited on the FIFO")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    try:
        again = _load(root, cache)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert torch.equal(again.train_images, fresh.train_images)
    assert (entry / "train_images.npy").is_file()  # the entry was written again


@pytest.mark.parametrize("layout", ["classes", "train-test"])
def test_a_root_with_one_class_folder_is_refused(tmp_path: Path, layout: str) -> None:
    """One class folder trained to a validation accuracy of 1.0."""
    prefixes = ("",) if layout == "classes" else ("train/", "test/")
    root = _folder_of(tmp_path / "images", {f"{p}a/{i}.png": _png((i * 30, 1, 2))
                                            for p in prefixes for i in range(5)})
    for cache in (False, tmp_path / "cache", tmp_path / "cache"):  # decoded, written, read
        with pytest.raises(ConfigError) as error:
            load_dataset("folder", root=root, cache=cache, test_fraction=0.2)
        assert str(error.value) == (
            f"{root}: only one class folder ('a'); a classifier needs at least 2")


def test_val_root_the_same_as_root_is_refused(tmp_path: Path) -> None:
    """val_root equal to root used the same images for training and testing."""
    root = _folder_of(tmp_path / "images", {f"{c}/{i}.png": _png((i * 30, 1, 2))
                                            for c in "ab" for i in range(3)})
    os.symlink(root, tmp_path / "link")
    for same in (root, str(root) + "/", tmp_path / "x" / ".." / "images", tmp_path / "link"):
        (tmp_path / "x").mkdir(exist_ok=True)
        with pytest.raises(ConfigError) as error:
            load_dataset("folder", root=root, val_root=same, cache=False)
        assert error.value.path == "val_root"
        assert str(error.value).endswith("val_root: is the same source as root")


def test_an_empty_cache_or_source_path_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cache: '' wrote a cache entry into the working folder."""
    from nas._checks import dataset

    root = _folder_of(tmp_path / "images", {f"{c}/{i}.png": _png((i * 30, 1, 2))
                                            for c in "ab" for i in range(3)})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^cache: must be a folder path, got ''$"):
        load_dataset("folder", root=root, cache="")
    with pytest.raises(ConfigError, match=r"^root: must be a path, got ' '$"):
        load_dataset("folder", root=" ", cache=False)
    config = tmp_path / "run.yaml"
    with pytest.raises(ConfigError) as error:
        dataset({"name": "folder", "root": str(root), "cache": ""}, base=tmp_path, file=str(config))
    assert str(error.value) == f"{config}: dataset.cache: must be a folder path, got ''"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


def test_folder_names_that_are_not_utf8_are_read_and_cached(tmp_path: Path) -> None:
    """A class folder named in Latin-1 (bytes that are not UTF-8) crashed the cache key:
    'UnicodeEncodeError: surrogates not allowed'."""
    root = _folder_of(tmp_path / "images", {f"{c}/{i}.png": _png((i * 30, 1, 2))
                                            for c in "ab" for i in range(3)})
    latin = Path(os.fsdecode(os.fsencode(root) + b"/caf\xe9"))
    latin.mkdir()
    for i in range(3):
        (latin / f"{i}.png").write_bytes(_png((i * 30, 200, 2)))
    fresh = load_dataset("folder", root=root, cache=False)
    for _ in range(2):  # decoded and written, then read
        data = load_dataset("folder", root=root, cache=tmp_path / "cache")
        assert data.classes == fresh.classes == ("a", "b", "caf\udce9")
        assert torch.equal(data.train_images, fresh.train_images)


@pytest.fixture
def nest():
    """``nest(top, depth)`` makes ``top/d/d/.../d``, ``depth`` folders deep (from inside, so no
    call sees the whole path), and returns the deepest. The chains are removed afterwards from
    the bottom up: shutil.rmtree recurses once per level, and pytest's own cleanup of such a
    tree raised RecursionError."""
    made: list[tuple[Path, int]] = []

    def make(top: Path, depth: int) -> Path:
        made.append((top, depth))
        here = os.getcwd()
        try:
            os.chdir(top)
            for _ in range(depth):
                os.mkdir("d")
                os.chdir("d")
        finally:
            os.chdir(here)
        return top.joinpath(*["d"] * depth)

    yield make
    here = os.getcwd()
    try:
        for top, depth in made:
            os.chdir(top)
            for _ in range(depth):
                os.chdir("d")
            for name in os.listdir("."):
                os.unlink(name)
            for _ in range(depth):
                os.chdir("..")
                os.rmdir("d")
    finally:
        os.chdir(here)


def test_a_folder_nested_thousands_deep_is_walked(tmp_path: Path, nest) -> None:
    """os.walk recursed once per level: 1,500 nested folders were 'unexpected RecursionError'
    in the cache key and in the read."""
    root = _folder_of(tmp_path / "images", {f"{c}/{i}.png": _png((i * 30, 1, 2))
                                            for c in "ab" for i in range(3)})
    (nest(root / "a", 1500) / "deep.png").write_bytes(_png((9, 9, 9)))
    for cache in (False, tmp_path / "cache", tmp_path / "cache"):  # decoded, written, read
        data = load_dataset("folder", root=root, cache=cache, test_fraction=0)
        assert len(data.train_images) + len(data.val_images) == 7


def test_a_folder_that_cannot_be_listed_is_one_line_not_left_out(tmp_path: Path, nest) -> None:
    """os.walk skipped a folder it could not list, and its images silently: here one past
    the system's path length limit, whose listing fails with ENAMETOOLONG."""
    root = _folder_of(tmp_path / "images", {f"{c}/{i}.png": _png((i * 30, 1, 2))
                                            for c in "ab" for i in range(3)})
    deepest = nest(root / "a", 2100)  # 4,200 characters: past PATH_MAX (4,096)
    for cache in (False, tmp_path / "cache"):
        with pytest.raises(ConfigError) as error:
            load_dataset("folder", root=root, cache=cache)
        assert str(deepest).startswith(error.value.file[:900])
        assert str(error.value).endswith(": cannot read: File name too long")


def test_the_cache_key_of_a_folder_stops_at_max_members(tmp_path: Path) -> None:
    """The cache key listed and stat()ed every entry before the read counted them: a class
    folder of 300,000 files took 9 s (and all its names in memory) to be refused at
    max_members=1000. The key and the read now stop at the same bound, as entries are listed."""
    root = _folder_of(tmp_path / "images", {f"{c}/{i}.png": _png((i * 30, 1, 2))
                                            for c in "ab" for i in range(3)})
    for i in range(40):
        (root / "a" / f"{i}.txt").touch()
    with pytest.raises(ConfigError) as error:
        _cache.fingerprint(root, max_members=20)
    assert str(error.value) == f"{root}: more than 20 members; raise max_members if this is intended"
    for cache in (False, tmp_path / "cache"):
        with pytest.raises(ConfigError) as again:
            load_dataset("folder", root=root, cache=cache, max_members=20)
        assert str(again.value) == str(error.value)
    assert load_dataset("folder", root=root, cache=tmp_path / "cache", max_members=49).classes == ("a", "b")


def _gray_image(values: list[float], dtype: type, fmt: str) -> bytes:
    """A 4x2 gray image of ``values`` (one row, twice) as Pillow saves it in ``fmt``."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.array([values] * 2, dtype)).save(buffer, fmt)
    return buffer.getvalue()


def _first_rows(root: Path) -> set[tuple[int, ...]]:
    """The first row of the first channel of every image of the folder ``root``, the same
    whether it is read as gray or as RGB (which repeats the gray channel)."""
    rows = []
    for grayscale, channels in ((True, 1), (False, 3)):
        data = load_dataset("folder", root=root, cache=False, grayscale=grayscale, test_fraction=0,
                            val_fraction=0.25, seed=0)
        images = torch.cat([data.train_images, data.val_images])
        assert images.shape[1] == channels
        rows.append({tuple(image[0, 0].tolist()) for image in images})
    assert rows[0] == rows[1]
    return rows[0]


def test_sixteen_bit_gray_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    """Pillow's convert clips 16-bit values at 255: a 16-bit scan (values up to 65,535)
    decoded to a white square."""
    def sixteen_bit(values: list[int]) -> bytes:
        return _gray_image(values, np.uint16, "PNG")

    root = _folder_of(tmp_path / "images", {
        "a/0.png": sixteen_bit([0, 257, 32896, 65535]), "a/1.png": sixteen_bit([65535] * 4),
        "b/0.png": sixteen_bit([1000, 2000, 3000, 4000]), "b/1.png": sixteen_bit([0] * 4),
    })
    assert _first_rows(root) == {(0, 1, 128, 255), (255,) * 4, (4, 8, 12, 16), (0,) * 4}


@pytest.mark.parametrize("kind", ["fifo", "device", "link_loop"])
def test_a_root_that_is_no_folder_or_file_is_named_for_what_it_is(tmp_path: Path, kind: str) -> None:
    """A FIFO, a device or a symlink loop was 'image folder or archive not found'."""
    root = tmp_path / "images.tar"
    if kind == "fifo":
        os.mkfifo(root)
    elif kind == "device":
        root = Path("/dev/null")
    else:
        root.symlink_to(root)
    message = {"fifo": "not a folder or a regular file (a FIFO, a device or a socket)",
               "device": "not a folder or a regular file (a FIFO, a device or a socket)",
               "link_loop": "cannot read: Too many levels of symbolic links"}[kind]
    with pytest.raises(ConfigError) as error:
        load_dataset("folder", root=root, cache=tmp_path / "cache")
    assert str(error.value) == f"{root}: {message}"
    assert not (tmp_path / "cache").exists()


def test_float_and_sixteen_bit_pgm_images_are_scaled_by_their_rule(tmp_path: Path) -> None:
    """Pillow's convert truncates floats (an image of floats in [0, 1] decoded black) and
    clips a 16-bit PGM, which it opens in the 32-bit mode I, at 255 (white)."""
    pgm = b"P5 4 2 65535\n" + np.array([[0, 257, 32896, 65535]] * 2, ">u2").tobytes()
    root = _folder_of(tmp_path / "images", {
        "a/0.tif": _gray_image([0, 0.5, 1, 0.25], np.float32, "TIFF"),
        "a/1.tif": _gray_image([1.0] * 4, np.float32, "TIFF"),
        "b/0.pgm": pgm, "b/1.pgm": b"P5 4 2 65535\n" + bytes(16),
    })
    assert _first_rows(root) == {(0, 128, 255, 64), (255,) * 4, (0, 1, 128, 255), (0,) * 4}


@pytest.mark.parametrize("values, dtype, problem", [
    ([0, 1000, 70000, 2**31 - 1], np.int32,
     "is a 32-bit integer image (mode I), which has no standard white level"),
    ([0, 0.5, 255, 1], np.float32,
     "is a 32-bit float image (mode F) with values from 0 to 255; float images are read from [0, 1]"),
    ([0, float("nan"), 1, 1], np.float32, "is a 32-bit float image (mode F) with values from nan"),
])
def test_images_of_a_mode_with_no_rule_are_refused_naming_the_mode(
    tmp_path: Path, values: list[float], dtype: type, problem: str
) -> None:
    plain = _gray_image([0, 1, 2, 3], np.uint8, "PNG")
    root = _folder_of(tmp_path / "images", {"a/0.png": plain, "a/1.tif": _gray_image(values, dtype, "TIFF"),
                                            "b/0.png": plain})
    with pytest.raises(ConfigError) as error:
        load_dataset("folder", root=root, cache=False, decode_workers=0)
    assert str(error.value).startswith(f"{root}: a/1.tif: {problem}")
    assert "\n" not in str(error.value)


def test_a_zip_member_larger_than_it_declares_is_read_a_chunk_at_a_time(tmp_path: Path) -> None:
    """zipfile's read() inflates a member whole before it cuts it to its declared size: a
    member declaring 100 bytes over 64 MB of deflated zeros took 64 MB of memory (a 1 MB
    one, 1 GB), past every bound the central directory was checked against."""
    import struct
    import tracemalloc

    plain = _gray_image([0, 1, 2, 3], np.uint8, "PNG")
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as writer:
        for name, data in (("a/0.png", plain), ("b/0.png", plain), ("a/1.png", bytes(64 << 20))):
            writer.writestr(name, data)
    raw = bytearray(archive.read_bytes())
    central = raw.rfind(b"PK\x01\x02")  # the last member's entry: its size, at offset 24, to 100
    struct.pack_into("<I", raw, central + 24, 100)
    archive.write_bytes(bytes(raw))
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as error:
            load_dataset("folder", root=archive, cache=False, decode_workers=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(error.value) == f"{archive}: cannot read the zip archive: Bad CRC-32 for file 'a/1.png'"
    assert peak < 16 << 20


@pytest.mark.parametrize("over", [1, 10**6])
def test_decode_workers_are_bounded_before_any_process_starts(tmp_path: Path, over: int) -> None:
    """decode_workers had no upper bound: the decoder forks its pool all at once, so 10**6 was a
    fork bomb (the source was read first: here, not found)."""
    from nas._checks import max_processes

    workers = max_processes() + over
    with pytest.raises(ConfigError) as error:
        load_dataset("folder", root=tmp_path / "missing", decode_workers=workers)
    assert str(error.value) == f"decode_workers: must be an integer in [0, {max_processes()}], got {workers}"
