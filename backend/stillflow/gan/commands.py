"""``stillflow models check DIR``: what the models folder holds and what each option needs."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, TextIO

from .models_dir import describe_models, require_models_dir

__all__ = ["add_parsers", "run_check", "format_report"]

log = logging.getLogger(__name__)


def add_parsers(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``models`` command with its ``check`` subcommand."""
    models = subparsers.add_parser("models", help="inspect the folder of model weights (stylegan engine, auto motion/mask)")
    actions = models.add_subparsers(dest="models_command", metavar="{check}", required=True)
    check = actions.add_parser("check", help="list present and missing weight files and what each option needs")
    check.add_argument("models", metavar="DIR", help="the models folder (the one passed as --models)")
    check.add_argument("--json", action="store_true", help="print the description as JSON")
    check.set_defaults(func=run_check)


def format_report(description: dict[str, Any]) -> str:
    """Human-readable text of a describe_models() result."""
    lines = [f"models folder: {description['path']}"]
    for key, info in description["files"].items():
        where = info["path"] if info["present"] else f"missing, expected {info['expected']}"
        lines.append(f"  [{'x' if info['present'] else ' '}] {key:<12} {info['what']}: {where}")
    lines.append("options:")
    for name, info in description["options"].items():
        state = "available" if info["available"] else "unavailable, missing " + ", ".join(info["missing"])
        if info["available"] and info["mode"]:
            state += f" (inversion by {info['mode']})"
        lines.append(f"  {name:<18} {state}")
    missing = [info for info in description["files"].values() if not info["present"]]
    if missing:
        lines.append("where to get missing files:")
        lines += [f"  {info['expected']}: {info['source']}" for info in missing]
    return "\n".join(lines)


def run_check(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print the models folder report; 0 when the folder exists (ModelMissing otherwise)."""
    require_models_dir(args.models, "models check")
    description = describe_models(args.models)
    stream = out if out is not None else sys.stdout
    if getattr(args, "json", False):
        stream.write(json.dumps(description, indent=2) + "\n")
    else:
        stream.write(format_report(description) + "\n")
    return 0
