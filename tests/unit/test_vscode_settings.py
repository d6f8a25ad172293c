"""The VS Code extension's package.json declares exactly the server's settings (config.SETTINGS_SCHEMA).

package.json is the single source for the editor side; this keeps it in step with the server's schema:
every key as ``tandem.<key>`` with the same type, default, enum and bounds, and no unknown extras.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tandem_lsp.config import SETTINGS_SCHEMA, defaults_as_dict

PACKAGE_JSON = Path(__file__).resolve().parents[2] / "clients" / "vscode" / "package.json"
CLIENT_ONLY = {"tandem.serverPath", "tandem.pythonPath", "tandem.trace.server"}


@pytest.fixture(scope="module")
def properties() -> dict:
    pkg = json.loads(PACKAGE_JSON.read_text(encoding="utf-8"))
    conf = pkg["contributes"]["configuration"]
    blocks = conf if isinstance(conf, list) else [conf]
    props: dict = {}
    for block in blocks:
        props.update(block.get("properties", {}))
    return props


def _types(t) -> set[str]:
    return set(t) if isinstance(t, (list, tuple)) else {t}


@pytest.mark.parametrize("spec", SETTINGS_SCHEMA, ids=lambda s: s.key)
def test_every_setting_is_declared_alike(spec, properties):
    prop = properties.get(f"tandem.{spec.key}")
    assert prop is not None, f"tandem.{spec.key} is missing from clients/vscode/package.json"
    assert _types(prop["type"]) == _types(spec.type)
    assert "default" in prop, f"tandem.{spec.key} has no default"
    assert prop["default"] == spec.default
    assert type(prop["default"]) is type(spec.default) or (spec.type == "number" and isinstance(prop["default"], (int, float)))
    if spec.enum:
        assert prop.get("enum") == list(spec.enum)
    else:
        assert "enum" not in prop
    if spec.minimum is not None:
        assert prop.get("minimum") == spec.minimum
    if spec.maximum is not None:
        assert prop.get("maximum") == spec.maximum
    assert prop.get("description") or prop.get("markdownDescription")


def test_no_unknown_tandem_settings(properties):
    known = {f"tandem.{spec.key}" for spec in SETTINGS_SCHEMA} | CLIENT_ONLY
    assert not {k for k in properties if k.startswith("tandem.")} - known
    assert not {k for k in properties if not k.startswith("tandem.")}, "every setting lives under tandem."


def test_defaults_form_the_servers_tree(properties):
    tree: dict = {}
    for key, prop in properties.items():
        if key in CLIENT_ONLY:
            continue
        section, name = key[len("tandem."):].split(".", 1)
        tree.setdefault(section, {})[name] = prop["default"]
    assert tree == defaults_as_dict()


def test_client_only_settings(properties):
    assert properties["tandem.serverPath"]["default"] == ""
    assert properties["tandem.pythonPath"]["default"] == "python3"
    assert properties["tandem.trace.server"]["enum"] == ["off", "messages", "verbose"]


def test_the_extension_offers_the_servers_recommended_model():
    """clients/vscode/src/models.ts pulls the model the server's catalogue recommends, which exists."""
    import re

    from tandem_lsp import models

    source = (PACKAGE_JSON.parent / "src" / "models.ts").read_text(encoding="utf-8")
    name = re.search(r"RECOMMENDED_MODEL = '([^']+)'", source).group(1)
    assert name == models.RECOMMENDED and name in models.CATALOGUE
    size = re.search(r"RECOMMENDED_SIZE = '([\d.]+) GB'", source).group(1)
    assert abs(float(size) * 1e9 - models.CATALOGUE[name].size) < 0.1e9
    commands = {c["command"] for c in json.loads(PACKAGE_JSON.read_text())["contributes"]["commands"]}
    assert "tandem.vscode.pullModel" in commands
