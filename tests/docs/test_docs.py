"""The documentation builds with Sphinx, warnings as errors, and its example code comes from tested files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


def test_sphinx_build_has_no_warnings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    index = (tmp_path / "html" / "index.html").read_text()
    for page in ("connection", "operators", "sensors", "fsspec", "emulator", "cli", "security", "troubleshooting"):
        assert f'href="{page}.html"' in index, page


def test_every_page_is_reachable_from_the_index():
    index = (DOCS / "index.md").read_text()
    toctree = re.search(r"```\{toctree\}(.*?)```", index, re.S)
    assert toctree is not None
    listed = {line.strip() for line in toctree.group(1).splitlines() if line.strip() and not line.startswith(":")}
    pages = {path.stem for path in DOCS.glob("*.md")} - {"index"}
    assert pages == listed
