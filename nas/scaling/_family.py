"""A family of scaled genotypes (phi = 0, 1, ..., N) with static figures, a table and files.

Static only: figures come from :func:`nas.analysis.analyze`; nothing imports torch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nas.genotype import Genotype
from nas.io import atomic_write_text
from nas.scaling._scale import Multipliers, multipliers, scale

__all__ = ["Member", "family", "family_table", "write_family"]


@dataclass(frozen=True)
class Member:
    """One scaled genotype: its phi, multipliers, input and static figures."""

    phi: float
    multipliers: Multipliers
    genotype: Genotype
    params: int
    macs: int

    @property
    def resolution(self) -> tuple[int, ...]:
        return tuple(self.genotype.input_shape[1:])

    def file_name(self) -> str:
        """``NAME_phi3.yaml``: the base genotype's name, made safe for a file name."""
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.genotype.meta["scaled"]["from"])
        return f"{base}_phi{self.phi:g}.yaml"

    def row(self) -> dict[str, object]:
        """Plain data for reports (JSON)."""
        return {"phi": self.phi, "depth": self.multipliers.depth, "width": self.multipliers.width,
                "resolution": self.multipliers.resolution, "input": list(self.genotype.input_shape),
                "params": self.params, "macs": self.macs, "name": self.genotype.name}


def family(genotype: Genotype, phis: Iterable[float], *, alpha: float = 1.2, beta: float = 1.1,
           gamma: float = 1.15, width_divisor: int = 8, resolution_divisor: int = 8) -> list[Member]:
    """``scale(genotype, phi=k, ...)`` for each ``k`` in ``phis``, with params and MACs.

    Raises what :func:`nas.scaling.scale` raises, for the first member that fails;
    ``TypeError`` when ``phis`` is not an iterable of numbers (``3`` or ``"12"``: use
    ``range(4)`` or ``[1, 2]``).
    """
    from nas.analysis import analyze

    if isinstance(phis, (str, bytes)) or not isinstance(phis, Iterable):
        raise TypeError(f"phis must be an iterable of numbers such as range(4), got {phis!r}")
    members = []
    for phi in phis:
        scaled = scale(genotype, phi=phi, alpha=alpha, beta=beta, gamma=gamma,
                       width_divisor=width_divisor, resolution_divisor=resolution_divisor)
        stats = analyze(scaled)
        factors = multipliers(phi=phi, alpha=alpha, beta=beta, gamma=gamma)
        members.append(Member(phi, factors, scaled, stats.params, stats.macs))
    return members


def write_family(members: Sequence[Member], folder: str | Path) -> list[Path]:
    """Write each member's canonical YAML to ``folder/NAME_phiK.yaml`` (atomically)."""
    paths = []
    for member in members:
        path = Path(folder) / member.file_name()
        atomic_write_text(path, member.genotype.dump())
        paths.append(path)
    return paths


def family_table(members: Sequence[Member]) -> str:
    """Aligned text: phi, depth, width, resolution (multiplier and H x W), params, GMACs."""
    header = ["phi", "depth", "width", "resolution", "input", "params", "GMACs"]
    rows = [header] + [
        [f"{m.phi:g}", f"{m.multipliers.depth:.3f}", f"{m.multipliers.width:.3f}",
         f"{m.multipliers.resolution:.3f}", "x".join(map(str, m.resolution)), f"{m.params:,}",
         f"{m.macs / 1e9:.4g}"]
        for m in members
    ]
    sizes = [max(len(r[i]) for r in rows) for i in range(len(header))]
    text = [" ".join(cell.rjust(size) for cell, size in zip(r, sizes)) for r in rows]
    text.insert(1, " ".join("-" * size for size in sizes))
    return "\n".join(text)
