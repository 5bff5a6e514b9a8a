"""The docs site: `mkdocs build --strict` (warnings are errors) and its pages in chromium."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from browser import browser_page, save_shot, static_server

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = str(Path(sys.executable).with_name("mkdocs"))
PAGES = {  # page -> text its main heading holds
    "index.html": "soilsuite",
    "install.html": "Install",
    "quickstart.html": "Quick start",
    "gallery.html": "Products at a glance",
    "viewer.html": "Web map",
    "science.html": "The science",
    "reference/cli.html": "Command-line reference",
    "reference/api.html": "Python API",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not Path(MKDOCS).exists():
        pytest.skip("mkdocs not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    res = subprocess.run([MKDOCS, "build", "--strict", "--site-dir", str(out)], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return out


def test_site_builds_strict_with_every_page(site):
    for page in PAGES:
        assert (site / page).is_file(), page
    for md in (ROOT / "docs").glob("*.md"):  # every page is built, listed in the nav or not
        assert (site / md.with_suffix(".html").name).is_file(), md.name
    cli = (site / "reference" / "cli.html").read_text()
    for cmd in ("soilsuite composite", "soilsuite serve", "soilsuite dsm train", "--log-json", "--threshold"):
        assert cmd in cli, cmd
    api = (site / "reference" / "api.html").read_text()
    assert "create_app" in api and "open_products" in api and "Parameters" in api
    for png in ("img/products/SRC_MEAN.png", "img/products/MASK.png", "img/viewer.png"):
        assert (site / png).is_file(), png


def test_cli_reference_matches_the_cli():
    """Every command of the app is in the generated page, with its options."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from mkdocs_hooks import cli_reference
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    md = cli_reference()
    for cmd in ("composite", "serve", "simulate", "demo", "export-force"):
        assert f"## `soilsuite {cmd}`" in md
    assert "| `--port` | `<int>` | `8765` | TCP port" in md
    assert md.index("**Advanced**") > md.index("## `soilsuite composite`")


def test_docs_pages_render_in_chromium(site, tmp_path):
    with browser_page(width=1200, height=900) as (page, errors), static_server(site) as url:
        for rel, heading in PAGES.items():
            page.goto(f"{url}/{rel}")
            page.wait_for_load_state("networkidle")
            h1 = page.locator("article h1").first.inner_text()
            assert heading in h1, (rel, h1)
            broken = page.evaluate("Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0)"
                                   ".map(i => i.src)")
            assert broken == [], (rel, broken)
            if rel in ("index.html", "gallery.html", "reference/cli.html", "viewer.html"):
                save_shot(page, tmp_path, "docs_" + rel.replace("/", "_").replace(".html", ".png"))
        assert errors == []
