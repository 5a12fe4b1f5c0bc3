"""Vendored front-end files: fetch them from the npm registry, or check them.

Every file the console, the API docs page or the browser tests use from another project
is listed in ``src/keystead/console/vendor.json`` with its package, version, path in the
package, license and sha256. The one command that refreshes them all (after editing a
version there) is::

    python tools/vendor_assets.py refresh

It runs ``npm pack PACKAGE@VERSION`` for each package, copies the listed file out of the
tarball and records the new sha256. ``python tools/vendor_assets.py check`` (also run by
the test suite, without network) verifies that the committed files are exactly those.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "src" / "keystead" / "console" / "vendor.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load() -> dict[str, list[dict[str, str]]]:
    manifest: dict[str, list[dict[str, str]]] = json.loads(MANIFEST.read_text())
    return manifest


def check() -> list[str]:
    """Problems with the committed files (empty: all match the manifest)."""
    problems = []
    for entry in load()["files"]:
        target = ROOT / entry["dest"]
        if not target.is_file():
            problems.append(f"{entry['dest']}: missing")
        elif sha256(target) != entry["sha256"]:
            problems.append(f"{entry['dest']}: sha256 differs from {MANIFEST.name}")
    return problems


def refresh() -> None:
    manifest = load()
    with tempfile.TemporaryDirectory() as tmp:
        unpacked: dict[str, Path] = {}
        for entry in manifest["files"]:
            spec = f"{entry['package']}@{entry['version']}"
            if spec not in unpacked:
                out = subprocess.run(
                    ["npm", "pack", spec, "--silent", "--pack-destination", tmp],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.strip().splitlines()[-1]
                folder = Path(tmp) / spec.replace("/", "_")
                with tarfile.open(Path(tmp) / out) as tar:
                    tar.extractall(folder, filter="data")
                unpacked[spec] = folder / "package"
            source = unpacked[spec] / entry["file"]
            target = ROOT / entry["dest"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            entry["sha256"] = sha256(target)
            print(f"{entry['dest']}  {spec}  {entry['sha256']}")
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "check"
    if command == "refresh":
        refresh()
        return 0
    if command == "check":
        problems = check()
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
