"""``stillflow batch SOURCE --out DIR``: render a folder of stills or a manifest, resumably (CLI: prints here)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..options import MotionSpec
from .items import VIDEO_FORMATS

__all__ = ["add_parsers", "run_batch_command"]

log = logging.getLogger(__name__)


def add_parsers(subparsers: Any) -> None:
    """Add ``batch`` to the ``stillflow`` command."""
    from ..cli import _numbers, add_option_arguments

    parser = subparsers.add_parser(
        "batch", help="render many stills (a folder or a JSON/CSV manifest) resumably, locally or on Ray",
        description="Render every still of SOURCE into DIR/<name>/ (as `stillflow render` writes it). Items whose "
                    "result exists with the same inputs and options are skipped; a failing item is recorded in "
                    "DIR/batch.json and the batch goes on; Ctrl+C or SIGTERM stops cleanly and a rerun continues. "
                    "Exit status: 0 all done or skipped, 1 some item failed, 2 bad arguments or source, "
                    "4 the Ray cluster went away, 130 interrupted.")
    parser.add_argument("source", metavar="SOURCE",
                        help="folder of stills (NAME_mask.png, NAME_motion.npy, NAME.hints.txt beside each) "
                             "or a .json/.csv manifest (see docs/batch.md)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder: DIR/<name>/ and DIR/batch.json")
    defaults = parser.add_argument_group("defaults for items without their own")
    defaults.add_argument("--mask", metavar="FILE", help="mask for items without NAME_mask.*; 'auto' = predict it")
    defaults.add_argument("--motion", metavar="FILE",
                          help="motion .npy for items without their own motion; 'auto' = predict it (needs --models)")
    defaults.add_argument("--drift", metavar="ANGLE_DEG,SPEED", type=lambda s: _numbers(s, 2, "--drift"),
                          help="uniform drift for items without their own motion")
    defaults.add_argument("--video", choices=VIDEO_FORMATS, help="also encode DIR/<name>/<name>.EXT")
    run = parser.add_argument_group("executor")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="local = worker processes here (default); ray = tasks on a Ray cluster")
    run.add_argument("--workers", type=int, metavar="K",
                     help="local worker processes (default: one per GPU, else 2 where there are 2 or more cores); "
                          "CPU threads are split between them")
    run.add_argument("--address", default="auto", metavar="ADDR",
                     help="Ray cluster: HOST:PORT of its head; auto = the one RAY_ADDRESS or `ray start` on this "
                          "machine names (never starts one); local = start one here on 127.0.0.1 (default: auto)")
    run.add_argument("--placement", choices=("auto", "gpu", "cpu"), default="auto",
                     help="Ray: auto = GPU tasks on nodes with GPUs and CPU tasks on the others; gpu = GPU tasks "
                          "only; cpu = CPU tasks only (default: auto)")
    run.add_argument("--threads-per-task", dest="threads", type=int, metavar="N",
                     help="Ray: CPU threads (and Ray CPUs) per task (default: 1 up to 4 MP, 2 up to 16 MP, else 4)")
    run.add_argument("--no-shared-storage", dest="shared_storage", action="store_false",
                     help="Ray: send inputs and results through the object store instead of by path")
    run.add_argument("--max-retries", type=int, default=3, metavar="N",
                     help="Ray: times a task whose worker died is run again (default: 3)")
    add_option_arguments(parser)
    parser.set_defaults(func=run_batch_command)


def _default_motion(args: argparse.Namespace) -> MotionSpec | None:
    """The motion for items without their own, from --motion / --drift."""
    if args.motion and args.drift:
        raise InputError("choose one default motion source, got --motion and --drift")
    if args.motion == "auto":
        return MotionSpec(kind="auto")
    if args.motion:
        return MotionSpec(kind="file", path=str(Path(args.motion).resolve())).validate()
    if args.drift:
        return MotionSpec(kind="drift", drift=tuple(args.drift)).validate()
    return None


def _executor(args: argparse.Namespace) -> Any:
    """The executor the arguments name (Ray connected)."""
    if args.executor == "ray":
        from .ray_exec import RayExecutor, require_ray

        require_ray()
        if args.threads is not None and args.threads < 1:
            raise InputError(f"--threads-per-task must be at least 1, got {args.threads}")
        executor = RayExecutor(args.address, shared_storage=args.shared_storage, max_retries=args.max_retries,
                               placement=args.placement, threads=args.threads)
        try:
            executor.open()
        except BaseException:
            executor.close()
            raise
        return executor
    from .local import LocalExecutor, cpu_count, default_workers, gpu_count

    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    gpus = gpu_count()
    return LocalExecutor(args.workers or default_workers(gpus, cpu_count()), gpus=gpus)


def run_batch_command(args: argparse.Namespace) -> int:
    """``stillflow batch``: exit 0 when every item is done or skipped, 1 when some failed, 130 on Ctrl+C or
    SIGTERM, 4 when the Ray cluster went away (BackendUnavailable, raised with batch.json written)."""
    from ..cli import given_options
    from .items import load_items
    from .report import ItemBar, summary_table
    from .run import NOT_SHARED, run_batch

    items, common = load_items(args.source)
    default_mask = args.mask if args.mask in (None, "auto") else str(Path(args.mask).resolve())
    executor = _executor(args)
    try:
        result = run_batch(items, args.out, executor, common=common, given=given_options(args),
                           default_motion=_default_motion(args), default_mask=default_mask, video=args.video,
                           source=str(Path(args.source).resolve()), progress=ItemBar(len(items)))
    except KeyboardInterrupt:
        print(f"stillflow: batch interrupted; finished items are kept, {Path(args.out) / 'batch.json'} says which; "
              "run the same command again to continue", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        getattr(executor, "close", lambda: None)()
    print(summary_table(result.outcomes))
    print(f"summary: {result.summary} ({result.seconds:.1f} s)")
    unshared = sorted({o.node or "?" for o in result.outcomes if o.cause and NOT_SHARED in o.cause})
    if unshared:
        print(f"stillflow: {Path(args.out).resolve()} is not shared with {', '.join(unshared)}: the results rendered "
              "there are not here; mount it at the same path on every node, or pass --no-shared-storage",
              file=sys.stderr)
    return 1 if any(o.status == "failed" for o in result.outcomes) else 0
