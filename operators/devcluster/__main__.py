"""`python -m operators.devcluster up|down|env|status|dev`: the local control plane from a
shell; `dev` is `make dev` (control plane, CRDs, simulator and examples in the foreground)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from operators.devcluster.controlplane import (
    COMPONENTS,
    DEFAULT_BIN_DIR,
    DEFAULT_START_TIMEOUT,
    DEFAULT_WORKDIR,
    ControlPlane,
    ControlPlaneError,
    export_line,
)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    control_plane = ControlPlane(args.workdir, args.bin_dir)
    try:
        return int(args.handler(control_plane, args))
    except ControlPlaneError as error:
        print(f"devcluster: {error}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help="default: %(default)s"
    )
    common.add_argument(
        "--bin-dir", type=Path, default=DEFAULT_BIN_DIR, help="default: %(default)s"
    )
    parser = argparse.ArgumentParser(
        prog="python -m operators.devcluster",
        description="A local Kubernetes control plane: etcd, kube-apiserver, "
        "kube-controller-manager on 127.0.0.1.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser(
        "up", parents=[common], help="start and wait until healthy; print the export line"
    )
    up.add_argument(
        "--foreground", action="store_true", help="stay until Ctrl-C, then stop everything"
    )
    up.add_argument("--timeout", type=float, default=DEFAULT_START_TIMEOUT, help="seconds")
    up.set_defaults(handler=_up)
    commands.add_parser("down", parents=[common], help="stop it").set_defaults(handler=_down)
    commands.add_parser("env", parents=[common], help="print `export KUBECONFIG=...`").set_defaults(
        handler=_env
    )
    commands.add_parser("status", parents=[common], help="say what runs").set_defaults(
        handler=_status
    )
    commands.add_parser(
        "dev",
        parents=[common],
        help="control plane + CRDs + simulator + examples until Ctrl-C ($KUBECONFIG: that cluster)",
    ).set_defaults(handler=_dev)
    return parser


def _dev(control_plane: ControlPlane, _args: argparse.Namespace) -> int:
    from operators.devcluster import dev  # the simulator and CRDs are only needed here

    return dev.run(control_plane)


def _up(control_plane: ControlPlane, args: argparse.Namespace) -> int:
    began = time.monotonic()

    def announce() -> None:
        print(
            f"devcluster: ready at {control_plane.server} in {time.monotonic() - began:.1f}s "
            f"(logs in {control_plane.log_dir})",
            file=sys.stderr,
        )
        print(export_line(control_plane.kubeconfig), flush=True)

    if args.foreground:
        control_plane.run_foreground(args.timeout, on_ready=announce)
        print("devcluster: stopped", file=sys.stderr)
    else:
        control_plane.start_background(args.timeout)
        announce()
    return 0


def _down(control_plane: ControlPlane, _args: argparse.Namespace) -> int:
    stopped = control_plane.stop()  # stop() goes by the pid files in the workdir
    if not stopped:
        print(f"devcluster: nothing running in {control_plane.workdir}", file=sys.stderr)
    for name, pid in stopped.items():
        print(f"devcluster: stopped {name} (pid {pid})", file=sys.stderr)
    return 0


def _env(control_plane: ControlPlane, _args: argparse.Namespace) -> int:
    if not control_plane.kubeconfig.exists():
        raise ControlPlaneError(f"no kubeconfig in {control_plane.workdir}: run `up` first")
    if not control_plane.running():
        print("devcluster: warning: the control plane is not running", file=sys.stderr)
    print(export_line(control_plane.kubeconfig))
    return 0


def _status(control_plane: ControlPlane, _args: argparse.Namespace) -> int:
    running = control_plane.running()
    supervisor = control_plane.supervisor_pid()
    if supervisor is not None:
        print(f"supervisor: running (pid {supervisor})")
    for name in COMPONENTS:
        state = f"running (pid {running[name]})" if name in running else "not running"
        print(f"{name}: {state}")
    if running:
        health = "ready" if control_plane.ready() else "not ready"
        print(f"apiserver {control_plane.server}: {health}")
        print(export_line(control_plane.kubeconfig))
    # Non-zero unless all is well, so scripts can test `status` before using the cluster.
    return 0 if len(running) == len(COMPONENTS) and control_plane.ready() else 3


if __name__ == "__main__":
    sys.exit(main())
