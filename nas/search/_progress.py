"""The progress bar of ``nas search`` (tqdm on stderr): finished trials of the whole study,
the best value (or the Pareto set's size), pruned and failed counts."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from nas.search._config import RunConfig
from nas.search._storage import UNCOUNTED_ATTR

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
        """Redraw from the study, at most once a second unless ``force`` (it reads every
        trial: after each trial it would make a long run's cost per trial grow)."""
        if self.bar is None or (not force and time.monotonic() - self._last < 1.0):
            return
        self._last = time.monotonic()
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state.is_finished() and not t.user_attrs.get(UNCOUNTED_ATTR)]
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        postfix = {}
        if complete:
            if self.config.multi_objective:
                postfix["pareto"] = len(self.study.best_trials)
            else:
                sign = 1 if self.config.directions[0] == "maximize" else -1
                postfix["best"] = f"{max(sign * t.values[0] for t in complete) * sign:.4g}"
        pruned = sum(t.state == TrialState.PRUNED for t in finished)
        failed = sum(t.state == TrialState.FAIL for t in finished)
        postfix.update(pruned=pruned, failed=failed)
        self.bar.n = len(finished)
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.update(force=True)
            self.bar.close()
