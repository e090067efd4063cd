"""theory.loss_curve without cancellation (docs/theory.md (3.5)): the pair's loss falls with
the error down to far below the rounding floor of the plain form 2w − y + dy2."""

from __future__ import annotations

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rep_align import theory

# Rates of the default preset's first seed at the paper's size (reproduction/two_points_all),
# and a one-output initial state: Δŷ along Δy*, so y0·dy2 = (y0 − w0)² exactly.
RATES = dict(eta_h=6.97065e-4, eta_y=3.79641e-2, dx2=1.0, dy2=0.5)
H0, Y0 = 1e-3, 1e-8
W0 = Y0 - np.sqrt(Y0 * RATES["dy2"])


TS = np.linspace(0.0, 8000.0, 81)  # gradient steps; the loss reaches ~4e-22 at the end


@pytest.fixture(scope="module")
def trajectories():
    """The theory from (H0, Y0, W0) at TS in float64: at tight tolerances (the loss's decay
    resolved to ~1e-22) and at solve's defaults (a normal trajectory, as fits use)."""
    with jax.enable_x64(True):
        tight = theory.solve(np.array([H0, Y0, W0]), TS, **RATES, rtol=1e-12, atol=1e-14)
        normal = theory.solve(np.array([H0, Y0, W0]), TS, **RATES)
        return np.asarray(tight), np.asarray(normal)


def _plain(z, dy2, *, m0=0.0, eta_m=0.0, ts=None, out_dim=1):
    """(3.5) as written, 2w − y + dy2 under the square's place: the form with the floor."""
    z = np.asarray(z)
    y, w = z[..., 1], z[..., 2]
    t = 0.0 if ts is None else ts - ts[0]
    return 0.25 * (2 * m0 * np.exp(-2 * eta_m * t) + w + 0.5 * (dy2 - y)) / out_dim


def _late_decay_rate(h0, y0):
    """Asymptotic decay rate of the one-output loss: with e = Δŷ − Δy* a number,
    de/dt = −½ (η_h dx2 q + η_y h) e exactly (docs/theory.md (2.4)-(2.6) on Δŷ ∥ Δy*), so
    L ∝ e² falls at η_h dx2 q∞ + η_y h∞ with q∞ = dy2/h∞ and h∞ from (3.2)."""
    h_inf = float(theory.final_distance(h0, y0, **RATES))
    return RATES["eta_h"] * RATES["dx2"] * RATES["dy2"] / h_inf + RATES["eta_y"] * h_inf


def _one_output_states(d: Fraction, errors):
    """Exact states (h, y, w) of one-output pairs with Δy* = d and Δŷ = d + e, rounded
    once to float64, and their exact losses e²/8 (m0 = 0)."""
    z, exact = [], []
    for e in errors:
        dyhat = d + e
        z.append([1.0, float(dyhat * dyhat), float(dyhat * e)])
        exact.append(e * e / 8)
    return np.array(z), exact


def test_one_output_loss_is_right_far_below_the_plain_forms_floor(x64):
    # Δy* = 0.75, dy2 = 0.5625 (both exact in binary); errors e = d·10^-k·u, u in [1, 2).
    d = Fraction(3, 4)
    ks = np.arange(1, 14)
    u = np.random.default_rng(0).uniform(1.0, 2.0, size=ks.size)
    errors = [d * Fraction(10.0**-k * uk) for k, uk in zip(ks, u, strict=True)]
    z, exact = _one_output_states(d, errors)
    exact = np.array([float(v) for v in exact])
    got = np.asarray(theory.loss_curve(jnp.zeros(len(ks)), jnp.asarray(z)[:, None, :],
                                       eta_m=0.0, m0=0.0, dy2=float(d * d))[:, 0])  # fmt: skip
    rel = np.abs(got / exact - 1)
    # Rounding y and w to float64 moves Δy*·e = d·e by at most half an ulp of each; the
    # evaluation adds a few roundings relative to the result. So the loss's relative error
    # grows as 1/e (not 1/e² as for the plain form): about 1e-3 at e/d = 1e-13, L ≈ 1e-27.
    along = np.array([float(d * e) for e in errors])
    y, w = z[:, 1], z[:, 2]
    bound = 2 * (np.spacing(y) / 2 + np.spacing(np.abs(w)) / 2) / np.abs(along) + 8 * 2.0**-53
    np.testing.assert_array_less(rel, bound)
    assert exact[-1] < 1e-26 and rel[-1] < 1e-2
    # The plain form keeps y's rounding (about 1e-17 of loss) and loses what lies below.
    plain = _plain(z, float(d * d))
    assert np.median(np.abs(plain / exact - 1)[exact < 1e-20]) > 100


def test_same_state_evaluated_exactly_in_rationals(x64, trajectories):
    # The float64 evaluation of the new form against exact rational arithmetic on the very
    # same float64 inputs, at the late times of a converging theory trajectory.
    ts, z = TS, trajectories[0]
    got = np.asarray(theory.loss_curve(ts, z, eta_m=0.0, m0=0.0, dy2=RATES["dy2"]))
    dy2 = Fraction(RATES["dy2"])
    late = ts >= 4000.0
    for (_, y, w), value in zip(z[late], got[late], strict=True):
        along = Fraction(y) - Fraction(w) - dy2
        exact = float(along * along / dy2 / 8)
        assert value == pytest.approx(exact, rel=1e-14, abs=0.0)


def test_theory_loss_keeps_falling_exponentially_in_float64(x64, trajectories):
    ts, z = TS, trajectories[0]
    loss = np.asarray(theory.loss_curve(ts, z, eta_m=0.0, m0=0.0, dy2=RATES["dy2"]))
    rate = _late_decay_rate(H0, Y0)
    late = ts >= 4000.0
    slope = -np.diff(np.log(loss[late])) / np.diff(ts[late])
    np.testing.assert_allclose(slope, rate, rtol=5e-3)  # from L ≈ 2e-9 ...
    assert loss[-1] < 1e-20  # ... to ≈ 4e-22 at t = 8000
    # The plain form stops at rounding noise of order 1e-17, of either sign.
    plain = _plain(z, RATES["dy2"])
    assert np.abs(plain[-1]) > 1e3 * loss[-1] or plain[-1] <= 0


def test_float32_evaluation_has_no_floor_near_1e_9(trajectories):
    # The two-point experiment evaluates the theory's loss in JAX's default float32, where
    # the plain form's floor is about 1e-9; the network's own float32 loss goes far lower.
    ts, z = TS, trajectories[0]
    with jax.enable_x64(True):
        ref = np.asarray(theory.loss_curve(ts, z, eta_m=0.0, m0=0.0, dy2=RATES["dy2"]))
    z32 = z.astype(np.float32)
    got = np.asarray(theory.loss_curve(ts.astype(np.float32), z32, eta_m=0.0, m0=0.0,
                                       dy2=RATES["dy2"]))  # fmt: skip
    assert got.dtype == np.float32
    # y rounded to float32 moves Δy*·e by up to 3e-8: at most 3 % of the loss at L = 1e-12.
    ok = ref > 1e-12
    np.testing.assert_allclose(got[ok], ref[ok], rtol=0.05)
    assert ref[-1] < 1e-15 and got[-1] < 1e-14
    late = ref < 1e-13
    plain = _plain(z32, np.float32(RATES["dy2"]))
    assert late.sum() >= 20 and np.median(np.abs(plain[late] / ref[late])) > 1e3


def test_equals_the_plain_form_where_nothing_cancels(x64, trajectories):
    # Exact one-output states far from a fit: the two forms agree to rounding.
    d = Fraction(3, 4)
    z, _ = _one_output_states(d, [Fraction(k, 7) - d for k in range(0, 12)])
    ts = np.zeros(len(z))
    got = theory.loss_curve(ts[:, None], z[:, None, :], eta_m=0.01, m0=0.2, dy2=float(d * d))
    np.testing.assert_allclose(got[:, 0], _plain(z, float(d * d), m0=0.2), rtol=1e-13)
    # Along a normal theory trajectory (default tolerances, with the mean-output term) the
    # forms differ only by the solver's drift off y·dy2 = (y − w)², which the plain form
    # keeps: measured 1.8e-10 at most, for a loss that starts at 0.28.
    ts, z = TS, trajectories[1]
    kw = dict(eta_m=0.0118, m0=0.06)
    got = np.asarray(theory.loss_curve(ts, z, dy2=RATES["dy2"], **kw))
    plain = _plain(z, RATES["dy2"], ts=ts, **kw)
    assert np.max(np.abs(got - plain)) < 1e-9
    big = plain > 1e-3
    np.testing.assert_allclose(got[big], plain[big], rtol=1e-6)


def test_a_state_of_several_outputs_keeps_its_part_across_the_target(x64):
    # The README's example state is not one of a one-output pair (y0·dy2 = 0.0912,
    # (y0 − w0)² = 0.0676): with out_dim = 1 left at its default it is evaluated as given,
    # the part of Δŷ across Δy* included, as the plain form does.
    rates = dict(eta_h=5e-4, eta_y=8e-3, dx2=1.2, dy2=0.76)
    ts = np.linspace(0.0, 12_500.0, 26)
    z = np.asarray(theory.solve(np.array([0.04, 0.12, 0.38]), ts, **rates))
    got = np.asarray(theory.loss_curve(ts, z, eta_m=0.0, m0=0.0, dy2=0.76))
    plain = _plain(z, 0.76)
    early = plain > 1e-6
    np.testing.assert_allclose(got[early], plain[early], rtol=1e-10)
    # The same state with Δŷ turned onto Δy* (same y, w = y − √(y·dy2)) is a one-output
    # state: only the part along Δy* is left, and nothing is dropped that is not zero.
    y0 = 0.12
    one = np.array([[1.0, y0, y0 - np.sqrt(y0 * 0.76)]])
    got = theory.loss_curve(np.zeros(1), one, eta_m=0.0, m0=0.0, dy2=0.76)
    assert float(got[0]) == pytest.approx(float(_plain(one, 0.76)[0]), rel=1e-13)


def test_several_outputs_against_the_direct_loss(x64):
    # Pairs with 3 output units, some near a fit along Δy* but not across it: the loss
    # from (y, w) equals 0.5·mse of the outputs themselves.
    rng = np.random.default_rng(3)
    out_dim = 3
    for scale_along, scale_across in [(1.0, 1.0), (1e-9, 1e-3), (1e-12, 1e-2), (0.3, 0.0)]:
        dys = rng.normal(size=out_dim)
        across = rng.normal(size=out_dim)
        across -= (across @ dys) / (dys @ dys) * dys
        dyhat = (1 + scale_along) * dys + scale_across * across
        y, w = dyhat @ dyhat, dyhat @ (dyhat - dys)
        e = dyhat - dys
        direct = 0.5 * np.mean(np.concatenate([0.5 * e, -0.5 * e]) ** 2)  # m0 = 0
        got = theory.loss_curve(jnp.zeros(1), jnp.array([[1.0, y, w]]), eta_m=0.0, m0=0.0,
                                dy2=dys @ dys, out_dim=out_dim)  # fmt: skip
        # across Δy*, (y, w) resolve the error only to about ε·y
        tol = 1e-12 * direct + 1e-16 * y
        assert abs(float(got[0]) - direct) <= tol, (scale_along, scale_across)


def test_zero_target_distance_and_tracing(x64):
    z = jnp.array([[1.0, 0.3, 0.3], [1.0, 0.1, 0.1]])  # Δy* = 0: w = y, ‖e‖² = y
    ts = jnp.array([0.0, 1.0])
    for out_dim in (1, 2):
        got = theory.loss_curve(ts, z, eta_m=0.5, m0=0.1, dy2=0.0, out_dim=out_dim)
        np.testing.assert_allclose(got, _plain(z, 0.0, m0=0.1, eta_m=0.5, ts=ts, out_dim=out_dim))
    # jit, vmap over a batch of dy2, and a gradient through the loss in eta_m
    zz = jnp.stack([z, z * 1.1])
    f = jax.jit(lambda eta, dy2: theory.loss_curve(ts, zz, eta_m=eta, m0=0.1, dy2=dy2))
    dy2 = jnp.array([0.0, 0.4])
    np.testing.assert_allclose(
        f(0.5, dy2), theory.loss_curve(ts, zz, eta_m=0.5, m0=0.1, dy2=dy2), rtol=1e-15
    )
    np.testing.assert_allclose(
        jax.vmap(lambda a, b: theory.loss_curve(ts, a, eta_m=0.5, m0=0.1, dy2=b))(zz, dy2),
        f(0.5, dy2),
        rtol=1e-15,
    )
    g = jax.grad(lambda eta: f(eta, dy2).sum())(0.5)
    fd = (f(0.5 + 1e-6, dy2).sum() - f(0.5 - 1e-6, dy2).sum()) / 2e-6
    assert np.isfinite(g) and g == pytest.approx(float(fd), rel=1e-7)
