"""The ``stillflow`` command: ``render`` here, other subcommands from their own modules.

Errors become one stderr line and an exit status (StillflowError.exit_code); only this
module prints.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any, Sequence, TextIO

from . import __version__
from .errors import Cancelled, InputError, StillflowError
from .options import (ARROW_PX_PER_SPEED, AUTO_MODES, DETAIL_MODES, ENGINES, FRAME_FORMATS, INFLOW_MODES, MotionSpec,
                      Region, RenderOptions, option_help)
from .progress import LONG_RENDER_S, Pace, Progress, format_duration
from .warmup import MESSAGE as ENGINE_MESSAGE, STAGE as ENGINE_STAGE

__all__ = ["main", "build_parser", "add_render_arguments", "add_option_arguments", "given_options", "default_out_dir",
           "options_from_args", "regions_from_args", "ProgressBar"]

log = logging.getLogger(__name__)

_SUBCOMMAND_MODULES = ("stillflow.service.commands", "stillflow.gan.commands", "stillflow.batch.commands",
                       "stillflow.warmup")
_CHOICES = {"format": FRAME_FORMATS, "engine": ENGINES, "detail": DETAIL_MODES, "inflow": INFLOW_MODES,
            "auto_mode": AUTO_MODES}


def _numbers(text: str, count: int, what: str) -> tuple[float, ...]:
    """Parse ``count`` comma-separated numbers or raise an argparse error naming ``what``."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise argparse.ArgumentTypeError(f"{what} needs {count} comma-separated numbers, got {text!r}")
    return values


def _positive_px(text: str) -> int:
    """A side length of at least 16 px, or an argparse error."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 16:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, at least 16, got {text!r}")
    return value


def default_out_dir(image: str | Path) -> Path:
    """Where a render of ``image`` goes without --out: IMAGE_loop beside the image."""
    image = Path(image)
    return image.with_name(image.stem + "_loop")


def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    """Add IMAGE, --out, the inputs and every RenderOptions field (help and units from the dataclass)."""
    parser.add_argument("image", metavar="IMAGE", help="the still: PNG, JPEG or EXR, RGB or RGBA")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: IMAGE_loop beside the image)")
    inputs = parser.add_argument_group("inputs")
    inputs.add_argument("--mask", metavar="FILE",
                        help="grayscale image, white = animate (the image's aspect ratio; resized to its size); "
                             "'auto' = predict it (needs --models)")
    inputs.add_argument("--importance", metavar="FILE",
                        help="grayscale importance map for softmax splatting (white wins where particles meet)")
    motion = parser.add_argument_group("motion source (one of)")
    motion.add_argument("--hint", action="append", default=[], metavar="X0,Y0,X1,Y1",
                        type=lambda s: _numbers(s, 4, "--hint"),
                        help=f"an arrow in image pixels; repeatable. {ARROW_PX_PER_SPEED:g} px of arrow = 1 px/frame")
    motion.add_argument("--anchor", action="append", default=[], metavar="X,Y",
                        type=lambda s: _numbers(s, 2, "--anchor"), help="pin a point to zero motion; repeatable")
    motion.add_argument("--anchor-radius", type=float, metavar="PX", help="radius of an anchor's pin (px)")
    motion.add_argument("--motion", metavar="FILE",
                        help="StyleCineGAN .npy motion, (1,2,h,w) or (2,h,w) float32 px/frame at width w; "
                             "'auto' = predict it from the image (needs --models)")
    motion.add_argument("--motion-from-clip", metavar="PATH",
                        help="video file or folder of frames (static camera): averaged DIS optical flow")
    motion.add_argument("--drift", metavar="ANGLE_DEG,SPEED", type=lambda s: _numbers(s, 2, "--drift"),
                        help="uniform drift: angle in degrees (0 = right, 90 = up), speed in px/frame")
    regions = parser.add_argument_group("motion regions (instead of --mask and one motion source)")
    regions.add_argument("--region", action="append", default=[], metavar="MASK:SOURCE",
                         help="a region with its own motion; repeatable. SOURCE: hints=FILE (x0,y0,x1,y1 arrows and "
                              "x,y anchors, one per line), drift=ANGLE,SPEED, sway=AMP_PX,CYCLES,ANGLE, "
                              "shimmer=AMP_PX,CYCLES, motion=FILE.npy or clip=PATH; add :speed=S, or a sway/shimmer "
                              "on top of a flow (MASK:drift=0,1:shimmer=1,2)")
    regions.add_argument("--regions", metavar="FILE.json",
                         help="a region file: a JSON list of {mask, motion, speed} (docs/regions.md)")
    add_option_arguments(parser)
    outputs = parser.add_argument_group("outputs")
    outputs.add_argument("--video", metavar="FILE", help="also encode .mp4 (H.264), .webm (VP9) or .gif")


def add_option_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every RenderOptions field as a flag (help and units from the dataclass; unset = None)."""
    render = parser.add_argument_group("render options")
    for spec in dataclasses.fields(RenderOptions):
        text, unit = option_help(spec.name)
        flag = "--" + spec.name.replace("_", "-")
        default = spec.default
        help_text = f"{text} [{unit}] (default: {default})" if unit else f"{text} (default: {default})"
        if isinstance(default, bool):
            render.add_argument(flag, dest=spec.name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        else:
            kind = type(default) if default is not None else str
            render.add_argument(flag, dest=spec.name, type=kind, default=None, metavar=spec.name.upper(),
                                choices=_CHOICES.get(spec.name), help=help_text)


def given_options(args: argparse.Namespace) -> dict[str, object]:
    """The RenderOptions fields set on the command line, by name."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(RenderOptions)
            if getattr(args, f.name, None) is not None}


def options_from_args(args: argparse.Namespace) -> tuple[RenderOptions, MotionSpec]:
    """RenderOptions and MotionSpec from parsed arguments (unset options keep their defaults)."""
    options = RenderOptions(**given_options(args)).validate()
    sources = [name for name, value in (("--hint", args.hint), ("--motion", args.motion),
                                        ("--motion-from-clip", args.motion_from_clip), ("--drift", args.drift))
               if value]
    if getattr(args, "region", None) or getattr(args, "regions", None):
        if sources or args.mask or args.anchor:
            extra = sources + ["--mask"] * bool(args.mask) + ["--anchor"] * bool(args.anchor)
            raise InputError(f"--region/--regions replace --mask and the motion source, got also {' and '.join(extra)}",
                             hint="give each region its own mask and motion")
        return options, MotionSpec()
    if len(sources) > 1:
        raise InputError(f"choose one motion source, got {' and '.join(sources)}")
    if args.anchor and not args.hint:
        raise InputError("--anchor pins the field made from arrows; add at least one --hint")
    if args.hint:
        motion = MotionSpec(kind="hints", hints=tuple(args.hint), anchors=tuple(args.anchor),
                            anchor_radius=args.anchor_radius)
    elif args.motion == "auto":
        motion = MotionSpec(kind="auto")
    elif args.motion:
        motion = MotionSpec(kind="file", path=args.motion)
    elif args.motion_from_clip:
        motion = MotionSpec(kind="clip", path=args.motion_from_clip)
    elif args.drift:
        motion = MotionSpec(kind="drift", drift=tuple(args.drift))
    else:
        raise InputError("no motion source given",
                         hint="add --hint X0,Y0,X1,Y1, --motion FILE, --motion-from-clip PATH or --drift ANGLE,SPEED")
    return options, motion.validate()


def regions_from_args(args: argparse.Namespace) -> tuple[Region, ...] | None:
    """The regions of --region (in order) and --regions, or None when neither was given."""
    from .region_file import load_region_file, parse_region_arg

    found = [parse_region_arg(text) for text in getattr(args, "region", None) or []]
    if getattr(args, "regions", None):
        found += load_region_file(args.regions)
    return tuple(found) or None


class ProgressBar:
    """A one-line progress bar with the time left on a terminal; log lines with the time left elsewhere.

    Also says when the engine is being prepared (first run) and warns once, after the first frame,
    when the whole render will take longer than LONG_RENDER_S.
    """

    LOG_EVERY_S = 30.0
    """Seconds between log lines of one stage when there is no terminal."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.is_tty = stream.isatty()
        self._last_stage = ""
        self._logged = 0.0
        self._warned = False
        self.pace = Pace()

    def __call__(self, report: Progress) -> None:
        """Show one progress report."""
        self.pace.update(report)
        left = self.pace.left(report)
        if report.stage == ENGINE_STAGE and report.done == 0:
            self.stream.write(f"stillflow: {ENGINE_MESSAGE} compiling the CPU kernels, about a minute\n")
        if report.stage == "render" and report.done >= 1 and not self._warned and left is not None:
            self._warned = True
            whole = self.pace.elapsed("render") + left
            if whole > LONG_RENDER_S:
                each = self.pace.elapsed("render") / report.done
                self.stream.write(f"stillflow: warning: this render will take about {format_duration(whole)} "
                                  f"({report.total} frames at about {format_duration(each)} each); Ctrl-C stops it "
                                  "and writes nothing; lower --frames or downscale the image for a quicker preview\n")
        timing = f"{format_duration(self.pace.elapsed(report.stage))} so far" + (
            f", about {format_duration(left)} left" if left is not None and report.done < report.total else "")
        if not self.is_tty:
            now = self.pace.clock()
            due = now - self._logged >= self.LOG_EVERY_S
            if report.stage != self._last_stage or report.done == report.total or due:
                log.info("%s %d/%d (%s)", report.stage, report.done, report.total, timing)
                self._logged = now
            self._last_stage = report.stage
            return
        width = 30
        filled = int(width * report.done / max(1, report.total))
        self.stream.write(f"\r{report.stage:>7} [{'#' * filled}{'.' * (width - filled)}] "
                          f"{report.done}/{report.total} {timing}\x1b[K")
        if report.done >= report.total:
            self.stream.write("\n")
        self.stream.flush()
        self._last_stage = report.stage


def _run_render(args: argparse.Namespace) -> int:
    """``stillflow render``: render one still into a folder of frames."""
    from .pipeline import render

    options, motion = options_from_args(args)
    out_dir = Path(args.out) if args.out else default_out_dir(args.image)
    result = render(args.image, out_dir, mask=args.mask, motion=motion, options=options, video=args.video,
                    importance=args.importance, progress=ProgressBar(), video_max_side=args.video_max_side,
                    regions=regions_from_args(args))
    for warning in result.manifest["warnings"]:
        print(f"stillflow: warning: {warning}", file=sys.stderr)
    print(f"wrote {len(result.frame_paths)} frames to {result.out_dir}"
          + (f" and {result.video}" if result.video else ""))
    return 0


def _options_epilog() -> str:
    """Every render option with its unit and default, for ``stillflow --help``."""
    lines = ["render options (stillflow render IMAGE [options]; `stillflow render --help` has the inputs):"]
    for spec in dataclasses.fields(RenderOptions):
        text, unit = option_help(spec.name)
        flag = "--" + spec.name.replace("_", "-")
        lines.append(f"  {flag:<20} {text}" + (f" [{unit}]" if unit else "") + f" (default: {spec.default})")
    lines += ["motion sources: --hint X0,Y0,X1,Y1 (image px; "
              f"{ARROW_PX_PER_SPEED:g} px of arrow = 1 px/frame), --anchor X,Y, --motion FILE.npy (px/frame at its "
              "width), --motion-from-clip PATH, --drift ANGLE_DEG,SPEED (deg, px/frame)"]
    return "\n".join(lines)


def _add_log_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    """-v/--verbose and -q/--quiet on ``parser``."""
    parser.add_argument("-v", "--verbose", action="count", default=default, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="only errors")


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: -v/-q are accepted after the command too (unset there, the top level's hold)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _add_log_flags(self, argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="stillflow",
                                     description="Turn a still photo into a seamless looping cinemagraph.",
                                     epilog=_options_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"stillflow {__version__}")
    _add_log_flags(parser, argparse.SUPPRESS)
    parser.set_defaults(verbose=0, quiet=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    render = commands.add_parser("render", help="render a still into a looping image sequence",
                                 description="Render IMAGE (PNG, JPEG or EXR) into frame_0000.png ... and "
                                             "manifest.json in --out, written atomically.")
    add_render_arguments(render)
    render.add_argument("--video-max-side", type=_positive_px, metavar="PX",
                        help="downscale the video (not the frames) to at most PX on its longer side; e.g. 4096 "
                             "keeps an .mp4 within H.264 level 5.2, which most players need")
    render.set_defaults(func=_run_render)
    for name in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose + 1, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # SIGTERM (a farm's kill, systemd, Blender closing) ends a run like Ctrl-C: staging removed, nothing written;
    # `serve` installs its own handlers on top.
    previous = _sigterm_as_interrupt()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("stillflow: interrupted; nothing was written", file=sys.stderr)
        return Cancelled.exit_code
    except StillflowError as exc:
        print(f"stillflow: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception:
        log.exception("unexpected failure")
        print("stillflow: error: unexpected failure (see the traceback above); please report it", file=sys.stderr)
        return StillflowError.exit_code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _sigterm_as_interrupt() -> Any:
    """Make SIGTERM raise KeyboardInterrupt in the main thread; returns the previous handler (None off it)."""
    try:
        return signal.signal(signal.SIGTERM, signal.default_int_handler)
    except ValueError:  # not the main thread (main() called from a worker thread)
        return None


if __name__ == "__main__":
    sys.exit(main())
