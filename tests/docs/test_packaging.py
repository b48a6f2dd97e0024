"""Issue #34 item 13: a version to ask for, a license, stated in the package's metadata."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_package_has_a_version_from_its_metadata():
    import runtime

    assert runtime.__version__ == PROJECT["version"]


@pytest.mark.parametrize("module", ["runtime.predict", "runtime.serve"])
def test_version_option_of_the_cli_and_the_server(module):
    result = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == PROJECT["version"]


def test_a_license_file_and_license_metadata():
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
