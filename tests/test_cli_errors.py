"""Bad command lines: each is refused on one line naming the option and its value, with exit
status 2, before anything is computed or written (issue 30).

The table ``CASES`` grows with every mistake a user finds: a row is an id, the command line
(``{tmp}`` is the test's directory, holding the files of ``_files``), and a fragment of the
expected message. The library calls that would compute are replaced by functions that fail
the test if they are reached.
"""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from rep_align.cli import main

# the library calls of the commands that compute; reaching one fails the test
_COMPUTE = (
    "rep_align.experiments._driver.run",
    "rep_align.experiments.reproduce.run_reproduce",
    "rep_align.training.train",
    "rep_align.training.gradient_flow",
    "rep_align.theory.solve",
    "rep_align.predict.predict_distances",
)

_EXPERIMENTS = (
    "two-points",
    "grid",
    "depth",
    "ablations",
    "xor",
    "blobs",
    "mnist",
    "kernel-rates",
    "universality",
    "lazy",
    "validity",
    "reproduce",
)

_PREDICT = ["predict", "--inputs", "{tmp}/x.npy", "--targets", "{tmp}/y.npy"]

CASES = [
    # --out (or --plot, --store) where a file is
    *[
        pytest.param([cmd, "--quick", "--out", "{tmp}/afile"], "--out", id=f"{cmd}-out-file")
        for cmd in _EXPERIMENTS
    ],
    pytest.param(
        ["two-points", "--quick", "--out", "{tmp}/afile/sub"], "is a file", id="out-below-file"
    ),
    pytest.param(
        ["kernel-rates", "--quick", "--out", "{tmp}/o", "--store", "{tmp}/afile"],
        "--store '",
        id="kernel-rates-store-file",
    ),
    pytest.param(
        ["train", "--preset", "default", "--quick", "--out", "{tmp}/afile"],
        "--out '",
        id="train-out-file",
    ),
    pytest.param([*_PREDICT, "--out", "{tmp}/afile"], "--out '", id="predict-out-file"),
    pytest.param(
        ["theory", "--plot", "{tmp}/afile/h.png"], "--plot '", id="theory-plot-below-file"
    ),
    pytest.param(["theory", "--plot", "{tmp}"], "is a directory", id="theory-plot-directory"),
    pytest.param(["theory", "--plot", "{tmp}/h.xyz"], "'.xyz'", id="theory-plot-unknown-type"),
    # numbers
    pytest.param(["theory", "--h0", "1e300"], "--h0 1e+300", id="theory-h0-overflow"),
    pytest.param(
        ["theory", "--variant", "nosuch", "--plot", "{tmp}/h.png"],
        "--variant must be one of",
        id="theory-variant",
    ),
    pytest.param(["theory", "--dx2", "inf"], "--dx2 must be a finite", id="theory-dx2-inf"),
    pytest.param(["theory", "--eta-h", "-5e-4"], "-0.0005", id="theory-negative-exponent"),
    pytest.param(
        ["train", "--preset", "default", "--quick", "--seed", "99999999999999999999"],
        "--seed: invalid seed '99999999999999999999'",
        id="train-seed-huge",
    ),
    pytest.param(
        ["train", "--preset", "default", "--quick", "--seed", "-1"],
        "--seed: invalid seed '-1'",
        id="train-seed-negative",
    ),
    pytest.param(
        [*_PREDICT[:2], "{tmp}/big.npy", *_PREDICT[3:]], "--float64", id="predict-float32-overflow"
    ),
    # unreadable inputs
    pytest.param(
        [*_PREDICT, "--rates-from", "{tmp}/binary.json"],
        "--rates-from '{tmp}/binary.json'",
        id="predict-rates-from-binary",
    ),
    pytest.param(
        ["xor", "--quick", "--rates-from", "{tmp}/binary.json"],
        "--rates-from '{tmp}/binary.json'",
        id="xor-rates-from-binary",
    ),
    # sweeps: the spec and the store
    pytest.param(
        ["sweep", "{tmp}/nosuch.toml", "--out", "{tmp}/o"], "does not exist", id="sweep-no-spec"
    ),
    pytest.param(
        ["sweep", "{tmp}/adir", "--out", "{tmp}/o"], "is a directory", id="sweep-spec-dir"
    ),
    pytest.param(["sweep-plot", "{tmp}/nosuch"], "no such results directory", id="plot-no-dir"),
    pytest.param(
        ["sweep", "{tmp}/s.toml", "--out", "{tmp}/badstore"],
        "not a rep_align.sweep/1 results store",
        id="sweep-manifest-list",
    ),
    pytest.param(
        ["sweep-plot", "{tmp}/badstore"], "not a sweep results store", id="plot-manifest-list"
    ),
]


def _files(tmp) -> None:
    (tmp / "afile").write_text("not a directory\n")
    (tmp / "adir").mkdir()
    (tmp / "adir" / "keep").write_text("")
    (tmp / "badstore").mkdir()
    (tmp / "badstore" / "manifest.json").write_text("[1, 2, 3]\n")
    (tmp / "s.toml").write_text('name = "s"\n[fixed]\nwidth = 8\ndepth = 2\nsteps = 20\n')
    (tmp / "binary.json").write_bytes(b"\x80\x81\xfe\xff")
    np.save(tmp / "x.npy", np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]))
    np.save(tmp / "y.npy", np.array([[0.0], [1.0], [1.0]]))
    np.save(tmp / "big.npy", np.array([[0.0, 0.0], [1e20, 1e20], [3.0, 1.0]]))


def _refuse(name):
    def reached(*args, **kwargs):
        raise AssertionError(f"{name} was called before the arguments were checked")

    return reached


def _run(argv) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # argparse
        return stop.code


@pytest.mark.parametrize(("argv", "fragment"), CASES)
def test_refused_on_one_line(argv, fragment, tmp_path, monkeypatch, capsys):
    _files(tmp_path)
    monkeypatch.chdir(tmp_path)  # a default --out would land here
    for target in _COMPUTE:
        module, name = target.rsplit(".", 1)
        monkeypatch.setattr(importlib.import_module(module), name, _refuse(target))
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]

    status = _run(argv)

    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "error:" in lines[0]
    assert fragment.replace("{tmp}", str(tmp_path)) in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_negative_numbers_without_equals(capsys):
    # argparse alone reads "-1e-3" as an option ("expected one argument")
    assert main(["theory", "--w0", "-1e-3", "--t-max", "10", "--n-save", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["success"] is True


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_theory_failed_solve_says_why_in_strict_json(capsys):
    status = main(["theory", "--h0", "1e-12", "--t-max", "1e9", "--json"])
    captured = capsys.readouterr()
    assert status == 1  # a computed outcome, not a user error
    doc = _strict(captured.out)
    assert doc["success"] is False
    assert doc["h"] is None and doc["conserved_drift"] is None
    assert "max_steps reached" in doc["result"]
    assert "max_steps reached" in captured.err
    assert "Traceback" not in captured.err


def test_theory_text_names_the_failure(capsys):
    assert main(["theory", "--h0", "1e-12", "--t-max", "1e9"]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out
    assert "the solve failed: max_steps reached" in captured.err


def test_theory_json_success_is_strict(capsys):
    assert main(["theory", "--t-max", "10", "--n-save", "3", "--json"]) == 0
    doc = _strict(capsys.readouterr().out)
    assert doc["result"] == "successful"


def test_dumps_json_writes_non_finite_as_null():
    from rep_align.files import dumps_json

    text = dumps_json({"a": float("nan"), "b": [np.inf, -np.inf, 1.5], "c": np.float32("nan")})
    assert _strict(text) == {"a": None, "b": [None, None, 1.5], "c": None}
