"""Read an install's log as it grows: which step, which package, how far, and one line when it fails.

No ``bpy`` module use. The log holds pip's own output (``--progress-bar off``: one line per
package) and the worker's ``@@stillflow`` markers (``core.install_worker``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["InstallProgress", "failure_line"]

_PHASES = {"unpack": (0.0, 0.04, "unpacking the bundle"), "clone": (0.0, 0.08, "copying the environment"),
           "venv": (0.04, 0.08, "making the environment"), "pip": (0.08, 0.95, "installing"),
           "verify": (0.95, 1.0, "checking the backend"), "done": (1.0, 1.0, "done")}
"""Share of the bar each step fills (start, end) and its words."""

_RESOLVED_SHARE = 0.25
"""Part of the pip step spent finding packages; the rest is writing them (followed by bytes written)."""

_PACKAGE = re.compile(r"^(?:Processing|Collecting|Downloading|Using cached)\s+(?:\S*/)?([A-Za-z0-9_.\-]+?)"
                      r"(?:[-=<>!~ \[(]|\.whl|$)")
_INSTALLING = re.compile(r"^Installing collected packages: (.*)$")
_NETWORK = ("NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
            "Name or service not known", "ConnectTimeout", "ProxyError", "Network is unreachable",
            "nodename nor servname", "getaddrinfo failed", "No route to host")
_NO_MATCH = re.compile(r"No matching distribution found for ([^\s;]+)")


@dataclass
class InstallProgress:
    """What the log said so far; ``feed`` the new lines, read ``fraction`` and ``label``."""

    expected_packages: int = 20
    expected_bytes: int = 1
    phase: str = ""
    package: str = ""
    seen: list[str] = field(default_factory=list)
    installing: list[str] = field(default_factory=list)
    version: str = ""
    written: int = 0
    _partial: str = ""

    def feed(self, text: str) -> None:
        """Take new log text (may end mid-line; the rest waits for the next feed)."""
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line.strip())

    def _line(self, line: str) -> None:
        """Update from one complete log line."""
        if line.startswith("@@stillflow "):
            _, key, value = (line.split(" ", 2) + [""])[:3]
            if key == "phase":
                self.phase = value
            elif key == "version":
                self.version = value
            return
        if (installing := _INSTALLING.match(line)) is not None:
            self.installing = [name.strip() for name in installing.group(1).split(",") if name.strip()]
            self.package = ""
            return
        if (found := _PACKAGE.match(line)) is not None:
            name = found.group(1).lower().replace("_", "-")
            self.package = name
            if name not in self.seen:
                self.seen.append(name)

    @property
    def fraction(self) -> float:
        """How far the install is, 0..1 (never falls back)."""
        start, end, _ = _PHASES.get(self.phase, (0.0, 0.0, ""))
        if self.phase != "pip":
            return start
        if not self.installing:
            share = min(len(self.seen) / max(self.expected_packages, 1), 1.0) * _RESOLVED_SHARE
        else:
            share = _RESOLVED_SHARE + min(self.written / max(self.expected_bytes, 1), 1.0) * (1 - _RESOLVED_SHARE)
        return start + (end - start) * share

    @property
    def label(self) -> str:
        """Where it stands, for the preferences and the status bar: 'installing torch (2/20) · 410 MB'."""
        words = _PHASES.get(self.phase, (0, 0, "starting"))[2]
        if self.phase == "pip":
            if self.installing:
                words = f"writing {len(self.installing)} packages"
            elif self.package:
                words = f"installing {self.package} ({len(self.seen)}/{max(self.expected_packages, len(self.seen))})"
        megabytes = f" · {self.written / 1e6:.0f} MB" if self.written >= 1e6 else ""
        return f"{words}{megabytes}"


def failure_line(log_text: str, *, offline: bool, platform: str, python: str) -> str:
    """One line saying why an install failed, from its log (without the log's path)."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    if any("No space left on device" in line or "Errno 28" in line for line in lines):
        return "the disk ran out of space while installing; free some space and press Install Backend again"
    missing = [m.group(1) for line in lines if (m := _NO_MATCH.search(line))]
    if missing and offline:
        return (f"the backend bundle has no {missing[-1]} for this computer ({platform}, Python {python}); use "
                f"the bundle made for {platform} (scripts/build_extension.py --backend-bundle)")
    if any(marker in line for line in lines for marker in _NETWORK):
        return ("no network: pip could not reach the package index; check the connection (or a proxy), or "
                "install from an offline backend bundle")
    if missing:
        return (f"the package index has no build of {missing[-1]} for this computer ({platform}, Python {python}); "
                "try an extra index URL that has one, or an offline backend bundle")
    own = [line.split(" ", 2)[2] for line in lines if line.startswith("@@stillflow error ")]
    if own:
        return f"the install stopped: {own[-1]}"
    errors = [line for line in lines if line.startswith("ERROR") or "Error" in line.split(":")[0]]
    return f"the install failed: {(errors or lines or ['no output'])[-1]}"
