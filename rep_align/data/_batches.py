"""Shuffled minibatches of one epoch, or of many, from explicit PRNG keys.

The reference training loop draws a fresh permutation of the dataset every epoch and cuts
it into consecutive batches, keeping the last, smaller batch (PyTorch's ``DataLoader``
with ``shuffle=True`` and its default ``drop_last=False``). The paper's batch size 64
divides neither the 1,800 context-blob rows (28 batches of 64 and one of 8) nor the 5,000
MNIST images (78 of 64 and one of 8), so that last batch matters. Here the same layout is
built from JAX keys: ``epoch_permutations`` draws the permutations (one array, scan
friendly), ``split_batches`` cuts one into a stack of full batches and the remainder
(static shapes, vmap and jit friendly), and ``minibatches`` gives one epoch's batches
as a tuple.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PRNGKeyArray

from rep_align import checks

__all__ = ["epoch_permutations", "split_batches", "minibatches"]


def epoch_permutations(key: PRNGKeyArray, epochs: int, n: int) -> Int[Array, "epochs n"]:
    """One random permutation of ``range(n)`` per epoch.

    Row ``e`` is ``jax.random.permutation(jax.random.split(key, epochs)[e], n)``, so
    ``minibatches(jax.random.split(key, epochs)[e], n, b)`` gives epoch ``e``'s batches.

    Arguments:
        key: a JAX PRNG key (``jax.random.key`` or ``jax.random.PRNGKey``).
        epochs: number of epochs (≥ 1).
        n: dataset size (≥ 1).

    Returns:
        Integer array of shape (epochs, n); every row holds each of 0 … n−1 once.

    Raises:
        ValueError: for an epochs or n that is not an integer ≥ 1.
    """
    epochs = checks.integer("epochs", epochs, minimum=1)
    n = checks.integer("n", n, minimum=1)
    keys = jax.random.split(key, epochs)
    return jax.vmap(lambda k: jax.random.permutation(k, n))(keys)


def split_batches(
    perm: Int[Array, " n"], batch_size: int, *, drop_last: bool = False
) -> tuple[Int[Array, "full batch_size"], Int[Array, " rest"]]:
    """Cut an index order into consecutive batches: the full ones and the remainder.

    Batch ``k`` is ``perm[k·batch_size : (k+1)·batch_size]``. The last ``n mod batch_size``
    indices form the remainder, which is a batch of its own (trained on after the full
    ones) unless ``drop_last``, when it is returned empty. Shapes depend only on ``n``,
    ``batch_size`` and ``drop_last``, so ``perm`` may be traced; vmap over epochs with
    ``jax.vmap(lambda p: split_batches(p, b))(epoch_permutations(key, E, n))``.

    Arguments:
        perm: index order of shape (n,), e.g. one row of ``epoch_permutations``.
        batch_size: batch size (≥ 1).
        drop_last: drop the incomplete last batch (PyTorch's flag); default False.

    Returns:
        ``(full, rest)``: full of shape (n // batch_size, batch_size) and rest of shape
        (n mod batch_size,), or (0,) if ``drop_last``.

    Raises:
        ValueError: for a batch_size that is not an integer ≥ 1, a drop_last that is not
            a bool, or a perm that is not one-dimensional.
    """
    batch_size = checks.integer("batch_size", batch_size, minimum=1)
    drop_last = checks.boolean("drop_last", drop_last)
    if jnp.ndim(perm) != 1:
        raise ValueError(f"perm must be one-dimensional, got shape {jnp.shape(perm)}")
    n = jnp.shape(perm)[0]
    full = n // batch_size
    head = perm[: full * batch_size].reshape(full, batch_size)
    rest = perm[full * batch_size :] if not drop_last else perm[:0]
    return head, rest


def minibatches(
    key: PRNGKeyArray, n: int, batch_size: int, *, drop_last: bool = False
) -> tuple[Int[Array, " batch"], ...]:
    """The index batches of one epoch, in training order.

    The permutation ``jax.random.permutation(key, n)`` cut into consecutive batches of
    ``batch_size``; the last batch holds the ``n mod batch_size`` indices left over and is
    kept unless ``drop_last`` (PyTorch's ``DataLoader`` keeps it by default). Without
    ``drop_last`` every index appears exactly once.

    Arguments:
        key: a JAX PRNG key.
        n: dataset size (≥ 1).
        batch_size: batch size (≥ 1); a batch_size above n gives one batch of n.
        drop_last: drop the incomplete last batch; default False.

    Returns:
        Tuple of integer arrays: ``n // batch_size`` of shape (batch_size,), then, unless
        ``drop_last`` or batch_size divides n, one of shape (n mod batch_size,).

    Raises:
        ValueError: for an n or batch_size that is not an integer ≥ 1, or a drop_last
            that is not a bool.
    """
    n = checks.integer("n", n, minimum=1)
    full, rest = split_batches(jax.random.permutation(key, n), batch_size, drop_last=drop_last)
    batches = tuple(full)
    return batches + (rest,) if rest.shape[0] else batches
