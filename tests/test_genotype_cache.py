"""Parsed files kept across loads (nas.genotype._files): reused while unchanged, re-read when not."""

from __future__ import annotations

import os

import pytest

import nas
from nas.genotype import _model
from nas.genotype._files import LoadCache

MAIN = """\
imports: [lib.yaml]
input: [3, 8, 8]
params: {width: 4}
network:
  - unit(width)
  - gap
"""
LIB = """\
blocks:
  unit:
    args: {c: required}
    nodes:
      - conv(c, k=K)
      - bn
      - relu
"""


@pytest.fixture
def parses(monkeypatch):
    """Counts the genotype files parsed (not read: a cache hit still reads them)."""
    count = [0]
    parse = _model._from_data

    def counting(*args, **kwargs):
        count[0] += 1
        return parse(*args, **kwargs)

    monkeypatch.setattr(_model, "_from_data", counting)
    return count


def write(path, text):
    path.write_text(text)
    stat = path.stat()  # a later mtime, in case a cache ever trusted timestamps
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def conv_kernels(genotype):
    return [data["args"]["k"] for _, data in genotype.graph.nodes(data=True) if data["op"] == "conv"]


def test_a_file_is_parsed_once_for_many_parameter_values(tmp_path, parses):
    write(tmp_path / "lib.yaml", LIB.replace("K", "3"))
    write(tmp_path / "net.yaml", MAIN)
    first = nas.load_genotype(tmp_path / "net.yaml", width=8)
    second = nas.load_genotype(tmp_path / "net.yaml", width=16)
    third = nas.load_genotype(tmp_path / "net.yaml")
    assert parses[0] == 1
    assert [first.params["width"], second.params["width"], third.params["width"]] == [8, 16, 4]
    assert third is not nas.load_genotype(tmp_path / "net.yaml")  # each load its own object
    assert third == nas.load_genotype(tmp_path / "net.yaml")


def test_an_edited_import_is_read_again(tmp_path, parses):
    write(tmp_path / "lib.yaml", LIB.replace("K", "3"))
    write(tmp_path / "net.yaml", MAIN)
    assert conv_kernels(nas.load_genotype(tmp_path / "net.yaml")) == [3]
    write(tmp_path / "lib.yaml", LIB.replace("K", "5"))
    assert conv_kernels(nas.load_genotype(tmp_path / "net.yaml")) == [5]
    write(tmp_path / "net.yaml", MAIN.replace("width: 4", "width: 6"))
    assert nas.load_genotype(tmp_path / "net.yaml").params["width"] == 6
    assert parses[0] == 3


def test_a_new_file_next_to_the_importer_shadows_the_zoo(tmp_path, monkeypatch, parses):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net").mkdir()
    write(tmp_path / "net" / "net.yaml", MAIN.replace("lib.yaml", "lib/common.yaml").replace("unit(width)", "conv(width)"))
    before = nas.load_genotype("net/net.yaml")
    assert before.blocks.keys() == nas.load_genotype("net/net.yaml").blocks.keys()
    assert "unit" not in before.blocks
    (tmp_path / "net" / "lib").mkdir()
    write(tmp_path / "net" / "lib" / "common.yaml", LIB.replace("K", "1"))
    assert set(nas.load_genotype("net/net.yaml").blocks) == {"unit"}
    assert parses[0] == 2


def test_text_is_kept_by_content(parses):
    text = MAIN.replace("imports: [lib.yaml]\n", "").replace("unit(width)", "conv(width)")
    nas.load_genotype(text, width=8)
    nas.load_genotype(text, width=12)
    nas.load_genotype(text.replace("gap", "relu"))
    assert parses[0] == 2


def test_errors_are_not_kept(tmp_path):
    write(tmp_path / "net.yaml", MAIN)
    with pytest.raises(nas.GenotypeError, match="lib.yaml"):
        nas.load_genotype(tmp_path / "net.yaml")
    write(tmp_path / "lib.yaml", LIB.replace("K", "3"))
    assert conv_kernels(nas.load_genotype(tmp_path / "net.yaml")) == [3]


def test_the_cache_is_bounded():
    cache = LoadCache(max_entries=2)
    for key in "abc":
        cache.get(key, lambda log, key=key: key.upper())
    assert cache.get("a", lambda log: "again") == "again"  # "a" left first
    assert cache.get("c", lambda log: "miss") == "C"
