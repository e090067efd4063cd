"""Representation-similarity metrics: linear CKA, RSA, orthogonal Procrustes, RDM distance,
and the Pearson correlation they and the experiments compare with.

Each function compares the representations of one set of n points (rows) and handles one
example; batch with ``jax.vmap``. Everything is pure JAX and works under ``jit``, ``vmap``
and ``grad`` (Spearman RSA has a zero gradient wherever it has one, see ``rsa``). Results
take the floating dtype of the inputs (integer inputs become JAX's default float). Matrix
products run at full precision (GPUs and TPUs would otherwise use TF32/bf16 passes).

Shapes are checked always (they are static); values are checked only when concrete
(``rep_align.checks``): finite, and not constant where the metric would divide by zero.
Traced degenerate inputs give NaN instead of raising, so a vmapped sweep survives them.
``pearson`` and ``upper_pearson`` never check values: they give NaN for degenerate input,
concrete or traced, and are what analyses over seeds compare distance matrices with.

The code lives in private modules by idea: shared checks (``_common``), CKA (``_cka``),
distance matrices and their comparisons (``_rsa``) and Procrustes (``_procrustes``).

References:
    Kornblith, Norouzi, Lee & Hinton (2019), "Similarity of neural network
    representations revisited", ICML (linear CKA).
    Song, Smola, Gretton, Bedo & Borgwardt (2012), "Feature selection via dependence
    maximization", JMLR 13 (unbiased HSIC); used for debiased CKA by Nguyen, Raghu &
    Kornblith (2021), "Do wide and deep networks learn the same things?", ICLR.
    Kriegeskorte, Mur & Bandettini (2008), "Representational similarity analysis",
    Front. Syst. Neurosci. 2:4 (RDMs and RSA).
    Williams, Kunz, Kornblith & Linderman (2021), "Generalized shape metrics on neural
    representations", NeurIPS (Procrustes shape distance).
"""

from rep_align.metrics._cka import cka as cka
from rep_align.metrics._cka import cka_from_grams as cka_from_grams
from rep_align.metrics._procrustes import procrustes as procrustes
from rep_align.metrics._rsa import pearson as pearson
from rep_align.metrics._rsa import rdm as rdm
from rep_align.metrics._rsa import rdm_distance as rdm_distance
from rep_align.metrics._rsa import rsa as rsa
from rep_align.metrics._rsa import upper_pearson as upper_pearson

__all__ = [
    "cka",
    "cka_from_grams",
    "pearson",
    "procrustes",
    "rdm",
    "rdm_distance",
    "rsa",
    "upper_pearson",
]
