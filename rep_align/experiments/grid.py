"""Final-distance grid (THEORY.md section 7, second row).

A 5 × 5 grid of input distance dx ∈ [0.5, 1.5] and target distance dy ∈ [0, 1] (so
dx2 = dx², dy2 = dy²), every grid point and seed trained as one vmapped batch (from the
second chunk of 2,000 epochs on, the batch holds only the runs still going) with the
grid protocol of PRESETS.md: learning rate lr/5, up to 40,000 epochs, each run stopped when
its loss is below 1e-4 (checked every 100 epochs; its h and loss are taken there), a run
still above 1e-3 discarded. The measured converged distance (h at the preset's read-out
layer at the run's stop) is compared with the theory's h∞ (THEORY.md section 3)
evaluated at each run's own initial h0, y0 and the rate ratio η_h/η_y fitted on the
preset's standard two-point task (dx2 = 1, dy2 = 0.5, trajectory protocol; h∞ depends on
the rates only through their ratio).
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from rep_align.data import two_points
from rep_align.experiments._common import (
    Status,
    fit_observed,
    network_for,
    observed,
    preset_config,
    quick_preset,
    record_every_for,
    train_batch,
    write_json,
)
from rep_align.presets import get_preset
from rep_align.training import train

__all__ = ["run_grid", "GRID_DX", "GRID_DY"]

GRID_DX = np.linspace(0.5, 1.5, 5)
GRID_DY = np.linspace(0.0, 1.0, 5)
MAX_EPOCHS = 40_000
CHUNK = 2_000
STOP_LOSS = 1e-4
STOP_EVERY = 100  # epochs between checks of the stopping rule
PAD_RUNS = 4  # batches of still-running runs are padded to a multiple of this
DISCARD_LOSS = 1e-3


def _train_until_converged(preset, seeds, dx2, dy2, lr, *, max_epochs, chunk, status):
    network = network_for(preset)

    def data(a, b):
        return two_points(dx2=a, dy2=b, in_dim=preset.in_dim, out_dim=preset.out_dim)

    @jax.jit
    @jax.vmap
    def train_chunk(seed, a, b, params):
        # params None: a fresh network from the seed's key
        x, y = data(a, b)
        return train(
            network,
            x,
            y,
            key=jax.random.key(seed),
            lr=lr,
            steps=chunk,
            optimizer=preset.optimizer,
            record_every=STOP_EVERY,
            params=params,
            return_params=True,
        )

    seeds = np.asarray(seeds)
    dx2, dy2 = np.asarray(dx2, np.float32), np.asarray(dy2, np.float32)
    traj, params = train_chunk(jnp.asarray(seeds), jnp.asarray(dx2), jnp.asarray(dy2), None)
    params = jax.tree.map(np.array, params)  # host copies, updated per run below
    h0 = np.asarray(traj.h)[:, 0, preset.layer]
    y0 = np.asarray(traj.y)[:, 0]
    n = h0.shape[0]
    losses = np.asarray(traj.loss)  # (runs, T): records at epochs + 0, STOP_EVERY, ...
    hs = np.asarray(traj.h)[:, :, preset.layer]
    # Each run stops at the first record (every STOP_EVERY epochs) whose loss is below
    # STOP_LOSS; its h and loss are taken there, and the next chunk trains only the runs
    # still going, as one vmapped batch padded to a multiple of PAD_RUNS (so that few
    # batch shapes need compiling).
    h_end, loss_end, stop_epoch = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, int)
    epochs = 0
    running = np.arange(n)
    while True:
        below = np.isfinite(losses) & (losses < STOP_LOSS)
        first_below = np.argmax(below, axis=1)
        new = below.any(axis=1)
        idx = running[new]
        h_end[idx] = hs[new, first_below[new]]
        loss_end[idx] = losses[new, first_below[new]]
        stop_epoch[idx] = epochs + first_below[new] * STOP_EVERY
        epochs += chunk
        going = ~new
        idx = running[going]
        h_end[idx], loss_end[idx], stop_epoch[idx] = hs[going, -1], losses[going, -1], epochs
        status(epochs, loss_end)
        running = idx[np.isfinite(losses[going, -1])]  # diverged runs stop too
        if running.size == 0 or epochs >= max_epochs:
            break
        batch = np.concatenate([running, np.repeat(running[-1:], (-running.size) % PAD_RUNS)])
        traj, out = train_chunk(
            jnp.asarray(seeds[batch]),
            jnp.asarray(dx2[batch]),
            jnp.asarray(dy2[batch]),
            jax.tree.map(lambda v, b=batch: jnp.asarray(v[b]), params),
        )
        k = running.size
        for dst, src in zip(jax.tree.leaves(params), jax.tree.leaves(out), strict=True):
            dst[running] = np.asarray(src)[:k]
        losses = np.asarray(traj.loss)[:k]
        hs = np.asarray(traj.h)[:k, :, preset.layer]
    # Adam's moments restart with each chunk; the grid presets here are plain descent.
    return h0, y0, h_end, loss_end, stop_epoch, epochs


def run_grid(
    name: str = "default",
    *,
    seeds: int = 2,
    quick: bool = False,
    out: str | None = None,
    max_epochs: int = MAX_EPOCHS,
    rate_seeds: int = 3,
) -> dict:
    """Measured vs predicted converged distance over the 5 × 5 (dx, dy) grid.

    Arguments:
        name: two-point preset.
        seeds: seeds per grid point (all 25·seeds runs are one vmapped batch).
        quick: small network (width ≤ 64, depth ≤ 4), same protocol.
        out: directory for ``grid.json`` and ``grid.png``.
        max_epochs: cap on epochs (PRESETS.md: 40,000).
        rate_seeds: seeds of the two-point fit that provides η_h/η_y.

    Returns:
        dict with ``runs`` (dx2, dy2, seed, h0, y0, h_measured, h_theory, loss_final,
        epochs (where the run stopped), kept), ``stats`` (Pearson r, OLS slope and
        intercept over kept runs, n_kept),
        ``rates`` (fitted η_h, η_y, ratio) and ``config``.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    from rep_align import theory

    base = get_preset(name)
    if base.optimizer != "sgd":
        raise ValueError(
            f"the grid protocol is plain gradient descent; preset {name!r} uses {base.optimizer!r}"
        )
    # 1. the rate ratio, from the standard two-point task (trajectory protocol)
    tp = base.trajectory_protocol()
    tp = quick_preset(tp) if quick else tp
    traj = train_batch(
        tp, np.arange(100, 100 + rate_seeds), record_every=record_every_for(tp.epochs)
    )
    ts, z_obs = observed(traj, tp.layer)
    fitted = fit_observed(ts, z_obs, dx2=tp.dx2, dy2=tp.dy2)
    if fitted is None or not np.any(np.isfinite(fitted.eta_h)):
        raise RuntimeError(f"could not fit effective rates for preset {name!r}")
    ratio = float(np.nanmedian(fitted.eta_h / fitted.eta_y))
    eta_y = float(np.nanmedian(fitted.eta_y))
    # 2. the grid, one vmapped batch
    preset = dataclasses.replace(quick_preset(base) if quick else base, lr=base.lr / 5)
    dxg, dyg, sg = np.meshgrid(GRID_DX, GRID_DY, np.arange(seeds), indexing="ij")
    dx2, dy2, sd = dxg.ravel() ** 2, dyg.ravel() ** 2, sg.ravel()
    chunks = -(-max_epochs // CHUNK)
    st = Status(chunks, "epoch chunks")

    def status(epochs, loss):
        st.step(
            f"{epochs} epochs: {int(np.sum(loss < STOP_LOSS))}/{loss.size} runs below {STOP_LOSS:g}"
        )

    h0, y0, h_end, loss, stop_epoch, epochs = _train_until_converged(
        preset, sd, dx2, dy2, preset.lr, max_epochs=max_epochs, chunk=CHUNK, status=status
    )
    kept = np.isfinite(loss) & (loss <= DISCARD_LOSS) & (h0 > 0)
    h_th = np.full(h0.shape, np.nan)
    ok = h0 > 0
    h_th[ok] = np.asarray(
        theory.final_distance(
            h0[ok].astype(float),
            y0[ok].astype(float),
            eta_h=ratio * eta_y,
            eta_y=eta_y,
            dx2=dx2[ok],
            dy2=dy2[ok],
        )
    )
    m, p = h_end[kept].astype(float), h_th[kept]
    if kept.sum() >= 3:
        r = float(np.corrcoef(m, p)[0, 1])
        slope, intercept = (float(v) for v in np.polyfit(p, m, 1))
    else:
        r = slope = intercept = float("nan")
    result = dict(
        config=preset_config(
            preset,
            seeds=seeds,
            max_epochs=max_epochs,
            epochs_run=epochs,
            stop_loss=STOP_LOSS,
            discard_loss=DISCARD_LOSS,
            quick=quick,
        ),
        rates=dict(
            eta_h=ratio * eta_y,
            eta_y=eta_y,
            ratio=ratio,
            source="median fit over seeds of the two-point task, trajectory protocol",
        ),
        stats=dict(
            pearson_r=r,
            slope=slope,
            intercept=intercept,
            n_kept=int(kept.sum()),
            n_runs=int(kept.size),
        ),
        runs=[
            dict(
                dx2=float(a),
                dy2=float(b),
                seed=int(s),
                h0=float(c),
                y0=float(d),
                h_measured=float(e),
                h_theory=float(f),
                loss_final=float(g),
                epochs=int(q),
                kept=bool(k),
            )
            for a, b, s, c, d, e, f, g, q, k in zip(
                dx2, dy2, sd, h0, y0, h_end, h_th, loss, stop_epoch, kept, strict=True
            )
        ],
    )
    if out:
        from rep_align.experiments import plots

        write_json(os.path.join(out, "grid.json"), result)
        plots.save(
            plots.grid_scatter(
                m,
                p,
                result["stats"],
                f"final-distance grid: {name}" + (" (quick)" if quick else ""),
            ),
            os.path.join(out, "grid.png"),
        )
    return result
