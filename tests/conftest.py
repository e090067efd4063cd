"""Shared fixtures. Float64 is switched on per test (fixture ``x64``) where precision is the
point; everything else runs in JAX's default float32."""

import os

import jax
import pytest

# The rep-align commands ask JAX for one CPU device per core (rep_align.devices). The suite is
# written for JAX's single CPU device (e.g. chunk counts in test_sweep), also where it calls
# the CLI in-process, so it keeps that unless told otherwise; tests of several devices force
# them in subprocesses.
os.environ.setdefault("REP_ALIGN_HOST_DEVICES", "0")


@pytest.fixture
def x64():
    """Run the test with 64-bit floats enabled (jax.enable_x64 context)."""
    with jax.enable_x64(True):
        yield
