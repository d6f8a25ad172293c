"""Regenerate contributes.configuration in clients/vscode/package.json from the server's SETTINGS_SCHEMA.

    python clients/vscode/scripts/sync_settings.py          # rewrite package.json
    python clients/vscode/scripts/sync_settings.py --check  # exit 1 if it is out of date

package.json is what VS Code reads; this keeps it equal to config.SETTINGS_SCHEMA (same keys, types,
defaults, enums, bounds, descriptions). tests/unit/test_vscode_settings.py checks the result.
The extension's own settings (serverPath, pythonPath, trace.server) are kept as they are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tandem_lsp.config import SETTINGS_SCHEMA

PACKAGE_JSON = Path(__file__).resolve().parents[1] / "package.json"
CLIENT_ONLY = ("tandem.serverPath", "tandem.pythonPath", "tandem.trace.server")


def properties(old: dict) -> dict:
    props = {key: old[key] for key in CLIENT_ONLY if key in old}
    for spec in SETTINGS_SCHEMA:
        entry: dict = {"type": list(spec.type) if isinstance(spec.type, tuple) else spec.type, "default": spec.default}
        if spec.enum:
            entry["enum"] = list(spec.enum)
        if spec.minimum is not None:
            entry["minimum"] = spec.minimum
        if spec.maximum is not None:
            entry["maximum"] = spec.maximum
        if entry["type"] == "array":
            entry["items"] = {"type": "string"}
        entry["description"] = spec.description
        props[f"tandem.{spec.key}"] = entry
    return props


def main() -> int:
    pkg = json.loads(PACKAGE_JSON.read_text(encoding="utf-8"))
    conf = pkg["contributes"]["configuration"]
    new = properties(conf["properties"])
    if "--check" in sys.argv[1:]:
        if new != conf["properties"]:
            print(f"{PACKAGE_JSON} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    conf["properties"] = new
    PACKAGE_JSON.write_text(json.dumps(pkg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
