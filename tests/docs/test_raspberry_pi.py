"""docs/raspberry-pi.md (issue #34 item 12): serving one's own bundle, and the /tmp trap."""

import re
import subprocess
import sys
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "raspberry-pi.md"


def test_the_guide_serves_one_s_own_bundle_from_a_folder_the_service_can_read():
    text = GUIDE.read_text()
    assert "## Serve your own model" in text
    commands = "\n".join(re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL))
    assert "--model /opt/imdb-sentiment/model" in commands
    assert "chmod -R a+rX /opt/imdb-sentiment/model" in commands


def test_the_guide_s_unit_edit_gives_the_server_the_model(tmp_path):
    """The sed line of the guide, run on the unit the package prints, puts --model in ExecStart."""
    text = GUIDE.read_text()
    (sed,) = [line for line in text.splitlines() if line.startswith("sed ") and "ExecStart" in line]
    unit = subprocess.run([sys.executable, "-m", "runtime.service"], capture_output=True, text=True, check=True)
    (tmp_path / "imdb-sentiment.service").write_text(unit.stdout)
    subprocess.run(sed, shell=True, cwd=tmp_path, check=True)
    (exec_start,) = [
        line for line in (tmp_path / "imdb-sentiment.service").read_text().splitlines() if line.startswith("ExecStart=")
    ]
    assert exec_start.endswith("--model /opt/imdb-sentiment/model")


def test_the_guide_warns_against_a_venv_or_model_under_tmp():
    text = " ".join(GUIDE.read_text().split())
    assert "PrivateTmp=yes" in text and "not under /tmp" in text
