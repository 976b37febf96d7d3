"""environment.yml names the same pinned dependencies as pyproject.toml."""

from __future__ import annotations

import tomllib

import yaml

from helpers.config import PROJECT_ROOT


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    pinned = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    environment = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pip = next(entry["pip"] for entry in environment["dependencies"] if isinstance(entry, dict))
    assert {line for line in pip if not line.startswith("-")} == pinned
    assert "python=3.11" in environment["dependencies"]
