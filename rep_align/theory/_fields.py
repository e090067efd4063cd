"""The theory's vector fields, in (h, y, w) and in regular coordinates (docs/theory.md §2)."""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from rep_align import checks

Variant = Literal["theory", "double_y", "double_h", "flip_w", "no_eta_h_in_y"]

#: Names accepted by ``solve(variant=...)``: the theory and the four ablations of
#: docs/theory.md §4, (4.1) ``double_y``: dy/dt doubled, (4.2) ``double_h``: dh/dt
#: doubled, (4.3) ``flip_w``: sign of the last term of dw/dt flipped, (4.4)
#: ``no_eta_h_in_y``: the eta_h term dropped from dy/dt.
VARIANTS: tuple[str, ...] = ("theory", "double_y", "double_h", "flip_w", "no_eta_h_in_y")


def hyw_rhs(h, y, w, eta_h, eta_y, dx2, dy2, variant):
    """(dh, dy, dw)/dt of equations (2.1)-(2.3), or of an ablation (4.1)-(4.4)."""
    dh = -eta_h * dx2 * w
    if variant == "no_eta_h_in_y":
        dy = -w * eta_y * h
    else:
        dy = -w * (eta_y * h + eta_h * dx2 * y / h)
    last = 0.5 * eta_h * dx2 * w * (y + w) / h
    dw = -0.5 * eta_y * h * (3.0 * w - y + dy2) + (last if variant == "flip_w" else -last)
    if variant == "double_y":
        dy = 2.0 * dy
    elif variant == "double_h":
        dh = 2.0 * dh
    return dh, dy, dw


def regular_rhs(s, p, q, eta_h, eta_y, dx2, dy2):
    """(ds, dp, dq)/dt of equations (2.4)-(2.6)."""
    r = s * q - p
    return -0.5 * eta_h * dx2 * r, -0.5 * eta_y * s * (s * p - dy2), -eta_y * s * r


def vector_field(
    z: Float[ArrayLike, "... 3"],
    *,
    eta_h: Float[ArrayLike, "..."],
    eta_y: Float[ArrayLike, "..."],
    dx2: Float[ArrayLike, "..."],
    dy2: Float[ArrayLike, "..."],
    variant: str = "theory",
) -> Float[Array, "... 3"]:
    """dz/dt of the effective theory in its defining (h, y, w) form (docs/theory.md §2).

    Equations (2.1)-(2.3): dh/dt = −η_h dx2 w,  dy/dt = −w (η_y h + η_h dx2 y/h),
    dw/dt = −½ η_y h (3w − y + dy2) − ½ η_h dx2 w (y + w)/h.

    ``variant`` selects the theory or one of the ablations (4.1)-(4.4) of docs/theory.md
    §4 (see ``VARIANTS``). Singular at h = 0 (the reason ``solve`` integrates the theory in
    regular coordinates).

    Arguments:
        z: state ``(..., 3)`` = (h, y, w).
        eta_h, eta_y: effective learning rates per step, broadcast against ``z[..., 0]``.
        dx2, dy2: squared input and target distances of the pair.
        variant: one of ``VARIANTS``; default ``"theory"``.

    Returns:
        dz/dt per step, shape of ``z`` broadcast with the parameters.

    Raises:
        ValueError: for an unknown ``variant``.
    """
    checks.choice("variant", variant, VARIANTS)
    z = jnp.asarray(z)
    d = hyw_rhs(z[..., 0], z[..., 1], z[..., 2], eta_h, eta_y, dx2, dy2, variant)
    return jnp.stack(jnp.broadcast_arrays(*d), axis=-1)


def to_regular(z: Float[ArrayLike, "... 3"]) -> Float[Array, "... 3"]:
    """Map (h, y, w) to the regular coordinates (s, p, q), equation (2.7) of docs/theory.md.

    s = √h (the positive branch at the start), q = y/h, p = (y − w)/s = Δy*·Δŷ / s.
    Shape ``(..., 3)`` to ``(..., 3)``.
    """
    z = jnp.asarray(z)
    h, y, w = z[..., 0], z[..., 1], z[..., 2]
    s = jnp.sqrt(h)
    return jnp.stack([s, (y - w) / s, y / h], axis=-1)


def from_regular(u: Float[ArrayLike, "... 3"]) -> Float[Array, "... 3"]:
    """Map (s, p, q) back to (h, y, w) (inverse of (2.7)): h = s², y = s²q, w = s²q − sp."""
    u = jnp.asarray(u)
    s, p, q = u[..., 0], u[..., 1], u[..., 2]
    h = s * s
    return jnp.stack([h, h * q, h * q - s * p], axis=-1)


def regular_vector_field(
    u: Float[ArrayLike, "... 3"],
    *,
    eta_h: Float[ArrayLike, "..."],
    eta_y: Float[ArrayLike, "..."],
    dx2: Float[ArrayLike, "..."],
    dy2: Float[ArrayLike, "..."],
) -> Float[Array, "... 3"]:
    """du/dt of the theory in regular coordinates u = (s, p, q) (docs/theory.md §2).

    Equations (2.4)-(2.6): ds/dt = −½ η_h dx2 (s q − p),  dp/dt = −½ η_y s (s p − dy2),
    dq/dt = −η_y s (s q − p). Polynomial, hence smooth through s = 0 where the (h, y, w)
    form is singular. Shape of ``u`` broadcast with the parameters, per step.
    """
    u = jnp.asarray(u)
    d = regular_rhs(u[..., 0], u[..., 1], u[..., 2], eta_h, eta_y, dx2, dy2)
    return jnp.stack(jnp.broadcast_arrays(*d), axis=-1)
