"""The wheel carries the library, the TUI and the bundled data under the project's own import names."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_holds_both_packages_and_the_bundled_data(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("promptgrad-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "promptgrad/train/loop.py",
        "promptgrad/data/tasks/antonyms.jsonl",
        "promptgrad/data/licences/WORDNET_LICENSE",
        "promptgrad/data/tasks.toml",
        "promptgrad/learners/search/gcg.py",
        "promptgrad_tui/app.py",
        "promptgrad_tui/promptgrad.tcss",
        "promptgrad_tui/widgets/loss_chart.py",
    ):
        assert expected in names, expected
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"promptgrad", "promptgrad_tui"}  # never generic names such as core or tui
