"""Shared fixtures. Float64 is switched on per test (fixture ``x64``) where precision is the
point; everything else runs in JAX's default float32."""

import jax
import pytest


@pytest.fixture
def x64():
    """Run the test with 64-bit floats enabled (jax.enable_x64 context)."""
    with jax.enable_x64(True):
        yield
