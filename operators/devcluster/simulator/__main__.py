"""`python -m operators.devcluster.simulator --kubeconfig PATH`: run the simulator until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from kubernetes import config

from operators.devcluster.simulator import Delays, Simulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m operators.devcluster.simulator",
        description="Simulate KubeVirt's, CDI's and a CSI driver's runtime against a cluster "
        "(delays from OSTACK_SIM_* variables).",
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--context", default=None, help="kubeconfig context (default: current)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("kubernetes").setLevel(logging.WARNING)
        logging.getLogger("urllib3").setLevel(logging.WARNING)
    try:
        delays = Delays.from_env()
    except ValueError as error:
        print(f"simulator: {error}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    with config.new_client_from_config(str(args.kubeconfig), context=args.context) as api:
        simulator = Simulator(api, delays)
        simulator.start()
        logging.getLogger(__name__).info("simulator running with %s; Ctrl-C stops it", delays)
        # Ctrl-C interrupts the wait (KeyboardInterrupt); SIGTERM sets `stop`.
        try:
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
        finally:
            simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
