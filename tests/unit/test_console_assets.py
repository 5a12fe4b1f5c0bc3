"""The console's files: vendored ones exactly as recorded, the whole under its size budget,
and nothing that the Content-Security-Policy would refuse or that would leave the origin."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from keystead.console import serve

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 300 * 1024  # the console's assets before compression


def console_files() -> list[Path]:
    return sorted(p for p in serve.CONSOLE.rglob("*") if p.is_file())


def test_vendored_files_match_their_recorded_sha256() -> None:
    """`python tools/vendor_assets.py check`: every vendored file is the one named in
    vendor.json (package, version, sha256), so a refresh is the only way to change one."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "vendor_assets.py"), "check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_console_assets_total_under_300_kb() -> None:
    sizes = {str(p.relative_to(serve.CONSOLE)): p.stat().st_size for p in console_files()}
    total = sum(sizes.values())
    assert total < BUDGET, f"{total} bytes: {sorted(sizes.items(), key=lambda i: -i[1])[:5]}"


def test_no_file_loads_anything_from_elsewhere_or_runs_inline_script() -> None:
    for path in console_files():
        if path.suffix not in (".html", ".js", ".css"):
            continue
        text = path.read_text()
        if "vendor" not in path.parts:
            # Entra's URLs appear as hints and placeholders; nothing is loaded from one.
            loads = r"""((src|href)=["']|import[^;]*["']|url\(\s*["']?|fetch\(\s*["'`])https?:"""
            assert re.search(loads, text) is None, path
            assert "eval(" not in text, path
            assert "new Function" not in text, path
        if path.suffix == ".html":
            assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text) is None, path
            assert re.search(r"\son[a-z]+=", text) is None, path  # no inline handler
            assert "style=" not in text, path


def test_every_module_the_console_imports_is_there() -> None:
    """A missing or misspelt module would only show in a browser: check the import graph."""
    for path in serve.CONSOLE.rglob("*.js"):
        if "vendor" in path.parts:
            continue
        for target in re.findall(r'from\s+"(\.{1,2}/[^"]+)"', path.read_text()):
            assert (path.parent / target).resolve().is_file(), f"{path.name} imports {target}"
