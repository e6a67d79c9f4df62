"""Sphinx configuration: Markdown pages (MyST), examples included from tested files, warnings are errors."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airflow_provider_onedrive import __version__  # noqa: E402

project = "airflow-provider-onedrive"
author = "airflow-provider-onedrive authors"
release = version = __version__
extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "README.md"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
html_theme = "furo"
html_title = f"airflow-provider-onedrive {__version__}"
