"""The search engine: ``nas search CONFIG.yaml`` from a YAML run config to ``runs/NAME/``.

Public API::

    from nas.search import load_config, run_search, best_trials
    config = load_config("search_spaces/quickstart.yaml")      # validated; ConfigError if not
    summary = run_search(config, workers=2)                     # or resume=True, trials=..., ...
    run, best = best_trials(summary.run_dir)                    # best trial or Pareto set

The space language is documented in :mod:`nas.search._space`, the run config's keys in
:mod:`nas.search._config`. A run is orchestrated by :mod:`nas.search._run` from one module per
concern: the run folder (:mod:`~nas.search._folder`), the storage and every use of Optuna's
internals (:mod:`~nas.search._storage`), trial evaluation and its record
(:mod:`~nas.search._evaluate`), workers, budget and crash recovery (:mod:`~nas.search._workers`),
the progress bar (:mod:`~nas.search._progress`); samplers and successive halving are in
:mod:`nas.search._study`.

Layout of ``runs/NAME/`` (every file is written atomically: a temporary file, then
``os.replace``)::

    config.yaml            the frozen run config (space inlined; its genotype points at
                           space_genotype.yaml; no storage URL)
    space_genotype.yaml    the space's base genotype, canonical and self-contained
    run.json               {name, objectives, directions, study_name, storage (password
                           masked; "journal.log" for the default), sampler, pruner, trials,
                           timeout, tabular, plugins (loaded by readers), updated}
    journal.log            the Optuna journal storage (default storage; study name = NAME)
    .weights.lock          the lock workers take to decide which trials keep weights
    prescreen.json         what zero-cost pre-screening did: proxies, candidates, top, seconds,
                           the enqueued candidates and their scores (when configured)
    trials/NNNN/           one folder per Optuna trial number (zero-padded to 4 digits)
        genotype.yaml      the trained genotype (``nas summary`` / ``nas decode`` accept it)
        log.txt            timestamped lines: params, static stats, epochs, end reason
        metrics.json       the record below, written when the trial ends
        weights.pth        trained state_dict, for the best trials only (keep_weights)
        weights.json       its input shape, mean, std, class names, objectives (nas.search._keep)

``metrics.json`` (schema 1; a missing value is ``null``)::

    schema               1
    run                  run name
    trial                Optuna trial number (int)
    state                "complete" | "pruned" | "fail"   (Optuna's state, lower case)
    status               why, as a token: "completed", "duplicate", "constraint", "pruned"
                         (early stopping), "timeout", "nan_loss", "oom", "build_error",
                         "invalid_genotype", "not_in_table", "error", "interrupted",
                         "proxy_error", "proxy_undefined" (a proxy objective is NaN)
    end_reason           the same as one human-readable line
    counted              false only for "interrupted" trials (killed; re-run as a later trial)
    seed                 seed name ("resnet20") for an enqueued seed trial, else null
    retry_of             the interrupted trial this one re-runs, else null
    worker               "HOST:PID" of the process that ran it
    params               Optuna parameters: stable label -> value (categorical lists as index)
    genotype             {name, hash (isomorphism-invariant), path ("genotype.yaml"),
                          params (full genotype params), input [C, H, W]}
                         (+ cell, cell_key for NAS-Bench-201)
    static               {params, macs, activation_bytes, peak_activation_bytes} of the
                         trained genotype (dataset input, proxy width), or null
    objectives           objective name -> value ("val_accuracy" in [0, 1], "params",
                         "macs", "latency" in seconds, "table_accuracy" in percent)
    values               the Optuna values in the order of run.json's objectives, or null
    table                a tabular trial's table values, column -> value: the optimised column
                         (also "table_accuracy") and the reported ones, e.g.
                         {"cifar10_valid": 91.6, "cifar10_test": 94.4}; else null
    proxies              zero-cost scores of the trial's network, name -> value (null when
                         undefined; the reason is in log.txt), when the config has proxies
    duplicate_of         trial whose result was reused (equal genotype hash), else null
    epochs               epochs finished
    best_val_accuracy    best validation accuracy over epochs (the val_accuracy objective)
    final_val_accuracy   validation accuracy after the last finished epoch
    history              [{epoch, train_loss, val_accuracy, seconds, lr, steps, val_loss}, ...]
    latency_s            measured seconds per forward pass (when latency is an objective)
    batch_size, train_time   as trained (batch size halves after an out-of-memory retry)
    weights              null (not trained), or whether the trained weights were kept when the
                         trial ended: {kept, file ("weights.pth" or null), bytes, evicted
                         (trials whose weights this one displaced), policy}; a later, better
                         trial may evict them: ``trials/NNNN/weights.pth`` with
                         ``weights.json`` present is the truth (nas.search._keep)
    started, finished    ISO local times; wall_time: seconds for the whole trial
    genotype.text        the trained genotype's canonical YAML (what genotype.yaml holds)
    sampler_seed         the seed of the worker's sampler (per machine and worker)
    rejected             proposals over a static constraint (params, MACs, activations) that
                         the sampler drew again before this trial (nas.samplers.FeasibleSampler;
                         sampler option ``reject_infeasible: false`` turns it off), else null
    cuda_visible_devices CUDA_VISIBLE_DEVICES as the worker saw it (one worker per device)
    traceback            for an internal error only

The storage is the run: the Optuna study (named NAME) holds every machine's trials, each
with its whole record above as the user attribute ``nas.record`` (set when it ends), and
``nas.seed``, ``nas.retry_of``, ``nas.worker`` (set when it starts; in a journal with its
first write), ``nas.rejected`` (when it samples), ``nas.heartbeat`` (journal storages),
``nas.end_reason`` and ``nas.uncounted`` (interrupted trials),
``nas.surplus`` (asked after the budget was spent, never run, hidden when read),
``nas.proxies`` (proxy scores) and ``nas.prescreen``
(a pre-screened trial's rank; on the study, what pre-screening did and its seconds, also in
``prescreen.json`` in the run folder); runs from before records were kept have ``nas.hash``,
``nas.duplicate_of`` and ``nas.table`` instead, and runs from before intermediate values
were reported have ``nas.rung.EPOCH`` (a halving rung's accuracy). For dashboards (optuna-dashboard), a finished trial also carries the plain user
attributes ``status``, ``end_reason``, ``duplicate_of`` (duplicates), ``params``, ``macs``,
``latency_s`` (when measured), ``genotype_hash`` and ``genotype`` (one line: the genotype's name
and parameters, or the cell), written with ``nas.record`` in one storage write; every trained
epoch's validation accuracy is an intermediate value (step = epoch), whatever the pruner (in a
multi-objective study, ``nas.rung.EPOCH`` while the trial runs, intermediate values once it
completes: Optuna's TPE fails on a pruned multi-objective trial that has them); and
the study names its objectives (``Study.metric_names``). The study's user attribute
``nas.config`` is the frozen config joining machines must match. A run folder is one machine's: its frozen
config, ``run.json`` saying where the study lives, and the folders of the trials it ran.
Dedup reservations are, in a journal, the trial attribute ``nas.reserve.GENERATION.HASH``
(the first trial in the journal to set it holds it), and in an RDB storage studies named
``NAME:dedup:GENERATION:HASH``.
"""

from __future__ import annotations

from nas.search._config import RunConfig, load_config
from nas.search._records import best_trials, read_trials
from nas.search._run import SearchSummary, load_run_config, run_search

# What users call: load a config, run it, read its trials and best ones, read a run's frozen
# config. The space and config parsers and the record readers stay in the private modules.
__all__ = [
    "RunConfig",
    "SearchSummary",
    "best_trials",
    "load_config",
    "load_run_config",
    "read_trials",
    "run_search",
]
