"""kfadmin.wechat is standalone: it imports nothing from Django or the kfadmin apps."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import kfadmin.wechat

PACKAGE_DIR = Path(kfadmin.wechat.__file__).parent
FORBIDDEN = ("django", "accounts", "sessions_app", "messaging", "celery", "kfadmin")


def imported_modules(source: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_module_of_the_package_imports_django_or_the_apps():
    offenders = {
        f"{source.name}: {name}"
        for source in PACKAGE_DIR.glob("*.py")
        for name in imported_modules(source)
        if name.split(".")[0] in FORBIDDEN
    }

    assert offenders == set()


def test_the_package_imports_and_works_without_django_loaded():
    # Load kfadmin.wechat without running kfadmin/__init__.py (which starts Celery
    # and so Django), then check no Django module came along.
    script = f"""
import sys, types
parent = types.ModuleType("kfadmin")
parent.__path__ = [{str(PACKAGE_DIR.parent)!r}]
sys.modules["kfadmin"] = parent
import kfadmin.wechat as wechat
crypto = wechat.WeChatCrypto("t", "A" * 43, "wx1")
assert crypto.decrypt(crypto.encrypt("ok")) == b"ok"
wechat.WeChatClient("wx1", "secret")
leaked = sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN[:-1]!r})
print(",".join(leaked))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_public_api_is_re_exported():
    for name in kfadmin.wechat.__all__:
        assert hasattr(kfadmin.wechat, name), name
