"""The code in docs/operators.md, docs/sensors.md and docs/events.md is the marked code of the tested example
DAGs, verbatim.

Each snippet sits between ``<!-- [START name] example_dags/file.py -->`` and ``<!-- [END name] -->`` and must equal
the (dedented) lines between ``# [START name]`` and ``# [END name]`` in that file.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = ("docs/operators.md", "docs/sensors.md", "docs/events.md")
SNIPPET = re.compile(
    r"<!-- \[START (?P<name>\w+)\] (?P<path>\S+) -->\n```python\n(?P<code>.*?)\n```\n<!-- \[END (?P=name)\] -->",
    re.S,
)


def marked_region(path: Path, name: str) -> str:
    lines = path.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == f"# [START {name}]"]
    ends = [i for i, line in enumerate(lines) if line.strip() == f"# [END {name}]"]
    assert len(starts) == 1 and len(ends) == 1, f"{path.name}: marker {name} must appear exactly once"
    return textwrap.dedent("\n".join(lines[starts[0] + 1 : ends[0]])).strip("\n")


def snippets() -> list[tuple[str, str, str, str]]:
    found = []
    for doc in DOCS:
        text = (REPO / doc).read_text()
        matches = list(SNIPPET.finditer(text))
        assert len(matches) == text.count("<!-- [START "), f"{doc}: a START marker without a matching snippet"
        found += [(doc, m["name"], m["path"], m["code"]) for m in matches]
    return found


@pytest.mark.parametrize(("doc", "name", "path", "code"), snippets(), ids=lambda v: v if "\n" not in v else "")
def test_doc_snippet_equals_the_tested_dag_code(doc, name, path, code):
    assert code == marked_region(REPO / path, name), f"{doc} snippet {name} drifted from {path}"


def test_every_marked_region_of_our_example_dags_is_documented():
    documented = {(path, name) for _, name, path, _ in snippets()}
    for dag in sorted((REPO / "example_dags").glob("example_onedrive_*.py")):
        if dag.name == "example_onedrive_fsspec.py":  # documented in docs/fsspec.md
            continue
        names = re.findall(r"# \[START (\w+)\]", dag.read_text())
        for name in names:
            assert (f"example_dags/{dag.name}", name) in documented, f"{dag.name}: {name} is not in the docs"
