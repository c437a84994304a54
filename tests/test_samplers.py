"""Tests of nas.samplers: mutation, regularized evolution, local search, dedup wrapper."""

from __future__ import annotations

import multiprocessing

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from nas.errors import ConfigError
from nas.samplers import (
    DeduplicatingSampler,
    FeasibleSampler,
    LocalSearchSampler,
    RegularizedEvolutionSampler,
)
from nas.samplers._mutation import mutate_value, random_value
from nas.samplers._surrogate import RidgeSurrogate

optuna.logging.set_verbosity(optuna.logging.ERROR)

CHOICES = ("a", "b", "c", "d")


def mixed(trial: optuna.Trial) -> float:
    """A separable maximisation problem over categorical, int and float parameters."""
    c = trial.suggest_categorical("c", CHOICES)
    n = trial.suggest_int("n", 0, 10)
    x = trial.suggest_float("x", 1e-3, 1.0, log=True)
    return CHOICES.index(c) + n - abs(np.log10(x) + 1.0)


def categorical(trial: optuna.Trial) -> float:
    """Four categorical parameters; the optimum is all 'd' (value 12)."""
    return float(sum(CHOICES.index(trial.suggest_categorical(f"p{i}", CHOICES)) for i in range(4)))


def n_differences(a: dict, b: dict) -> int:
    return sum(a[k] != b[k] for k in a)


# --- mutation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dist", "value"),
    [
        (CategoricalDistribution(CHOICES), "b"),
        (IntDistribution(0, 10), 0),
        (IntDistribution(0, 10), 10),
        (IntDistribution(1, 1024, log=True), 32),
        (IntDistribution(0, 12, step=4), 8),
        (FloatDistribution(-1.0, 1.0), 0.5),
        (FloatDistribution(1e-4, 1.0, log=True), 1e-2),
        (FloatDistribution(0.0, 1.0, step=0.25), 1.0),
    ],
)
def test_mutation_changes_the_value_and_stays_in_the_distribution(dist, value):
    rng = np.random.RandomState(0)
    for _ in range(200):
        new = mutate_value(dist, value, rng, scale=0.05)
        assert new != value
        assert dist._contains(dist.to_internal_repr(new))
        assert dist._contains(dist.to_internal_repr(random_value(dist, rng)))


def test_mutation_of_a_single_valued_distribution_keeps_the_value():
    dist = IntDistribution(3, 3)
    assert mutate_value(dist, 3, np.random.RandomState(0), scale=0.1) == 3


# --- regularized evolution ------------------------------------------------------------------


def test_evolution_rejects_bad_sizes():
    with pytest.raises(ConfigError, match="must not exceed population_size"):
        RegularizedEvolutionSampler(population_size=3, sample_size=4)
    with pytest.raises(ConfigError, match="at least 1"):
        RegularizedEvolutionSampler(population_size=0)
    with pytest.raises(ConfigError, match="mutation_scale"):
        RegularizedEvolutionSampler(mutation_scale=0.0)


@pytest.mark.parametrize("sampler", ["RegularizedEvolutionSampler", "LocalSearchSampler"])
@pytest.mark.parametrize("seed", [-1, "a", 1.5, 2**32 - 1])
def test_a_sampler_refuses_a_seed_it_cannot_use(sampler, seed):
    import nas.samplers

    # numpy's "Seed must be between 0 and 2**32 - 1" or "Cannot cast scalar from dtype('<U1')";
    # 2**32 - 1 failed the same way at the random fallback's seed + 1.
    with pytest.raises(ConfigError, match=r"^seed: must be an integer in \[0, 4294967294\], got "):
        getattr(nas.samplers, sampler)(seed=seed)


def test_evolution_is_reproducible_with_a_seed():
    def run(seed: int) -> list[dict]:
        sampler = RegularizedEvolutionSampler(population_size=5, sample_size=2, seed=seed)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(mixed, n_trials=25)
        return [t.params for t in study.trials]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_each_child_is_a_one_parameter_mutation_of_a_population_member():
    population = 6
    sampler = RegularizedEvolutionSampler(population_size=population, sample_size=3, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(mixed, n_trials=40)
    trials = study.trials
    for i in range(population, len(trials)):
        members = trials[i - population:i]  # the population when trial i was sampled
        assert any(n_differences(m.params, trials[i].params) == 1 for m in members), i


def test_evolution_minimises_too_and_finds_the_optimum_of_a_separable_problem():
    sampler = RegularizedEvolutionSampler(population_size=8, sample_size=4, seed=1)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(lambda t: -categorical(t), n_trials=120)
    assert study.best_value == -12.0


def test_enqueued_trials_keep_their_values_and_join_the_population():
    sampler = RegularizedEvolutionSampler(population_size=3, sample_size=3, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    seeds = [{f"p{i}": "d" for i in range(4)}, {f"p{i}": "a" for i in range(4)},
             {f"p{i}": "b" for i in range(4)}]
    for params in seeds:
        study.enqueue_trial(params)
    study.optimize(categorical, n_trials=4)
    assert [t.params for t in study.trials[:3]] == seeds
    # population full of the seeds and a tournament over all three: the parent is the best seed
    assert n_differences(study.trials[3].params, seeds[0]) == 1


def test_evolution_refuses_multi_objective_studies():
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=RegularizedEvolutionSampler(population_size=2,
                                                                    sample_size=1))
    with pytest.raises(ValueError, match="multi-objective"):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 0.0), n_trials=1)


def test_evolution_state_lives_in_the_storage(tmp_path):
    """A new process (here: a new sampler on the reloaded study) continues the evolution."""
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    first = optuna.create_study(study_name="s", storage=storage, direction="maximize",
                                sampler=RegularizedEvolutionSampler(population_size=5,
                                                                    sample_size=2, seed=0))
    first.optimize(mixed, n_trials=5)
    again = optuna.load_study(study_name="s", storage=storage,
                              sampler=RegularizedEvolutionSampler(population_size=5,
                                                                  sample_size=2, seed=1))
    again.optimize(mixed, n_trials=1)
    child = again.trials[-1].params
    assert any(n_differences(t.params, child) == 1 for t in again.trials[:5])


def _worker(path: str, seed: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = JournalStorage(JournalFileBackend(path))
    sampler = RegularizedEvolutionSampler(population_size=4, sample_size=2, seed=seed)
    optuna.load_study(study_name="mp", storage=storage, sampler=sampler).optimize(
        categorical, n_trials=15)


def test_two_processes_share_one_evolution(tmp_path):
    path = str(tmp_path / "journal.log")
    storage = JournalStorage(JournalFileBackend(path))
    optuna.create_study(study_name="mp", storage=storage, direction="maximize")
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_worker, args=(path, seed)) for seed in (0, 1)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
        assert w.exitcode == 0
    trials = optuna.load_study(study_name="mp", storage=storage).trials
    assert len(trials) == 30
    assert sorted(t.number for t in trials) == list(range(30))
    assert all(t.state == TrialState.COMPLETE for t in trials)


# --- local search ---------------------------------------------------------------------------


def test_local_search_proposes_untried_neighbours_of_the_best():
    sampler = LocalSearchSampler(n_startup_trials=3, n_parents=1, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(categorical, n_trials=30)
    trials = study.trials
    seen = [tuple(t.params.values()) for t in trials]
    assert len(set(seen)) == len(seen)  # never the same parameters twice
    for i in range(3, len(trials)):
        # the parent is the best earlier trial that still had an untried neighbour
        ranked = sorted(trials[:i], key=lambda t: (-t.value, t.number))
        parent = next(t for t in ranked if sum(n_differences(t.params, dict(zip(t.params, p)))
                                               == 1 for p in seen[:i]) < 4 * 3)
        assert n_differences(parent.params, trials[i].params) == 1, i
    assert study.best_value == 12.0


def test_local_search_handles_int_and_float_parameters():
    sampler = LocalSearchSampler(n_startup_trials=4, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(mixed, n_trials=80)
    assert study.best_params["n"] == 10 and study.best_params["c"] == "d"
    with pytest.raises(ConfigError, match="float_neighbours"):
        LocalSearchSampler(float_neighbours=0)
    with pytest.raises(ConfigError, match="n_parents"):
        LocalSearchSampler(n_parents=0)


def test_local_search_with_a_key_skips_equivalent_neighbours():
    def key(params):  # p0 and p1 commute: only their multiset matters
        return (tuple(sorted((params["p0"], params["p1"]))), params["p2"], params["p3"])

    sampler = LocalSearchSampler(n_startup_trials=2, key=key, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(categorical, n_trials=40)
    keys = [key(t.params) for t in study.trials]
    assert len(set(keys)) == len(keys)


def test_local_search_pools_the_neighbours_of_several_parents():
    sampler = LocalSearchSampler(n_startup_trials=5, n_parents=3, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(categorical, n_trials=25)
    trials = study.trials
    for i in range(5, len(trials)):
        top3 = sorted(trials[:i], key=lambda t: (-t.value, t.number))[:3]
        assert any(n_differences(t.params, trials[i].params) == 1 for t in top3), i


def test_guided_local_search_follows_the_surrogate():
    sampler = LocalSearchSampler(n_startup_trials=8, guided=True, n_parents=1, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(categorical, n_trials=8)
    before = study.best_value
    study.optimize(categorical, n_trials=1)
    # the surrogate of this additive problem picks an improving move from the best trial
    assert study.trials[-1].value > before


def test_ridge_surrogate_ranks_a_linear_function():
    space = {"c": CategoricalDistribution(CHOICES), "x": FloatDistribution(0.0, 1.0)}
    rng = np.random.RandomState(0)
    points = [{"c": CHOICES[rng.randint(4)], "x": float(rng.uniform())} for _ in range(30)]
    values = [CHOICES.index(p["c"]) + 2 * p["x"] for p in points]
    model = RidgeSurrogate(space, alpha=1e-3).fit(points, values)
    predicted = model.predict([{"c": "a", "x": 0.0}, {"c": "d", "x": 1.0}])
    assert predicted[0] < 0.5 < 4.5 < predicted[1]
    with pytest.raises(ConfigError, match="before fit"):
        RidgeSurrogate(space).predict(points)


# --- dedup wrapper --------------------------------------------------------------------------


def parity_key(params):
    return params["n"] % 4


@pytest.mark.parametrize("base", [
    lambda: optuna.samplers.RandomSampler(seed=0),
    lambda: optuna.samplers.TPESampler(seed=0, n_startup_trials=2),
    lambda: RegularizedEvolutionSampler(population_size=2, sample_size=1, seed=0),
])
def test_dedup_wrapper_never_repeats_a_key_while_new_ones_exist(base):
    sampler = DeduplicatingSampler(base(), parity_key)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: float(t.suggest_int("n", 0, 99)), n_trials=4)
    assert sorted(parity_key(t.params) for t in study.trials) == [0, 1, 2, 3]


def test_dedup_wrapper_accepts_a_duplicate_when_no_new_key_is_left():
    sampler = DeduplicatingSampler(optuna.samplers.RandomSampler(seed=0), parity_key,
                                   max_retries=3)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: float(t.suggest_int("n", 0, 99)), n_trials=6)
    assert len(study.trials) == 6
    with pytest.raises(ConfigError, match="max_retries"):
        DeduplicatingSampler(optuna.samplers.RandomSampler(), parity_key, max_retries=-1)


# --- feasibility wrapper --------------------------------------------------------------------


def round_tens(params):
    return params["n"] % 10 == 0


@pytest.mark.parametrize("base", [
    lambda: optuna.samplers.RandomSampler(seed=0),
    lambda: optuna.samplers.TPESampler(seed=0, n_startup_trials=3),
    lambda: RegularizedEvolutionSampler(population_size=3, sample_size=2, seed=0),
])
def test_feasible_wrapper_proposes_only_feasible_candidates_from_the_first_trial(base):
    sampler = FeasibleSampler(base(), round_tens, space={"n": IntDistribution(0, 99)})
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(lambda t: float(t.suggest_int("n", 0, 99)), n_trials=8)
    assert all(t.params["n"] % 10 == 0 for t in study.trials)
    assert sum(sampler.rejected.values()) > 0 and set(sampler.rejected) == set(range(8))


def test_feasible_wrapper_keeps_enqueued_trials_and_gives_up_after_max_tries():
    calls = []

    def never(params):
        calls.append(dict(params))
        return False

    sampler = FeasibleSampler(optuna.samplers.RandomSampler(seed=0), never,
                              space={"n": IntDistribution(0, 99)}, max_tries=5)
    study = optuna.create_study(sampler=sampler)
    study.enqueue_trial({"n": 7})
    study.optimize(lambda t: float(t.suggest_int("n", 0, 99)), n_trials=2)
    assert study.trials[0].params["n"] == 7 and sampler.rejected.get(0, 0) == 0  # a seed: unchecked
    assert sampler.rejected[1] == 4 and len(calls) == 5  # the fifth proposal goes ahead
    with pytest.raises(ConfigError, match="max_tries"):
        FeasibleSampler(optuna.samplers.RandomSampler(), never, max_tries=0)
