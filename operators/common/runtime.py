"""Running services as kopf operators: settings every service shares, the admission
webhook server, and which service lives in which module."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path

import kopf

from operators.common import kube
from operators.common.kinds import VERSION
from operators.common.webhook import Check, Endpoint, self_signed, validating_configuration

log = logging.getLogger(__name__)

SERVICES = {
    "blockstorage": "operators.blockstorage.controller",
    "compute": "operators.compute.controller",
    "containerinfra": "operators.containerinfra.controller",
    "identity": "operators.identity.controller",
    "image": "operators.image.controller",
    "network": "operators.network.controller",
    "objectstorage": "operators.objectstorage.controller",
}
"""Each service's controller module; importing it registers its handlers with kopf."""

DOMAIN = "ostack.dev"
WEBHOOK_CONFIGURATION = "ostack-admission.ostack.dev"


@dataclass(frozen=True)
class WebhookOptions:
    """Where the admission webhook listens and how the apiserver reaches it."""

    listen: str
    port: int
    cert_dir: Path
    host: str | None = None
    """Reach the webhook at https://host:port (a local control plane)."""
    service: tuple[str, str, int] | None = None
    """Reach it through this (namespace, name, port) Service (a cluster)."""


def peering_crd() -> dict:
    """kopf's ClusterKopfPeering, through which replicas of one service elect who acts
    (`--peering`); shipped with ostack's CRDs since kopf does not install it."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "clusterkopfpeerings.kopf.dev"},
        "spec": {
            "group": "kopf.dev",
            "scope": "Cluster",
            "names": {
                "kind": "ClusterKopfPeering",
                "plural": "clusterkopfpeerings",
                "singular": "clusterkopfpeering",
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


def load(services: list[str]) -> list[Check]:
    """Import the services' controllers; return the webhook checks they declare."""
    checks: list[Check] = []
    for service in services:
        module = importlib.import_module(SERVICES[service])
        checks += getattr(module, "CHECKS", [])
    return checks


def register_admission(services: list[str]) -> None:
    """Register the services' admission handlers with kopf (before it runs)."""
    for service in services:
        module = importlib.import_module(SERVICES[service])
        if hasattr(module, "register_admission"):
            module.register_admission()


def domain(services: list[str]) -> str:
    """The prefix of the annotations and the finalizer one operator process owns.

    Each process needs its own: kopf removes a finalizer of its name that no handler of
    its own needs, so two processes sharing one (identity holding Projects, image merely
    watching them) would take turns adding and removing it.
    """
    return f"{services[0]}.{DOMAIN}" if len(services) == 1 else DOMAIN


def configure(settings: kopf.OperatorSettings, prefix: str) -> None:
    # Progress and the last-handled spec go to annotations: a structural status schema
    # would prune kopf's own status fields, and a status write is a user-visible change.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=prefix, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{prefix}/finalizer"
    # Only warnings become Events on their own; transitions post theirs explicitly.
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = 24
    settings.batching.error_delays = [1, 2, 5, 10, 30, 60]


def serve_webhook(
    settings: kopf.OperatorSettings, options: WebhookOptions, checks: list[Check]
) -> None:
    """Serve the checks' handlers and register them with the apiserver."""
    certfile, keyfile = (options.cert_dir / "tls.crt", options.cert_dir / "tls.key")
    if not certfile.exists():
        certfile, keyfile = self_signed(options.cert_dir, options.host or options.listen)
    settings.admission.server = kopf.WebhookServer(
        addr=options.listen,
        port=options.port,
        host=options.host,
        certfile=str(certfile),
        pkeyfile=str(keyfile),
    )
    ca_file = options.cert_dir / "ca.crt"
    ca = ca_file.read_bytes() if ca_file.exists() else certfile.read_bytes()
    if options.service is not None:
        endpoint = Endpoint(ca_bundle=ca, service=options.service)
    else:
        endpoint = Endpoint(ca_bundle=ca, url=f"https://{options.host}:{options.port}")
    kube.apply(
        validating_configuration(WEBHOOK_CONFIGURATION, endpoint, checks, VERSION),
        manager="ostack-admission",
    )
    log.info("admission webhook registered for %d checks", len(checks))
