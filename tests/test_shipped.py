"""The shipped data: copies of genotypes/ and search_spaces/ load like
the originals, imports resolve next to the importing file, configs run by name, ``nas configs``.

The wheel itself (the zoo and the configs as package data, found from any folder) is checked
end to end by ``.ci/run``, which installs it in a clean environment.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import nas
from nas._yaml import load_yaml_file
from nas._shipped import configs_dir, find_config, shipped_configs
from nas.cli import main
from nas.errors import ConfigError, GenotypeError
from nas.scaling import load_scale_config
from nas.search import load_config

ROOT = Path(__file__).resolve().parents[1]
NB201_TABLE = ROOT.parent / "shared" / "data" / "nasbench201" / "nb201_cifar.csv"
CONFIGS = sorted(p.stem for p in (ROOT / "search_spaces").glob("*.yaml"))


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    """The two folders copied side by side into a temporary folder, with ``../shared`` beside
    it as beside the checkout (the NAS-Bench-201 config's table path is relative to itself)."""
    root = tmp_path_factory.mktemp("copy") / "repo"
    for folder in ("genotypes", "search_spaces"):
        shutil.copytree(ROOT / folder, root / folder)
    if NB201_TABLE.is_file():
        (root.parent / "shared").symlink_to(ROOT.parent / "shared", target_is_directory=True)
    return root


@pytest.fixture
def no_zoo(monkeypatch, tmp_path) -> None:
    """No zoo to fall back on (an empty one): every import must resolve inside the copy."""
    (tmp_path / "no-zoo").mkdir()
    monkeypatch.setenv("NAS_GENOTYPES", str(tmp_path / "no-zoo"))


@pytest.mark.parametrize("value", ["missing", "file"])
def test_nas_genotypes_that_is_not_a_folder_is_refused(monkeypatch, tmp_path, capsys, value):
    # was exit 0 and '0 genotypes in /nonexist'
    target = tmp_path / value
    if value == "file":
        target.write_text("not a folder")
    monkeypatch.setenv("NAS_GENOTYPES", str(target))
    assert main(["zoo"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"$NAS_GENOTYPES: {target}: not a folder"]
    assert main(["summary", "lenet5"]) == 2
    monkeypatch.setenv("NAS_GENOTYPES", "")  # empty: as if unset
    assert main(["summary", "lenet5"]) == 0


def _genotype_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.yaml") if "lib" not in p.relative_to(root).parts)


def test_the_copy_holds_every_genotype():
    assert len(_genotype_files(ROOT / "genotypes")) >= 44 + 3  # the zoo and the search genotypes


def test_every_copied_genotype_loads_from_the_copy(copy, no_zoo):
    for path in _genotype_files(copy / "genotypes"):
        original = nas.load_genotype(ROOT / "genotypes" / path.relative_to(copy / "genotypes"))
        copied = nas.load_genotype(path)
        assert copied == original and copied.source == str(path)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_copied_config_loads_from_the_copy(copy, no_zoo, name, online):
    path = copy / "search_spaces" / f"{name}.yaml"
    if "space" not in load_yaml_file(path):  # a scale-search config
        config = load_scale_config(path)
        assert Path(config.genotype.source).is_relative_to(copy)
        return
    if name == "nb201" and not NB201_TABLE.is_file():
        pytest.skip("NAS-Bench-201 table not present")
    config = load_config(path)
    assert Path(config.space.genotype.source).is_relative_to(copy)
    assert config.space.genotype == load_config(ROOT / "search_spaces" / f"{name}.yaml").space.genotype


def test_an_edited_copy_of_a_library_wins_over_the_zoo(tmp_path):
    """Imports resolve next to the importing file; the zoo only when no local file exists."""
    shutil.copytree(ROOT / "genotypes" / "lib", tmp_path / "lib")
    text = (ROOT / "genotypes" / "lib" / "resnet.yaml").read_text()
    (tmp_path / "lib" / "resnet.yaml").write_text(text.replace("doc:", "doc: EDITED", 1))
    shutil.copy(ROOT / "genotypes" / "resnet18.yaml", tmp_path)
    local = nas.load_genotype(tmp_path / "resnet18.yaml")
    assert any(block.doc.startswith("EDITED") for block in local.blocks.values())
    zoo = nas.load_genotype("resnet18")
    assert not any(block.doc.startswith("EDITED") for block in zoo.blocks.values())


def test_a_library_met_under_two_paths_is_loaded_once(tmp_path):
    """A local copy of lib/common.yaml and the zoo's (reached through the zoo's lib/resnet.yaml)
    are one library, not a block defined twice."""
    (tmp_path / "lib").mkdir()
    shutil.copy(ROOT / "genotypes" / "lib" / "common.yaml", tmp_path / "lib")
    net = tmp_path / "net.yaml"
    net.write_text("imports: [lib/common.yaml, lib/resnet.yaml]\n"
                   "params: {block: basic}\ninput: [3, 32, 32]\n"
                   "network: [conv_bn(16), block(16), gap, linear(10)]\n")
    assert nas.load_genotype(net).graph.number_of_nodes() > 5


def test_two_different_libraries_defining_one_block_still_clash(tmp_path):
    (tmp_path / "a.yaml").write_text("blocks: {unit: [conv(8), relu]}\n")
    (tmp_path / "b.yaml").write_text("blocks: {unit: [conv(8), bn, relu]}\n")
    (tmp_path / "net.yaml").write_text("imports: [a.yaml, b.yaml]\ninput: [3, 8, 8]\nnetwork: [unit]\n")
    with pytest.raises(GenotypeError, match="block 'unit' is defined twice"):
        nas.load_genotype(tmp_path / "net.yaml")


def test_a_config_runs_by_its_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_config("quickstart") == configs_dir() / "quickstart.yaml"
    config = load_config(find_config("quickstart"))
    assert Path(config.space.genotype.source).resolve() == nas.zoo_dir().resolve() / "search" / "resnet_cifar.yaml"
    (tmp_path / "quickstart").write_text("a local file of that name wins")
    assert find_config("quickstart") == Path("quickstart")
    assert find_config("mine.yaml") == Path("mine.yaml")  # a path: reading it reports it missing
    with pytest.raises(ConfigError, match="no shipped config of that name.*quickstart"):
        find_config("no_such_config")


def test_nas_search_with_an_unknown_name_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "no_such_config"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no shipped config" in err and "\n" not in err
    assert not any(tmp_path.iterdir())


def test_nas_configs_lists_every_shipped_config(capsys):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:] if line.strip()
            and not line[0].isdigit()}
    assert rows == {p.stem: "scale-search" if p.stem == "scale_digits" else "search" for p in shipped_configs()}
    assert set(rows) == set(CONFIGS)
    assert f"{len(CONFIGS)} configs in {configs_dir()}" in out
    assert "?" not in rows.values()
