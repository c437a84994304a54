"""``nas train``: train one genotype fully, with checkpoints, a metrics CSV and a progress bar.

Argument parsing and printing only: the dataset comes from :func:`nas.data.load_dataset`,
the model from :func:`nas.build_model`, the run from :func:`nas.train.train_to_folder`.
Torch is imported only when the command runs. Exit status: 0 when training completed or
reached its time limit, 1 when it ended with a NaN loss or out of memory, 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nas.cli import seed_option
from nas.errors import ConfigError

_PARAM_HELP = "replace a genotype parameter default, e.g. --set width=32"
# Options passed straight to nas.train.TrainConfig (argparse dest = field name).
_CONFIG_KEYS = (
    "epochs", "batch_size", "optimizer", "lr", "weight_decay", "label_smoothing", "schedule",
    "grad_clip", "time_limit", "augment", "compile", "device", "threads", "seed",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one genotype fully (checkpoints, metrics CSV, progress bar)",
        description="Train one genotype on one dataset; outputs go to --out.",
    )
    parser.add_argument("genotype", help="genotype YAML file (or a zoo name)")
    parser.add_argument("--set", dest="params", action="append", default=[], metavar="KEY=VALUE",
                        help=_PARAM_HELP)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="digits",
                      help="digits (default), mnist, fashion_mnist, cifar10, cifar100, idx, npz, "
                      "folder or synthetic")
    data.add_argument("--root", help="folder of the dataset files: where mnist, fashion_mnist, "
                      "cifar10 and cifar100 look for (or download) theirs, the image folder for "
                      "folder, and the folder relative file names are read from for idx "
                      "(images=, labels=, ...) and npz (path=); digits and synthetic read no files")
    data.add_argument("--data-option", dest="data_options", action="append", default=[],
                      metavar="KEY=VALUE", help="another dataset option, e.g. --data-option "
                      "images=train-images-idx3-ubyte.gz")
    data.add_argument("--resolution", type=int,
                      help="resize images to this size (default: the genotype's input size)")
    data.add_argument("--subset", type=int, help="train on this many images (stratified)")
    data.add_argument("--val-split", choices=("holdout", "test"), default="holdout",
                      help="validate on a held-out 20%% of the training set (default) or on "
                      "the official test split")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    train.add_argument("--lr", type=float, default=0.1)
    train.add_argument("--weight-decay", type=float, default=5e-4)
    train.add_argument("--label-smoothing", type=float, default=0.0)
    train.add_argument("--schedule", choices=("onecycle", "cosine", "constant"), default="onecycle")
    train.add_argument("--grad-clip", type=float)
    train.add_argument("--time-limit", type=float, metavar="SECONDS")
    train.add_argument("--no-augment", dest="augment", action="store_false",
                       help="no random crop or flip")
    train.add_argument("--compile", action="store_true", help="train through torch.compile")
    train.add_argument("--amp", choices=("auto", "on", "off"), default="auto",
                       help="bf16 autocast for training steps (validation stays float32): auto "
                            "(default) is on for CUDA and CPUs with AMX, off elsewhere")
    train.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    train.add_argument("--threads", type=int,
                       help="CPU threads (default: torch's); 1 is fastest on a busy machine")
    train.add_argument("--seed", type=seed_option, default=0, metavar="N")
    parser.add_argument("--out", required=True, type=_folder, help="output folder")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_train)


def _folder(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path is not a folder")
    return text


def _dataset_options(args: argparse.Namespace, resolution: int) -> dict[str, Any]:
    from nas.cli._genotype import parse_assignments

    options = parse_assignments(args.data_options, "--data-option")
    for key in ("root", "resolution", "subset", "val_split"):  # options with a flag of their own
        if key in options:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"{key} has its own flag: use {flag}", path="--data-option")
    if args.root is not None:
        options["root"] = args.root
    options.update(resolution=resolution, subset=args.subset, val_split=args.val_split)
    return options


def run_train(args: argparse.Namespace) -> int:
    import nas
    from nas.cli._genotype import parse_assignments
    from nas.data import load_dataset
    from nas.search._proxy import check_classifier
    from nas.train import TrainConfig, train_to_folder
    from nas.train._config import resolve_device
    from nas.train._memory import check_training_memory

    config = TrainConfig(**{key: getattr(args, key) for key in _CONFIG_KEYS},
                         amp={"auto": None, "on": True, "off": False}[args.amp])
    resolve_device(args.device, path="--device")  # before the data is read and --out written
    genotype = nas.load_genotype(args.genotype)
    resolution = args.resolution if args.resolution is not None else genotype.input_shape[1]
    data = load_dataset(args.dataset, **_dataset_options(args, resolution))
    params = parse_assignments(args.params)
    if "classes" in genotype.params and "classes" not in params:
        params["classes"] = data.num_classes
    if params:
        genotype = genotype.with_params(**params)
    genotype = check_classifier(genotype.with_input(data.input_shape), data.num_classes)
    check_training_memory(genotype, config, data)
    model = nas.build_model(genotype)
    result = train_to_folder(model, data, config, args.out, resume=args.resume,
                             progress=not args.quiet, files={"genotype.yaml": genotype.dump()})
    best = "n/a" if result.best_val_accuracy is None else f"{result.best_val_accuracy:.4f}"
    failed = result.status in ("nan_loss", "oom")
    print(f"{result.status}: {result.reason}; best val accuracy {best} after "
          f"{result.epochs} epochs, {result.wall_time:.1f} s; outputs in {args.out}",
          file=sys.stderr if failed else sys.stdout)
    return 1 if failed else 0
