"""Test-wide settings."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def single_thread():
    """Tests use tiny tensors, for which torch's intra-op threads cost more than they give
    (and contend with each other on shared 2-core machines)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def online(monkeypatch):
    """Torchvision download servers count as reachable, so configs naming CIFAR-10 or MNIST
    load on a machine without those files (loading only checks that they could be fetched)."""
    import nas.data._sources

    monkeypatch.delenv("NAS_OFFLINE", raising=False)
    monkeypatch.setattr(nas.data._sources, "_reachable", lambda url, timeout=3.0: True)


@pytest.fixture
def drop_stored_records():
    """A function removing the ``nas.record`` user attributes from a journal file, making a run
    folder like those written before the storage held every record (the files are read)."""

    def drop(journal):
        lines = [line for line in journal.read_text().splitlines(keepends=True)
                 if '"nas.record"' not in line]
        journal.write_text("".join(lines))

    return drop
