"""`python -m operators --service identity [...]`: run ostack services as kopf operators.

Each service is meant to run as its own process (its own Deployment in a cluster); for
local development several, or all, can share one.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import kopf
import prometheus_client

from operators.common import runtime


def _service_ref(text: str) -> tuple[str, str, int]:
    where, _, port = text.partition(":")
    namespace, _, name = where.partition("/")
    if not (namespace and name and port.isdigit()):
        raise argparse.ArgumentTypeError("expected NAMESPACE/NAME:PORT")
    return namespace, name, int(port)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m operators", description=__doc__)
    parser.add_argument(
        "--service",
        action="append",
        choices=sorted(runtime.SERVICES),
        help="a service to run (repeatable); all when none is given",
    )
    parser.add_argument("--liveness", help="serve kopf's liveness probe at this URL")
    parser.add_argument("--peering", help="leader election among replicas with this name")
    parser.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on this port (/metrics)"
    )
    webhook = parser.add_argument_group("admission webhook")
    webhook.add_argument("--webhook-listen", default="127.0.0.1", help="address to listen on")
    webhook.add_argument("--webhook-port", type=int, default=9443)
    webhook.add_argument("--webhook-cert-dir", type=Path, default=Path(".dev/webhook"))
    reach = webhook.add_mutually_exclusive_group()
    reach.add_argument(
        "--no-webhook",
        action="store_true",
        help="serve no admission webhook (quotas then rest on the ResourceQuota backstop)",
    )
    reach.add_argument("--webhook-host", help="the apiserver calls https://HOST:PORT")
    reach.add_argument(
        "--webhook-service", type=_service_ref, help="the apiserver calls NAMESPACE/NAME:PORT"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    services = args.service or sorted(runtime.SERVICES)
    checks = runtime.load(services)
    if checks and not args.no_webhook:
        runtime.register_admission(services)
    if args.metrics_port:
        prometheus_client.start_http_server(args.metrics_port)
    options = runtime.WebhookOptions(
        listen=args.webhook_listen,
        port=args.webhook_port,
        cert_dir=args.webhook_cert_dir,
        host=args.webhook_host or (None if args.webhook_service else args.webhook_listen),
        service=args.webhook_service,
    )

    @kopf.on.startup()
    def _startup(settings: kopf.OperatorSettings, **_: object) -> None:
        runtime.configure(settings, runtime.domain(services))
        if checks and not args.no_webhook:
            runtime.serve_webhook(settings, options, checks)

    kopf.run(
        clusterwide=True,
        standalone=args.peering is None,
        peering_name=args.peering,
        liveness_endpoint=args.liveness,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
