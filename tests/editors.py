"""Where the e2e tests find real editors: Neovim 0.12 (`"nvim-0.12"`), Helix (`"hx"`) and Emacs 30
(`"emacs"`), as installed by ``python scripts/install_editors.py`` into its cache (the wrappers in
``<cache>/bin``), or a binary of the right version on PATH.

    path = require_editor("nvim-0.12")   # the path, or skip the test with skip_reason()

With ``TANDEM_REQUIRE_EDITORS=1`` a missing editor fails the test instead, unless the installer recorded
that the mirror was unreachable (then there was nothing to install from, and the test is skipped)."""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import sys
from pathlib import Path

REQUIRE_ENV = "TANDEM_REQUIRE_EDITORS"
INSTALL = "python scripts/install_editors.py"
_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install_editors.py"


def _load_installer():
    spec = importlib.util.spec_from_file_location("install_editors", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("install_editors", module)
    spec.loader.exec_module(module)
    return module


installer = sys.modules.get("install_editors") or _load_installer()

# test name -> (installer's editor, what the error messages call it, the command looked for on PATH)
EDITORS = {
    "nvim-0.12": ("nvim", "Neovim 0.12", "nvim"),
    "hx": ("hx", "Helix", "hx"),
    "emacs": ("emacs", "Emacs 30", "emacs"),
}


def _editor(name: str):
    if name not in EDITORS:
        raise KeyError(f"unknown editor {name!r}: one of {', '.join(EDITORS)}")
    return installer.EDITORS[EDITORS[name][0]]


@functools.cache
def _system_binary(name: str) -> str | None:
    editor = _editor(name)
    found = shutil.which(EDITORS[name][2])
    if found and installer.version_ok(installer.version_of(found), editor.minimum, editor.exact):
        return found
    return None


def editor_path(name: str) -> str | None:
    """The editor's executable (the cache's wrapper, else one of the right version on PATH), or None."""
    editor = _editor(name)
    cache = installer.default_cache()
    if installer.is_ready(cache, editor):
        return str(cache / "bin" / editor.wrapper)
    return _system_binary(name)


def _state(name: str) -> dict:
    return installer.read_state(installer.default_cache(), EDITORS[name][0])


def skip_reason(name: str) -> str:
    """Why the editor is missing: the installer's recorded reason, or how to install it."""
    _editor(name)
    label = EDITORS[name][1]
    state = _state(name)
    if state.get("status") in ("unreachable", "error") and state.get("reason"):
        return f"{label} not installed: {state['reason']}"
    return f"{label} not installed: run {INSTALL}"


def mirror_unreachable(name: str) -> bool:
    return _state(name).get("status") == "unreachable"


def require_editor(name: str) -> str:
    """The editor's path; else skip the test, or fail it when TANDEM_REQUIRE_EDITORS=1 (unless the installer
    found the mirror unreachable)."""
    import pytest

    path = editor_path(name)
    if path:
        return path
    reason = skip_reason(name)
    if os.environ.get(REQUIRE_ENV) == "1" and not mirror_unreachable(name):
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
    pytest.skip(reason)
