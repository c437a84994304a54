"""The genotype language: parse, validate, dump, hash and expand to a primitive DAG.

Does not import torch.
"""

from nas.genotype._expand import INPUT, LIMITS, Limits, expand
from nas.genotype._hash import graph_hash
from nas.genotype._expr import MATH_FUNCTIONS, parse_expression
from nas.genotype._libraries import library_dirs, register_library
from nas.genotype._model import BlockDef, Genotype, Statement, load_genotype, zoo_dir

__all__ = [
    "INPUT",
    "LIMITS",
    "MATH_FUNCTIONS",
    "BlockDef",
    "Genotype",
    "Limits",
    "Statement",
    "expand",
    "graph_hash",
    "library_dirs",
    "load_genotype",
    "parse_expression",
    "register_library",
    "zoo_dir",
]
