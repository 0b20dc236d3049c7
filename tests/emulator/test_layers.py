"""The emulator's HTTP layer and its helpers use the Emulator's public API only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "kfadmin" / "emulator"
# The names these modules give the Emulator they are handed.
EMULATOR_NAMES = {"emu", "emulator"}


def private_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.name}:{node.lineno} {node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in EMULATOR_NAMES
        and node.attr.startswith("_")
    ]


@pytest.mark.parametrize("module", ["api.py", "server.py", "callbacks.py", "demo.py"])
def test_the_module_calls_no_private_emulator_method(module):
    assert private_uses(PACKAGE / module) == []


def test_the_check_sees_a_private_call(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f(emu):\n    return emu._oas\n", encoding="utf-8")
    assert private_uses(sample) == ["sample.py:2 emu._oas"]
