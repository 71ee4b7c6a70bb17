"""The service subcommands of ``stillflow``: serve, ping, submit and keys (CLI code: prints here)."""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InputError, StillflowError
from ..link.protocol import DEFAULT_MAX_PART_BYTES, PROTOCOL_VERSION, Limits
from ..options import Region

__all__ = ["add_parsers"]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"


def add_parsers(subparsers: Any) -> None:
    """Add serve, ping, submit and keys to the ``stillflow`` command."""
    serve = subparsers.add_parser("serve", help="run the backend service (ZeroMQ) that renders jobs",
                                  description="Serve render jobs over ZeroMQ until SIGINT/SIGTERM.")
    add_serve_arguments(serve)
    serve.set_defaults(func=run_serve)

    ping = subparsers.add_parser("ping", help="ask a running backend for its version and capabilities")
    _add_connection_arguments(ping)
    ping.set_defaults(func=_run_ping)

    submit = subparsers.add_parser("submit", help="render a still through a running backend",
                                   description="Like `stillflow render`, but the running backend at "
                                               "--endpoint does the work.")
    _add_connection_arguments(submit)
    submit.add_argument("--remote", action="store_true",
                        help="send the input files and receive the frames over the wire even on a loopback "
                             "endpoint (automatic for other endpoints)")
    from ..cli import add_render_arguments

    add_render_arguments(submit)
    submit.set_defaults(func=_run_submit)

    keys = subparsers.add_parser("keys", help="create CURVE keys for a backend reachable from other machines",
                                 description="Create DIR/server.key (give to clients), DIR/server.key_secret, "
                                             "DIR/allowed/NAME.key and DIR/NAME.key_secret (give to client NAME).")
    keys.add_argument("directory", metavar="DIR", help="keys folder (created if needed)")
    keys.add_argument("--client", action="append", metavar="NAME",
                      help="client name to create a key pair for; repeatable (default: client)")
    keys.set_defaults(func=_run_keys)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``stillflow serve``."""
    parser.add_argument("--bind", default=DEFAULT_ENDPOINT, metavar="ENDPOINT",
                        help=f"ZeroMQ endpoint; tcp://HOST:* picks a free port (default: {DEFAULT_ENDPOINT}). "
                             "Anything but loopback or ipc:// needs --keys")
    parser.add_argument("--device", default="auto", metavar="DEV[,DEV...]",
                        help="device(s) for jobs that ask for auto: auto, cpu, cuda, cuda:N, mps (default: auto)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="jobs run at once; worker i uses the i-th --device, cycling (default: 1)")
    parser.add_argument("--queue-size", type=int, default=16, metavar="N", help="most queued jobs (default: 16)")
    parser.add_argument("--keys", metavar="DIR", help="CURVE keys folder from `stillflow keys` (encrypts and "
                                                      "admits only clients in DIR/allowed)")
    parser.add_argument("--log", metavar="FILE", help="log file (default: stillflow/serve-PID.log in the temp folder)")
    parser.add_argument("--models", metavar="DIR", help="model weights folder, listed in hello")
    parser.add_argument("--results", metavar="DIR",
                        help="folder every job's outputs go under (a client names a folder inside it; "
                             "default: a per-user data folder, e.g. ~/.local/share/stillflow/results)")
    parser.add_argument("--allow-read", action="append", default=[], metavar="DIR",
                        help="folder whose files clients may name as input paths (image_path, masks, motion "
                             "files, options.models); repeatable. Without it clients send the files' bytes")
    parser.add_argument("--max-part-mb", type=float, default=DEFAULT_MAX_PART_BYTES / 2**20, metavar="MB",
                        help="largest binary part a client may send (default: %(default)g MiB)")
    parser.add_argument("--heartbeat", type=float, default=1.0, metavar="S", help="heartbeat interval (default: 1 s)")
    parser.add_argument("--client-timeout", type=float, default=60.0, metavar="S",
                        help="forget a client's queued jobs after this much silence (default: 60 s)")
    _add_client_limit_arguments(parser)
    parser.add_argument("--ray", metavar="ADDR", help="run the jobs as tasks on the Ray cluster at ADDR (auto, local "
                                                      "or HOST:PORT; needs stillflow[ray]); --workers = jobs at once: "
                                                      "raise it to the cluster's GPUs (or CPUs), it defaults to 1")
    parser.add_argument("--endpoint-file", help=argparse.SUPPRESS)
    parser.add_argument("--parent-pid", type=int, metavar="PID",
                        help="shut down when process PID exits (the add-on passes Blender's)")


def _add_client_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``stillflow serve`` that bound what one client may hold."""
    parser.add_argument("--client-queue", type=int, default=8, metavar="N",
                        help="most queued jobs one client may have (default: 8)")
    parser.add_argument("--client-backlog-mb", type=float, default=64.0, metavar="MB",
                        help="unsent result data per client before its job pauses (default: 64 MiB)")
    parser.add_argument("--log-max-mb", type=float, default=16.0, metavar="MB",
                        help="the log file is rotated at this size, 3 old files kept (default: 16 MiB)")


def run_serve(args: argparse.Namespace) -> int:
    """``stillflow serve``: run the backend until SIGINT/SIGTERM; returns the exit status."""
    from .keys import check_bind, load_server_keys
    from .server import Server, ServerConfig

    keys = load_server_keys(args.keys) if args.keys else None
    check_bind(args.bind, keys)
    log_path = Path(args.log) if args.log else Path(tempfile.gettempdir()) / "stillflow" / f"serve-{os.getpid()}.log"
    _log_to_file(log_path, int(args.log_max_mb * 2**20))
    devices = tuple(d.strip() for d in args.device.split(",") if d.strip()) or ("auto",)
    _check_devices(devices)
    # load torch and the engine before announcing readiness: the first job starts at full speed
    # and a broken install fails here rather than inside a job
    importlib.import_module("stillflow.pipeline")
    results = _results_folder(args.results)
    config = ServerConfig(bind=args.bind, devices=devices, workers=args.workers, queue_size=args.queue_size,
                          limits=Limits.for_requests(int(args.max_part_mb * 2**20)), keys=keys,
                          heartbeat_s=args.heartbeat, client_timeout_s=args.client_timeout,
                          log_path=str(log_path), models=args.models, results_dir=str(results),
                          allow_read=tuple(str(_existing_folder(folder, "--allow-read")) for folder in args.allow_read),
                          ray=args.ray, **_client_limits(args))
    server = Server(config)
    endpoint = server.bind()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: server.request_stop())
    if args.parent_pid:
        from .parent_watch import watch_parent

        watch_parent(args.parent_pid, at_exit=lambda: _forget_endpoint(args.endpoint_file))
    if args.endpoint_file:
        staging = Path(f"{args.endpoint_file}.tmp")
        staging.write_text(endpoint)
        os.replace(staging, args.endpoint_file)
    print(f"stillflow {__version__} backend (protocol {PROTOCOL_VERSION}) listening on {endpoint}", flush=True)
    print(f"log: {log_path}", flush=True)
    print(f"results: {results}" + (f"; reads inputs under {', '.join(config.allow_read)}" if config.allow_read
                                   else "; reads no input paths (clients send bytes)"), flush=True)
    server.serve()
    _forget_endpoint(args.endpoint_file)
    print("stillflow backend stopped", flush=True)
    return 0


def _forget_endpoint(path: str | None) -> None:
    """Remove the endpoint file of a stopping backend (it would name a dead one), and the launcher's
    stillflow-backend-* folder it lay in once that is empty."""
    if not path:
        return
    try:
        os.remove(path)
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.basename(folder).startswith("stillflow-backend-"):
            os.rmdir(folder)  # fails, and keeps it, while the backend's log is still in it
    except OSError:
        pass


def _run_ping(args: argparse.Namespace) -> int:
    """``stillflow ping``: print the backend's hello answer and the round-trip time."""
    with _client(args) as client:
        hello = client.hello()
        seconds = client.ping()
    print(json.dumps(hello, indent=2, sort_keys=True))
    print(f"round trip: {seconds * 1000:.2f} ms")
    return 0


def _regions_as_arrays(regions: tuple[Region, ...] | None) -> tuple[Region, ...] | None:
    """Regions with their mask and amplitude image files read into arrays (each travels as a part)."""
    from ..io.images import load_amplitude, load_mask

    if regions is None:
        return None
    loaded = []
    for index, region in enumerate(regions):
        motion, sway = region.motion, region.motion.sway
        if sway is not None and sway.amplitude_image is not None:
            amplitude = load_amplitude(sway.amplitude_image, f"region {index + 1}'s amplitude image")
            motion = dataclasses.replace(motion, sway=dataclasses.replace(sway, amplitude_image=amplitude))
        loaded.append(dataclasses.replace(region, mask=None if region.mask is None else load_mask(region.mask),
                                          motion=motion))
    return tuple(loaded)


def _run_submit(args: argparse.Namespace) -> int:
    """``stillflow submit``: run one job on the backend with a progress bar; same outputs as render."""
    from ..cli import ProgressBar, default_out_dir, options_from_args, regions_from_args
    from ..io.frames import check_not_inputs, check_replaceable
    from ..progress import Progress
    from .keys import is_local_endpoint

    options, motion = options_from_args(args)
    regions = _regions_as_arrays(regions_from_args(args))
    image = Path(args.image)
    out_dir = (Path(args.out) if args.out else default_out_dir(image)).resolve()
    video = Path(args.video).resolve() if args.video else None
    check_not_inputs(out_dir, video, {"image": image, "mask": args.mask, "importance": args.importance,
                                      "motion file": motion.path if motion.kind in ("file", "clip") else None})
    check_replaceable(out_dir)
    bar = ProgressBar()
    with _client(args) as client:
        # the backend writes straight into --out only when that lies in its results folder on this machine
        results = client.hello().get("results_dir")
        shared = (not args.remote and is_local_endpoint(args.endpoint) and isinstance(results, str)
                  and Path(results) in out_dir.parents and (video is None or out_dir in video.parents))
        sent_video = (video if shared else video.name) if video is not None else None
        job = client.submit(image, mask=args.mask, motion=motion, options=options,
                            out_dir=out_dir if shared else None, video=sent_video, deliver="files",
                            importance=args.importance, regions=regions)
        try:
            while not job.is_finished:
                for event in client.poll(0.2):
                    if event.kind == "progress":
                        bar(Progress(job.stage, job.done, job.total))
            result = client.wait(job)
        except KeyboardInterrupt:
            client.cancel(job)
            raise
    if not shared:
        _save_files(result["files"], result["manifest"], out_dir, video)
    for warning in result["manifest"].get("warnings", []):
        print(f"stillflow: warning: {warning}", file=sys.stderr)
    print(f"wrote {result['manifest']['frames']} frames to {out_dir}" + (f" and {video}" if video else ""))
    return 0


def _run_keys(args: argparse.Namespace) -> int:
    """``stillflow keys``: create the server key pair and client key pairs."""
    from .keys import generate_keys

    created = generate_keys(args.directory, tuple(args.client or ["client"]))
    for path in created:
        print(path)
    print(f"serve with: stillflow serve --bind tcp://*:5555 --keys {args.directory}")
    print("give each client server.key and its own NAME.key_secret")
    return 0


def _add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """--endpoint, timeouts and CURVE key files for a client command."""
    parser.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help=f"backend endpoint (default: {DEFAULT_ENDPOINT})")
    parser.add_argument("--timeout", type=float, default=2.5, metavar="S", help="seconds per try (default: 2.5)")
    parser.add_argument("--retries", type=int, default=3, metavar="N", help="tries before giving up (default: 3)")
    parser.add_argument("--server-key", metavar="FILE", help="the backend's server.key (CURVE)")
    parser.add_argument("--client-key", metavar="FILE", help="this client's NAME.key_secret (CURVE)")


def _client(args: argparse.Namespace) -> Any:
    """A Client from the connection arguments."""
    from ..link.client import Client
    from ..link.handshake import CLI_NAMES

    if (args.server_key is None) != (args.client_key is None):
        raise InputError("CURVE needs both --server-key and --client-key")
    return Client(args.endpoint, timeout=args.timeout, retries=args.retries, server_key=args.server_key,
                  client_keys=args.client_key, key_names=CLI_NAMES)


def _save_files(files: dict[str, bytes], manifest: dict[str, Any], out_dir: Path, video: Path | None) -> None:
    """Write a remote job's frame files and manifest into ``out_dir`` and its video to ``video``, as one unit."""
    from ..io.frames import MANIFEST, atomic_outputs

    with atomic_outputs(out_dir, video) as (staging, staged_video):
        for name, data in files.items():
            if name.startswith("frames/"):
                (staging / Path(name).name).write_bytes(data)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        videos = [data for name, data in files.items() if name.startswith("video/")]
        if staged_video is not None:
            if not videos:
                raise StillflowError("the backend sent no video", hint="submit again, or render the video locally")
            staged_video.write_bytes(videos[0])


def _results_folder(given: str | None) -> Path:
    """The results folder of ``serve`` (created); InputError when it cannot be."""
    from .paths import default_results_dir

    folder = Path(given).expanduser() if given else default_results_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"results folder {folder} cannot be created: {exc.strerror}",
                         hint="choose another --results") from None
    return folder.resolve()


def _existing_folder(given: str, flag: str) -> Path:
    """``given`` resolved when it is an existing folder; InputError otherwise."""
    folder = Path(given).expanduser().resolve()
    if not folder.is_dir():
        raise InputError(f"{flag} {given} is not a folder", hint=f"give an existing folder to {flag}")
    return folder


def _check_devices(devices: tuple[str, ...]) -> None:
    """Raise InputError for a --device that does not exist here (imports torch)."""
    from ..devices import pick

    for device in devices:
        pick(device)


def _client_limits(args: argparse.Namespace) -> dict[str, int]:
    """ServerConfig fields of the per-client limits; InputError when one is not positive."""
    if args.client_queue < 1 or not args.client_backlog_mb > 0 or not args.log_max_mb > 0:
        raise InputError("--client-queue, --client-backlog-mb and --log-max-mb must be positive")
    return {"client_queue": args.client_queue, "client_backlog_bytes": int(args.client_backlog_mb * 2**20)}


def _log_to_file(path: Path, max_bytes: int) -> None:
    """Send INFO and above to ``path`` (the service's log file, rotated by size), besides stderr."""
    from logging.handlers import RotatingFileHandler

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = RotatingFileHandler(path, maxBytes=max_bytes, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
        for other in root.handlers:
            if other is not handler and other.level == logging.NOTSET:
                other.setLevel(logging.WARNING)
