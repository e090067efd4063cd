"""The documentation site: ``mkdocs build --strict`` passes, every page is in the navigation,
the math is handed to MathJax, the API pages are generated, and every name a docstring's
"Arguments:" section documents is a parameter of its function."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _nav_pages(nav) -> list[str]:
    """The Markdown files named anywhere in mkdocs.yml's ``nav``."""
    if isinstance(nav, str):
        return [nav] if nav.endswith(".md") else []
    if isinstance(nav, dict):
        return [p for v in nav.values() for p in _nav_pages(v)]
    return [p for v in nav for p in _nav_pages(v)]


def test_every_page_is_in_the_navigation():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = _nav_pages(config["nav"])
    on_disk = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(nav) == on_disk
    assert len(set(nav)) == len(nav)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built with ``mkdocs build --strict`` into a temporary directory."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    pytest.importorskip("material")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # silence Material's banner
    # no -q: it filters out the warnings that --strict counts, and the build would pass
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict"]
        + ["-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_site_builds_strictly_with_the_pages(site):
    for page in ("index", "theory/index", "presets/index", "architecture/index", "notebooks/index"):
        assert (site / f"{page}.html").is_file(), page
    # the API reference is generated from the docstrings
    theory = (site / "api" / "theory" / "index.html").read_text()
    for name in ("solve", "final_distance", "loss_curve", "regular_vector_field"):
        assert f'id="rep_align.theory.{name}"' in theory, name
    assert "Conserved" in theory or "conserved" in theory
    plots = (site / "api" / "plots" / "index.html").read_text()
    assert 'id="rep_align.plots.two_point_overview"' in plots


def _math_spans(markdown: str) -> tuple[int, int]:
    """Display ($$ … $$) and inline ($ … $) math in a page, outside code."""
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    display = len(re.findall(r"\$\$.+?\$\$", text, flags=re.S))
    text = re.sub(r"\$\$.+?\$\$", "", text, flags=re.S)
    inline = len(re.findall(r"\$[^$\n]+?\$", text))
    return display, inline


@pytest.mark.parametrize("page", ["theory", "presets", "index"])
def test_math_is_handed_to_mathjax(site, page):
    source = (DOCS / f"{page}.md").read_text()
    html = (site / ("index.html" if page == "index" else f"{page}/index.html")).read_text()
    display, inline = _math_spans(source)
    assert display + inline > 0
    # arithmatex wraps each formula for MathJax: \[ … \] in a div, \( … \) in a span
    assert html.count('<div class="arithmatex">') == display
    assert html.count('<span class="arithmatex">') == inline
    assert "$$" not in html
    assert "mathjax" in html.lower()


def _undocumented_names(package: str, search_path: Path) -> list[str]:
    """``file:line name`` for every name in an "Arguments:" section that is not a
    parameter of the function (names documented together, "a, b: …", are split)."""
    griffe = pytest.importorskip("griffe")
    logging.getLogger("griffe").setLevel(logging.ERROR)
    options = dict(warn_unknown_params=False, warn_missing_types=False)
    root = griffe.load(
        package,
        search_paths=[str(search_path)],
        docstring_parser="google",
        docstring_options=options,
    )

    def objects(obj):
        for member in obj.members.values():
            if member.is_alias:
                continue
            yield member
            if member.is_module or member.is_class:
                yield from objects(member)

    bad, n_sections = [], 0
    for obj in objects(root):
        if not (obj.is_function and obj.docstring):
            continue
        params = {p.name for p in obj.parameters}
        for section in obj.docstring.parsed:
            if section.kind.value != "parameters":
                continue
            n_sections += 1
            for item in section.value:
                for name in (n.strip().lstrip("*") for n in item.name.split(",")):
                    if name and name not in params:
                        bad.append(f"{obj.relative_filepath}:{obj.lineno} {obj.path}: {name}")
    assert n_sections > 0, f"no Arguments sections found in {package}"
    return bad


def test_documented_arguments_are_parameters():
    # mkdocs.yml turns off griffe's own check (it reads "a, b: ..." as one unknown name);
    # this one splits such entries and checks every name.
    assert _undocumented_names("rep_align", ROOT) == []


def test_the_argument_check_finds_a_wrong_name(tmp_path):
    pkg = tmp_path / "docpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        'def f(a, b, *, c=1):\n    """Sum.\n\n    Arguments:\n        a, b: numbers.\n'
        '        d: not a parameter.\n    """\n    return a + b + c\n'
    )
    assert [s.split(": ")[-1] for s in _undocumented_names("docpkg", tmp_path)] == ["d"]
