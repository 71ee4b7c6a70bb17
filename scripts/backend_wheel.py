"""Build the pure-Python ``stillflow`` backend wheel from this checkout with the standard library only.

The extension zip carries this wheel as a data file (``backend/stillflow-<version>-py3-none-any.whl``),
and the offline backend bundle names it as the package to install. Building it needs no network and
no build backend (any Python 3.11 runs it), and the same checkout always gives the same bytes.

Usage::

    python scripts/backend_wheel.py [--out build/backend-wheel]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import re
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_STAMP = (2026, 1, 1, 0, 0, 0)
"""Fixed time of every entry, so a rebuild of the same checkout is byte-identical."""


class WheelError(Exception):
    """The checkout cannot give a wheel; the message says why."""


def _project(repo: Path) -> dict:
    """The [project] table of pyproject.toml, checked against the package's own __version__."""
    project = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    init = (repo / "backend" / "stillflow" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"', init, re.MULTILINE)
    if found is None or found.group(1) != project["version"]:
        raise WheelError(f"backend/stillflow/__init__.py says version {found.group(1) if found else '?'} but "
                         f"pyproject.toml says {project['version']}; make them agree")
    return project


def _metadata(project: dict) -> str:
    """The wheel's METADATA text (core metadata 2.1)."""
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}",
             f"Summary: {project.get('description', '')}", f"License: {project.get('license', '')}",
             f"Requires-Python: {project.get('requires-python', '>=3.11')}"]
    lines += [f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])]
    for extra, deps in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {dep}; extra == "{extra}"' for dep in deps]
    return "\n".join(lines) + "\n"


def _record_line(name: str, data: bytes) -> str:
    """One RECORD row: path, urlsafe sha256 without padding, size."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(out_dir: Path, repo: Path = REPO) -> Path:
    """Write ``stillflow-<version>-py3-none-any.whl`` into ``out_dir``; its path."""
    project = _project(repo)
    name, version = project["name"], project["version"]
    info = f"{name}-{version}.dist-info"
    files: list[tuple[str, bytes]] = []
    package = repo / "backend" / "stillflow"
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" not in path.parts:
            files.append((path.relative_to(package.parent).as_posix(), path.read_bytes()))
    scripts = project.get("scripts", {})
    files.append((f"{info}/METADATA", _metadata(project).encode("utf-8")))
    files.append((f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: stillflow backend_wheel.py\n"
                                   b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    files.append((f"{info}/top_level.txt", b"stillflow\n"))
    if scripts:
        entry = "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())
        files.append((f"{info}/entry_points.txt", entry.encode("utf-8")))
    record = "\n".join(_record_line(n, d) for n, d in files) + f"\n{info}/RECORD,,\n"
    files.append((f"{info}/RECORD", record.encode("utf-8")))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}-{version}-py3-none-any.whl"
    partial = target.with_suffix(".whl.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as wheel:
        for entry_name, data in files:
            entry = zipfile.ZipInfo(entry_name, date_time=_STAMP)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(entry, data)
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: print the wheel's path; status 1 with one line on failure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "backend-wheel", help="output folder")
    args = parser.parse_args(argv)
    try:
        print(build_wheel(args.out.resolve()))
    except WheelError as error:
        print(f"backend_wheel: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
