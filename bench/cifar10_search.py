"""A search on real images, then retraining: does a searched CIFAR-10 network beat its seed?

Runs a shipped search space (``search_spaces/resnet.yaml``; ``--space mobile|zoo``) on the
shared CIFAR-10 copy (``../shared/data/cifar10/cifar10-jpeg.tar.gz``, read by the ``folder``
source), then ``nas retrain`` of the top 3 searched architectures and the space's first seed
(ResNet-20 for ``resnet``) with several training seeds, and prints one table: proxy
validation accuracy (the search's figure, on a validation split carved from the training
images), retrained test accuracy (mean, std over training seeds, on the test split the search
never saw), params, MACs, and Kendall's tau between proxy and retrained rank.

The shipped configs are used as they are except for what a CPU budget forces (stated in the
output): the dataset (the shared archive, a training subset for the proxy), the proxy
schedule, the width multiplier, the trial and time budget, the seeds (only the first: the
others are far beyond ResNet-20's MACs), and, for ``resnet`` and ``zoo`` (whose first seed is
ResNet-20), a MACs ceiling at ResNet-20's MACs and accuracy as the one objective (the target
compares at no more MACs than ResNet-20). ``--proxy-epochs``, ``--rungs`` (successive
halving), ``--timeout``, ``--seeds``, ``--proxy-subset``, ``--val-subset``, ``--width`` and
``--retrain-epochs`` (retrained in ``RUN/retrain_eN``) override the budget: e.g. a longer
proxy on more images, whose cost the halving keeps to the candidates still in the running.
``--grow`` also retrains each searched architecture widened to ResNet-20's MACs
(``nas retrain --grow``): the search on a short proxy favours small networks.

    python bench/cifar10_search.py                      # about 65 min on 2 cores
    python bench/cifar10_search.py --quick              # smoke run, under 10 min
    python bench/cifar10_search.py --space mobile --quick
    python bench/cifar10_search.py --device cuda        # a GPU: full width, longer schedules
    python bench/cifar10_search.py --space zoo --proxy-epochs 6 --rungs 1,2 --timeout 2400 --seeds 2

Re-running with the same ``--runs`` continues a killed run (search ``--resume``, retraining
skips finished models); ``--retrain-only`` retrains from a finished search in ``--runs`` with
this script's budget (e.g. after changing it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10-jpeg.tar.gz"

# Budgets: proxy training and validation images, proxy epochs and width, trials (quick runs:
# a count, so that a busy machine still completes them; full runs: no cap, the search's
# seconds are the budget, as constraint checks take milliseconds), retrain epochs, width and
# training images (None: all 50,000), training seeds; batch: the batch size (proxy and
# retraining) where the shipped 128 gives too few steps (see FEW_STEPS).
BUDGETS = {
    # The proxy on 20,000 images (4/5 of the retraining's), at full width: on 5,000 it misranked
    # (README, "CIFAR-10: a search on real images"); halving after epoch 1 pays for the size.
    ("cpu", False): dict(subset=20000, val_subset=5000, epochs=3, rungs=[1], width=1.0, timeout=2400,
                         retrain_epochs=5, retrain_width=1.0, retrain_subset=25000, seeds=3),
    ("cpu", True): dict(subset=1000, val_subset=500, epochs=1, width=0.25, trials=10, timeout=420,
                        retrain_epochs=1, retrain_width=0.25, retrain_subset=2000, seeds=2,
                        batch=32),
    ("cuda", False): dict(subset=20000, val_subset=5000, epochs=10, width=1.0, timeout=7200,
                          retrain_epochs=60, retrain_width=1.0, retrain_subset=None, seeds=3),
    ("cuda", True): dict(subset=5000, val_subset=1000, epochs=2, width=1.0, trials=12, timeout=300,
                         retrain_epochs=3, retrain_width=1.0, retrain_subset=None, seeds=2),
}


# The shipped resnet space (depth 1-18 per stage) is built around ResNet-56/110: under
# ResNet-20's MACs only 0.7% of its points are feasible, and its depth range is mostly beyond
# the ceiling. The bench keeps the shipped widths (16-128: wide, shallow stages are in) and
# caps the depth at 6 per stage; ~5% of its points are under the ceiling. Infeasible proposals
# are resampled in milliseconds by the search (FeasibleSampler), never trained or counted.
RESNET_AT_RESNET20_MACS = {
    "depth": {"param": "depths", "per_stage": True, "int": [1, 6]},
}

# FEW_STEPS: at the quick CPU budget with batches of 128 a network takes 8 proxy steps (16
# retraining). A mobile net's ~50 batch norms in series then still hold ~40% of their initial
# running statistics (momentum 0.1 per step); in eval mode each divides by a too-large variance,
# the signal shrinks layer after layer and the logits are the classifier's bias: one class for
# every image, exactly 10.00% (measured: logit std over a batch 7e-6, all 256 images class 5).
# Zoo nets (up to 6 units a stage) showed the same 10.00%. Batches of 32 give 4x the steps on
# the same images at about the same CPU time.


def bench_config(space: str, data: Path, budget: dict, device: str, out: Path) -> Path:
    """The shipped run config with the budget's overrides, written to ``out``."""
    import yaml

    from nas._yaml import load_yaml_file
    from nas.errors import ConfigError
    shipped = ROOT / "search_spaces" / f"{space}.yaml"
    config = load_yaml_file(shipped, error=ConfigError)
    if space != "resnet" and device == "cpu":
        # mobile and zoo keep their shipped proxy width on a CPU (x0.25 and x1): the zoo's
        # Inception unit needs 16 channels in its narrowest stage (a c // 16 branch).
        width = config.get("width_multiplier", 1.0)
        budget = dict(budget, width=width, retrain_width=width)
    config["space"] = dict(config["space"])
    config["space"]["genotype"] = str((shipped.parent / config["space"]["genotype"]).resolve())
    first = next(iter(config["space"]["seeds"]))
    config["space"]["seeds"] = {first: config["space"]["seeds"][first]}
    if space in ("resnet", "zoo"):  # first seed ResNet-20; the target: better at no more MACs
        if space == "resnet":
            config["space"]["choices"] = dict(config["space"]["choices"], **RESNET_AT_RESNET20_MACS)
        config["space"]["constraints"] = {**(config["space"].get("constraints") or {}),
                                          "macs": {"max": _proxy_macs(config["space"], shipped, first, budget)}}
        config.update(objectives=["val_accuracy"], sampler="tpe")
    trials = budget.get("trials")
    config.update(
        name=f"cifar10_{space}",
        dataset={"name": "folder", "root": str(data), "subset": budget["subset"],
                 "val_subset": budget["val_subset"]},
        train={**config.get("train", {}), "epochs": budget["epochs"], "device": device},
        width_multiplier=budget["width"], trials=trials, timeout=budget["timeout"],
        # Successive halving after the first epoch only: a rung at the last epoch would mark
        # fully trained trials as pruned. A one-epoch proxy has nothing to halve.
        pruner={"name": "halving", "rungs": budget.get("rungs", [1]), "reduction": 3} if budget["epochs"] > 1 else "none",
        workers=1 if device == "cuda" else 2, threads=1, seed=0,
        retrain={"top": 3, "seeds": budget["seeds"], "epochs": budget["retrain_epochs"],
                 "width_multiplier": budget["retrain_width"], "subset": budget["retrain_subset"]},
    )
    if budget.get("batch"):  # FEW_STEPS
        config["train"]["batch_size"] = budget["batch"]
    path = out / f"cifar10_{space}.yaml"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _proxy_macs(space: dict, shipped: Path, seed: str, budget: dict) -> int:
    """MACs of seed ``seed`` as proxy-trained (CIFAR-10 input and classes, proxy width)."""
    import nas
    from nas.search._proxy import fit_to_data
    from nas.search._space import parse_space

    parsed = parse_space(space, file=str(shipped), base=shipped.parent)
    genotype = parsed.make_genotype(parsed.decode(parsed.seeds[seed]))
    return int(nas.analyze(fit_to_data(genotype, (3, 32, 32), 10, budget["width"])).macs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", choices=("resnet", "mobile", "zoo"), default="resnet")
    parser.add_argument("--quick", action="store_true", help="smoke run, under 10 minutes on 2 CPU cores")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--data", type=Path, default=DATA, help=f"the CIFAR-10 archive (default {DATA})")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench", help="folder of run folders")
    parser.add_argument("--retrain-only", action="store_true",
                        help="reuse the finished search in --runs: retrain with this budget and print the table")
    parser.add_argument("--proxy-epochs", type=int, help="proxy epochs (default: the budget's)")
    parser.add_argument("--rungs", type=lambda text: [int(r) for r in text.split(",")],
                        help="successive-halving rungs, epochs, e.g. 1,2 (default 1; each below --proxy-epochs)")
    parser.add_argument("--timeout", type=int, help="search seconds (default: the budget's)")
    parser.add_argument("--seeds", type=int, help="retraining seeds (default: the budget's)")
    parser.add_argument("--proxy-subset", type=int, help="proxy training images (default: the budget's)")
    parser.add_argument("--val-subset", type=int, help="validation images carved from training (default: the budget's)")
    parser.add_argument("--retrain-epochs", type=int, help="retraining epochs (default: the budget's)")
    parser.add_argument("--grow", action="store_true",
                        help="also retrain each searched architecture widened to ResNet-20's MACs (nas retrain --grow)")
    parser.add_argument("--width", type=float,
                        help="width multiplier of the proxy and the retraining (resnet space; default: the budget's)")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"{args.data}: not found (the shared CIFAR-10 copy); pass --data", file=sys.stderr)
        return 2

    import torch

    from nas.data import load_dataset
    from nas.retrain import retrain
    from nas.retrain._table import markdown_table, tau_of
    from nas.search import read_trials, run_search

    budget = dict(BUDGETS[(args.device, args.quick)])
    for key, value in (("epochs", args.proxy_epochs), ("rungs", args.rungs), ("timeout", args.timeout),
                       ("seeds", args.seeds), ("subset", args.proxy_subset), ("val_subset", args.val_subset),
                       ("width", args.width), ("retrain_width", args.width),
                       ("retrain_epochs", args.retrain_epochs)):
        if value is not None:
            budget[key] = value
    if any(not 0 < rung < budget["epochs"] for rung in budget.get("rungs", [])):
        print(f"--rungs {budget['rungs']}: each rung must lie between 0 and the {budget['epochs']} proxy epochs",
              file=sys.stderr)
        return 2
    started = time.time()
    t0 = time.perf_counter()
    load_dataset("folder", root=str(args.data))  # decode once (or hit the cache) before timing
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    load_dataset("folder", root=str(args.data))
    cached_s = time.perf_counter() - t0
    name = f"cifar10_{args.space}" + ("_quick" if args.quick else "")
    config = bench_config(args.space, args.data.resolve(), budget, args.device, args.runs / "configs")
    run_dir = args.runs / name
    resume = (run_dir / "config.yaml").is_file()
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    print(f"# CIFAR-10 {args.space} search{' (quick)' if args.quick else ''}: device {args.device}, "
          f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at start, bf16 "
          f"{'(AMX) on' if amx or args.device == 'cuda' else 'off (no AMX: float32)'}")
    print(f"dataset load: {load_s:.1f} s first call in this process, {cached_s:.2f} s from the cache")
    import yaml

    frozen = yaml.safe_load(config.read_text())
    again = frozen["retrain"]
    print(f"budget: search {frozen['trials'] or 'no cap on'} trials, at most {frozen['timeout']} s, proxy "
          f"{budget['subset']:,} training / {budget['val_subset']:,} validation images, "
          f"{budget['epochs']} epochs (halving at {frozen['pruner'] if frozen['pruner'] == 'none' else frozen['pruner']['rungs']}), "
          f"batch {frozen['train'].get('batch_size', 128)}, "
          f"width x{frozen['width_multiplier']}; retrain top 3 + seed, "
          f"{again['seeds']} seeds, {again['epochs']} epochs, width x{again['width_multiplier']}, "
          f"{'all 50,000' if again['subset'] is None else format(again['subset'], ',')} "
          f"training images, test on 10,000", flush=True)
    if args.retrain_only and not resume:
        print(f"{run_dir}: no search to retrain from (run without --retrain-only first)", file=sys.stderr)
        return 2
    elapsed = None
    if not args.retrain_only:
        elapsed = run_search(config, resume=resume, name=name, runs_dir=args.runs, progress=False).elapsed
    records = read_trials(run_dir)
    counted = [r for r in records if r.get("counted", True)]
    states = {s: sum(r["state"] == s for r in counted) for s in ("complete", "pruned", "fail")}
    statuses = {}
    for r in counted:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    rejected = sum(r.get("rejected") or 0 for r in records)
    took = "" if elapsed is None else f" in {elapsed:.0f} s"
    print(f"search: {len(counted)} trials {states} {statuses}{took}; "
          f"{rejected} proposals over a static constraint resampled (not trials)", flush=True)

    result = retrain(run_dir, epochs=again["epochs"], seeds=again["seeds"], subset=again["subset"],
                     width_multiplier=again["width_multiplier"], grow=args.grow or None,
                     device=args.device, threads=1 if args.device == "cpu" else None,
                     workers=2 if args.device == "cpu" else 1,
                     # another schedule than the budget's goes to its own folder (a retrain
                     # folder refuses a second schedule)
                     out=None if args.retrain_epochs is None else run_dir / f"retrain_e{args.retrain_epochs}",
                     log=lambda line: print("  " + line, flush=True))
    table = result.table
    print()
    print(markdown_table(table))
    tau = "n/a" if result.tau is None else f"{result.tau:.3f}"
    print(f"\nKendall's tau (proxy val accuracy rank vs retrained test accuracy rank): {tau} "
          f"over {tau_of(table)[1]} architectures (grown ones have no proxy figure)")
    print(verdict(table))
    from nas.results import analyze

    print(f"report: {analyze(run_dir).out / 'report.md'} (with the retraining section)")
    print(f"total wall time {time.time() - started:.0f} s; load average {os.getloadavg()[0]:.1f} at the end; "
          f"run folder {run_dir}")
    return 0


def verdict(table) -> str:
    """The target: a searched architecture beats the seed on mean test accuracy, at no more
    MACs, by more than the larger of the two standard deviations. Each line also gives the
    one-sided p-value of Welch's t-test on the per-seed accuracies (is it more accurate?)."""
    from scipy.stats import ttest_ind

    seed = table[table["selected_by"] == "seed"]
    if seed.empty or seed.iloc[0]["test_mean"] is None:
        return "target: no retrained seed to compare with"
    ref = seed.iloc[0]
    lines = []
    met = False
    for _, row in table[table["selected_by"] != "seed"].iterrows():
        if row["test_mean"] is None or row["test_mean"] != row["test_mean"]:
            continue
        margin = row["test_mean"] - ref["test_mean"]
        noise = max(s for s in (row["test_std"], ref["test_std"], 0.0) if s == s and s is not None)
        ok = row["macs"] <= ref["macs"] and margin > noise
        met |= ok
        welch = ""
        if len(row["test_accuracies"]) > 1 and len(ref["test_accuracies"]) > 1:
            p = ttest_ind(row["test_accuracies"], ref["test_accuracies"], equal_var=False,
                          alternative="greater").pvalue
            welch = f", Welch p {p:.3f}"
        lines.append(f"  {row['label']}: {100 * margin:+.2f} points vs {ref['label']} (noise "
                     f"{100 * noise:.2f}{welch}), MACs {row['macs'] / ref['macs']:.2f}x -> "
                     f"{'beats it' if ok else 'does not beat it'}")
    head = f"target (beat {ref['label']} at <= its MACs by > max std): {'MET' if met else 'NOT MET'}"
    return "\n".join([head, *lines])


if __name__ == "__main__":
    sys.exit(main())
