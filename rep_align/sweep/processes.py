"""Several processes on one sweep, through JAX's own distributed runtime.

Every process runs the same spec into the same store after
``jax.distributed.initialize(...)``; ``run_sweep`` gives process i the runs whose position
in the plan is ≡ i (mod N), on its ``jax.local_devices()``, and each writes its own chunk
files. Nothing is communicated during the sweep: the store is safe with several writers
(``rep_align.sweep.store``: chunk files are atomic and named by their runs, the manifest is
created once, ``results.csv`` is rewritten under a lock by every process as it ends, so the
last one to end writes it whole). A process that dies leaves complete chunks or none;
starting all processes again resumes with every run done exactly once.

``launch`` starts N such processes on this machine, on the loopback interface, each pinned
to its own share of the CPU cores (``sched_setaffinity``, where the OS has it) with one JAX
host device per core of its share, or, with ``gpus=True``, one local accelerator each
(``jax.distributed.initialize(local_device_ids=[i])``): the way to use several GPUs of one
host, or several CPU sockets, as independent workers. On a cluster, start one process per
node (or per accelerator) yourself, e.g. with ``srun`` (README, "Several hosts"), and pass
the coordinator, or let JAX read the cluster's environment (SLURM, TPU pods).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["free_port", "initialize", "launch"]


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: Sequence[int] | None = None,
) -> None:
    """``jax.distributed.initialize`` with the given coordinator, or from the cluster's
    environment when all three are None. Call it before anything else uses JAX.

    Raises:
        ValueError: if only some of coordinator, num_processes, process_id are given, or
            they are out of range.
    """
    import jax

    given = [v is not None for v in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise ValueError(
            "give coordinator, num_processes and process_id together (or none of them, to "
            "read the cluster's environment)"
        )
    if all(given):
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise ValueError(
                f"process_id={process_id} must lie in [0, num_processes={num_processes})"
            )
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=num_processes,
            process_id=process_id,
            local_device_ids=local_device_ids,
        )
    else:
        jax.distributed.initialize(local_device_ids=local_device_ids)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for the coordinator)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _core_shares(n: int) -> list[set[int]] | None:
    try:
        cores = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - platform without affinity
        return None
    if len(cores) < n:
        return [set(cores)] * n
    size = len(cores) // n
    return [set(cores[i * size : (i + 1) * size]) for i in range(n)]


def launch(
    argv: Sequence[str],
    n: int,
    *,
    out: str | os.PathLike,
    total: int,
    progress: Callable[[int, int], None] | None = None,
    gpus: bool = False,
    host_devices: int | None = None,
    poll_seconds: float = 0.5,
) -> int:
    """Start ``n`` local processes of ``rep-align sweep`` on one store and wait for them.

    Arguments:
        argv: the ``rep-align`` arguments every process gets (``["sweep", SPEC, "--out",
            DIR, ...]``); the coordinator options are added here.
        n: number of processes (≥ 1).
        out: the store, polled for finished runs to drive ``progress``.
        total: runs in the sweep.
        progress: optional ``progress(done, total)`` for the whole sweep.
        gpus: give process i the local accelerator i instead of a share of the CPU cores.
        host_devices: JAX CPU devices per process; default one per core of its share.
        poll_seconds: how often the store is polled.

    Returns:
        0 if every process succeeded, else the first non-zero exit status (the failing
        processes' output is printed to stderr).
    """
    from rep_align.sweep.store import finished_ids

    port = free_port()
    shares = None if gpus else _core_shares(n)
    procs, logs = [], []
    tmp = tempfile.TemporaryDirectory(prefix="rep_align_procs_")
    for i in range(n):
        env = dict(os.environ)
        count = host_devices or (len(shares[i]) if shares is not None else None)
        if count is not None and not gpus:
            env["REP_ALIGN_HOST_DEVICES"] = str(count) if count >= 2 else "0"
        args = [
            *argv,
            "--coordinator",
            f"127.0.0.1:{port}",
            "--num-processes",
            str(n),
            "--process-id",
            str(i),
            "--quiet",
        ]
        if gpus:
            args += ["--local-device", str(i)]
        log = open(Path(tmp.name) / f"process-{i}.log", "w+b")  # noqa: SIM115
        logs.append(log)
        share = None if shares is None else shares[i]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "rep_align.cli", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=(lambda s=share: os.sched_setaffinity(0, s)) if share else None,
            )
        )
    shown = -1
    try:
        while True:
            alive = [p.poll() is None for p in procs]
            done = len(finished_ids(Path(out), verify=False)) if Path(out).exists() else 0
            if progress is not None and done != shown:
                progress(done, total)
                shown = done
            if not any(alive):
                break
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        raise
    finally:
        for p in procs:
            if p.poll() is None:
                p.wait()
    status = 0
    for i, (p, log) in enumerate(zip(procs, logs, strict=True)):
        if p.returncode:
            status = status or p.returncode
            log.seek(0)
            text = log.read().decode(errors="replace")
            print(
                f"--- process {i} exited with status {p.returncode}:\n{text[-4000:]}",
                file=sys.stderr,
            )
        log.close()
    tmp.cleanup()
    return status
