"""One group of a sweep, executed: its runs trained in compiled, vmapped batches on devices.

``GroupRunner`` holds the compiled functions of one group (runs sharing their static
settings; docs/architecture.md) and trains a chunk of its runs: whole runs in one call, or,
for runs with a ``stop_loss``, in segments after which the runs below the loss stop
(``STOP_SEGMENT_RECORDS`` records per segment). A pair run trains with ``training.train``
or ``training.gradient_flow``, a points run with ``training.train_epochs`` on its task's
data (``data.task_data``, loaded once per group). Used by ``rep_align.sweep.engine``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rep_align.config import TRACED_FIELDS, RunConfig

__all__ = ["GroupRunner", "SNAPSHOT_FIELDS", "STOP_SEGMENT_RECORDS", "traced_inputs"]

#: Records per training segment of runs with a ``stop_loss``.
STOP_SEGMENT_RECORDS = 20
#: The outputs of a points run: the fields of ``training.Snapshots``.
SNAPSHOT_FIELDS = ("epochs", "loss", "accuracy", "hidden", "outputs", "diverged", "diverged_epoch")


# ------------------------------------------------------------------------ one run


def _train_run(cfg: RunConfig, steps: int, p: Mapping[str, jax.Array], params):
    """Train one run of ``cfg``'s group for ``steps`` steps from ``params`` (None: from the
    run's seed). Returns the ``Trajectory`` and, with a ``stop_loss``, the final parameters."""
    from rep_align import training

    net = cfg.network()
    x, y = cfg.data(dx2=p["dx2"], dy2=p["dy2"])
    key = jax.random.key(p["seed"])
    if cfg.method == "flow":
        traj = training.gradient_flow(
            net,
            x,
            y,
            lr=p["lr"],
            t_max=float(steps),
            save_every=float(cfg.record_every),
            key=key,
            gain=p["gain"],
            pair=cfg.pair,
            rtol=p["rtol"],
            atol=p["atol"],
            max_steps=cfg.max_steps,
        )
        return traj, None
    gain = p["gain"]
    if params is None and cfg.init_dtype == "float32" and cfg.dtype == "float64":
        # The float32 twin's initial parameters (same key, same split), cast: the two runs
        # then differ only by the rounding along the way.
        twin = cfg.network(dtype="float32")
        _, init = training.train(
            twin,
            x,
            y,
            key=key,
            lr=p["lr"],
            steps=0,
            gain=gain.astype(jnp.float32),
            return_params=True,
        )
        params = jax.tree_util.tree_map(lambda v: v.astype(jnp.float64), init)
    keep = cfg.stop_loss > 0
    out = training.train(
        net,
        x,
        y,
        key=key,
        lr=p["lr"],
        steps=steps,
        optimizer=cfg.optimizer,
        batch_size=cfg.batch_size or None,
        record_every=cfg.record_every,
        pair=cfg.pair,
        params=params,
        gain=None if params is not None else gain,
        return_params=keep,
    )
    return out if keep else (out, None)


def _outputs(cfg: RunConfig, traj) -> dict[str, jax.Array]:
    li = cfg.layer_index
    return {
        "times": traj.times,
        "loss": traj.loss,
        "h": traj.h,
        "y": traj.y,
        "w": traj.w,
        "m": traj.m,
        "data_dx2": traj.dx2,
        "data_dy2": traj.dy2,
        "diverged": traj.diverged,
        "diverged_step": traj.diverged_step,
        "n_steps": traj.n_steps,
        "solver_ok": traj.solver_ok,
        "h0": traj.h[0, li],
        "y0": traj.y[0],
        "w0": traj.w[0],
        "loss_final": traj.loss[-1],
        "h_final": traj.h[-1, li],
        "y_final": traj.y[-1],
        "w_final": traj.w[-1],
    }


def _whole_run(cfg: RunConfig, p):
    traj, _ = _train_run(cfg, cfg.steps, p, None)
    return _outputs(cfg, traj)


def _points_run(cfg: RunConfig, x: np.ndarray, y: np.ndarray, p):
    """One points run of ``cfg``'s group on the data ``(x, y)``: its ``Snapshots`` fields."""
    from rep_align.training import train_epochs

    snaps = train_epochs(
        cfg.network(),
        x,
        y,
        key=jax.random.key(p["seed"]),
        lr=p["lr"],
        gain=p["gain"],
        epochs=cfg.epochs,
        layer=cfg.layer_index,
        optimizer=cfg.optimizer,
        batch_size=cfg.batch_size or None,
        record_every=cfg.record_every,
        probe=np.asarray(cfg.probe, np.int64) if cfg.probe else None,
    )
    return {n: getattr(snaps, n) for n in SNAPSHOT_FIELDS}


def _segment(cfg: RunConfig, steps: int, p, params):
    traj, final = _train_run(cfg, steps, p, params)
    return traj, final


def traced_inputs(runs: Sequence[RunConfig], dtype: str) -> dict[str, np.ndarray]:
    """The traced settings of ``runs`` as arrays (seed as uint32), one entry per run."""
    out = {n: np.asarray([getattr(r, n) for r in runs], dtype) for n in TRACED_FIELDS}
    out["seed"] = np.asarray([r.seed for r in runs], np.uint32)
    return out


# --------------------------------------------------------------------- one group


class GroupRunner:
    """Compiled functions of one group on ``devices`` (each compiled once per shape).

    With ``per_block`` (the spec's ``runs_per_device``) a chunk is split into blocks of that
    many runs (the last one may be smaller: it is not padded) and block k runs as one
    ``jit(vmap)`` call on device k mod n, all blocks dispatched before any is waited for;
    a run's numbers then depend only on its block. Without it the chunk (padded to its full
    size by the caller) runs as one ``devices.vmap_over_devices`` call.
    """

    def __init__(self, cfg: RunConfig, devices: Sequence[jax.Device], per_block: int = 0):
        self.cfg = cfg
        self.devices = list(devices)
        self.per_block = per_block
        self._fns: dict[int | None, Callable] = {}
        self._data = None
        if cfg.record == "points":
            from rep_align.data import task_data

            self._data = task_data(cfg.task, mnist_source=cfg.mnist_source)

    def function(self, steps: int | None) -> Callable:
        """The batched function of whole runs (``steps`` None) or of training segments."""
        if steps not in self._fns:
            from rep_align.devices import vmap_over_devices

            cfg = self.cfg
            if self._data is not None:
                one = functools.partial(_points_run, cfg, *self._data)
            elif steps is None:
                one = functools.partial(_whole_run, cfg)
            else:
                one = functools.partial(_segment, cfg, steps)
            if self.per_block:
                self._fns[steps] = jax.jit(jax.vmap(one))
            else:
                self._fns[steps] = vmap_over_devices(one, devices=self.devices)
        return self._fns[steps]

    def _blocks(self, n: int) -> list[tuple[np.ndarray, jax.Device | None]]:
        """Row indices of the blocks of a chunk of ``n`` runs, each with its device."""
        if not self.per_block:
            return [(np.arange(n), None)]
        starts = range(0, n, self.per_block)
        return [
            (np.arange(a, min(a + self.per_block, n)), self.devices[k % len(self.devices)])
            for k, a in enumerate(starts)
        ]

    def _call(self, steps: int | None, calls: list[tuple[tuple, jax.Device | None]]) -> list:
        """Dispatch every call (asynchronously), then return their outputs."""
        fn = self.function(steps)
        outs = [fn(*(args if dev is None else jax.device_put(args, dev))) for args, dev in calls]
        return jax.device_get(outs)

    def run(self, inputs: Mapping[str, np.ndarray], n_real: int) -> dict[str, np.ndarray]:
        """Outputs of a chunk, the first ``n_real`` rows, as NumPy arrays."""
        if self.cfg.stop_loss > 0:
            return self._run_stopping(inputs, n_real)
        n = len(inputs["seed"])
        blocks = self._blocks(n)
        outs = self._call(
            None, [(({k: v[rows] for k, v in inputs.items()},), dev) for rows, dev in blocks]
        )
        joined = {k: np.concatenate([np.asarray(o[k]) for o in outs]) for k in outs[0]}
        if self._data is not None:  # summaries of points runs, taken here, not compiled
            joined["loss_final"] = joined["loss"][:, -1]
            joined["accuracy_final"] = joined["accuracy"][:, -1]
        return {k: v[:n_real] for k, v in joined.items()}

    def _run_stopping(self, inputs: Mapping[str, np.ndarray], n_real: int) -> dict:
        """Train in segments; each run stops at its first record below ``stop_loss``.

        Records after a run's stop are NaN; its summaries are taken at the stop, and
        ``stop_step`` (= ``n_steps``) says where. A run whose loss becomes non-finite stops
        at its last finite record. Later segments train only the runs still going (per
        block; without blocks, padded to a multiple of the device count).
        """
        cfg = self.cfg
        re = cfg.record_every
        seg = min(cfg.steps, re * STOP_SEGMENT_RECORDS)
        n = len(inputs["seed"])
        blocks = self._blocks(n)
        unit = 1 if self.per_block else len(self.devices)
        first = self._call(
            seg, [(({k: v[rows] for k, v in inputs.items()}, None), dev) for rows, dev in blocks]
        )
        trajs = [t for t, _ in first]
        params = jax.tree_util.tree_map(
            lambda *v: np.concatenate([np.asarray(x) for x in v]), *[p for _, p in first]
        )
        t_full = cfg.steps // re + 1
        rec = {}
        for k in ("loss", "h", "y", "w", "m"):
            part = np.concatenate([np.asarray(getattr(t, k)) for t in trajs])
            rec[k] = np.full((n, t_full) + part.shape[2:], np.nan, part.dtype)
            rec[k][:, : part.shape[1]] = part
        dx2 = np.concatenate([np.asarray(t.dx2) for t in trajs])
        dy2 = np.concatenate([np.asarray(t.dy2) for t in trajs])
        times = np.arange(t_full, dtype=np.asarray(trajs[0].times).dtype) * re
        diverged_step = np.concatenate([np.asarray(t.diverged_step) for t in trajs]).astype(
            np.int64
        )
        stop = np.full(n, t_full - 1)  # record index where each run stops
        running = np.arange(n)
        lo, hi, epochs = 0, seg // re + 1, seg  # the last segment's records: [lo, hi)
        while running.size:
            loss = rec["loss"][running, lo:hi]
            below = np.isfinite(loss) & (loss < cfg.stop_loss)
            hit = below.any(axis=1)
            stop[running[hit]] = lo + np.argmax(below[hit], axis=1)
            going = running[~hit]
            alive = np.isfinite(rec["loss"][going, hi - 1])
            for i in going[~alive]:  # diverged: stop at the last finite record
                finite = np.flatnonzero(np.isfinite(rec["loss"][i]))
                stop[i] = finite[-1] if finite.size else 0
            running = going[alive]
            if not running.size or epochs >= cfg.steps:
                break
            steps = min(seg, cfg.steps - epochs)
            calls, members = [], []
            for rows, dev in blocks:
                mine = running[np.isin(running, rows)]
                if not mine.size:
                    continue
                batch = np.concatenate([mine, np.repeat(mine[-1:], (-mine.size) % unit)])
                sub = {k: v[batch] for k, v in inputs.items()}
                calls.append(((sub, jax.tree_util.tree_map(lambda v, b=batch: v[b], params)), dev))
                members.append(mine)
            outs = self._call(steps, calls)
            lo, hi = hi - 1, hi - 1 + steps // re
            for mine, (traj, out) in zip(members, outs, strict=True):
                k_run = mine.size
                for dst, src in zip(
                    jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(out), strict=True
                ):
                    dst[mine] = np.asarray(src)[:k_run]
                for k in rec:  # a segment's record 0 repeats the previous segment's last
                    rec[k][mine, lo + 1 : hi + 1] = np.asarray(getattr(traj, k))[:k_run, 1:]
                ds = np.asarray(traj.diverged_step)[:k_run]
                new = (ds >= 0) & (diverged_step[mine] < 0)
                diverged_step[mine[new]] = ds[new] + epochs
            hi += 1
            epochs += steps
        after = np.arange(t_full)[None, :] > stop[:, None]
        for k in rec:
            rec[k][after] = np.nan
        rows, li = np.arange(n), cfg.layer_index
        res = {
            "times": np.broadcast_to(times, (n, t_full)),
            **rec,
            "data_dx2": dx2,
            "data_dy2": dy2,
            "diverged": diverged_step >= 0,
            "diverged_step": diverged_step.astype(np.int32),
            "n_steps": (stop * re).astype(np.int32),
            "solver_ok": np.ones(n, bool),
            "h0": rec["h"][:, 0, li],
            "y0": rec["y"][:, 0],
            "w0": rec["w"][:, 0],
            "loss_final": rec["loss"][rows, stop],
            "h_final": rec["h"][rows, stop, li],
            "y_final": rec["y"][rows, stop],
            "w_final": rec["w"][rows, stop],
            "stop_step": (stop * re).astype(np.int64),
        }
        return {k: np.asarray(v)[:n_real] for k, v in res.items()}
