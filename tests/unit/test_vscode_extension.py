"""The VS Code extension's own checks (type-check, bundle, node:test unit tests), run from pytest so
that one command tests everything. Needs `npm ci` in clients/vscode (done by .ci/run)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

EXTENSION = Path(__file__).resolve().parents[2] / "clients" / "vscode"


@pytest.mark.skipif(
    shutil.which("npm") is None or not (EXTENSION / "node_modules").is_dir(),
    reason="run `npm ci` in clients/vscode first (.ci/run does)",
)
def test_extension_typechecks_bundles_and_passes_its_unit_tests():
    out = subprocess.run(["npm", "test", "--silent"], cwd=EXTENSION, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "# fail 0" in out.stdout
