"""The progress bar of ``nas search`` (tqdm on stderr): finished trials of the whole study,
the best value (or the Pareto set's size), pruned and failed counts."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from nas.search._config import RunConfig
from nas.search._storage import state_counts

if TYPE_CHECKING:
    import optuna

__all__ = ["Progress"]


class Progress:
    """A bar over the study's counted finished trials; does nothing unless ``enabled``."""

    def __init__(self, study: optuna.Study, config: RunConfig, *, enabled: bool):
        self.study, self.config = study, config
        self.bar = None
        self._last = 0.0
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=config.trials, unit="trial", dynamic_ncols=True,
                            desc=config.name, file=sys.stderr)
            self.update()

    def update(self, *, force: bool = False) -> None:
        """Redraw from the study's counts and best value, at most once a second unless
        ``force``."""
        if self.bar is None or (not force and time.monotonic() - self._last < 1.0):
            return
        self._last = time.monotonic()
        counts = state_counts(self.study)
        postfix: dict[str, object] = {}
        if counts["complete"]:
            if self.config.multi_objective:
                postfix["pareto"] = len(self.study.best_trials)
            else:
                postfix["best"] = f"{self.study.best_value:.4g}"
        postfix.update(pruned=counts["pruned"], failed=counts["fail"])
        self.bar.n = sum(counts.values())
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.update(force=True)
            self.bar.close()
