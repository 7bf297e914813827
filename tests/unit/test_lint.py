"""`make test` is what CI runs, so it also holds the code to the project's ruff rules."""

import subprocess
import sys


def test_ruff_finds_nothing(repo_root):
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--output-format", "concise", str(repo_root)],
        cwd=repo_root, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
