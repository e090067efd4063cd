"""Test helper: the functions JAX traces and compiles while a ``CompileLog`` is active.

It switches on ``jax.log_compiles`` and reads JAX's own log records ("Finished tracing
NAME for jit", "Compiling jit(NAME) ..."), so the library keeps no counters of its own.
Only top-level jitted calls are logged: a jitted function called inside another one's
trace (``train`` inside ``train_ensemble``) does not appear itself, so check that nothing
at all was traced or compiled there.

Use it as a context manager::

    with CompileLog() as log:
        train(...)
    assert "_train_core" not in log.traced

or, where a ``with`` block does not fit, as ``log = CompileLog().start()`` … ``log.stop()``.
"""

from __future__ import annotations

import logging
import re

import jax

_TRACED = re.compile(r"Finished tracing (?:\+ transforming )?(\S+) for ")
_COMPILED = re.compile(r"Compiling (?:jit\()?([^\s()]+)")


class CompileLog(logging.Handler):
    """Collects the names in JAX's tracing and compilation log records while active.

    Attributes:
        traced: names of the functions traced, in order (repeats kept).
        compiled: names of the functions compiled, in order (repeats kept).
    """

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.traced: list[str] = []
        self.compiled: list[str] = []
        self._switch = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for pattern, names in ((_TRACED, self.traced), (_COMPILED, self.compiled)):
            match = pattern.match(message)
            if match:
                names.append(match.group(1))

    def start(self) -> CompileLog:
        self._switch = jax.log_compiles(True)
        self._switch.__enter__()
        logging.getLogger("jax").addHandler(self)
        return self

    def stop(self) -> CompileLog:
        logging.getLogger("jax").removeHandler(self)
        self._switch.__exit__(None, None, None)
        return self

    def __enter__(self) -> CompileLog:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
