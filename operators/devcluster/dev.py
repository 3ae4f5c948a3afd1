"""`make dev`: the whole product on one machine, in the foreground until Ctrl-C.

Without `KUBECONFIG`: a local control plane, the upstream and ostack CRDs, the KubeVirt/CDI
status simulator and `examples/`. With `KUBECONFIG` pointing at a real cluster: the ostack
CRDs and `examples/` go there instead, and nothing local is started.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, dynamic
from kubernetes.client.exceptions import ApiException

from operators.devcluster.controlplane import REPO_ROOT, ControlPlane, export_line
from operators.devcluster.install import (
    FIELD_MANAGER,
    install_crds,
    install_everything,
    install_tenant_roles,
    ostack_crds,
)
from operators.devcluster.simulator import Delays, Simulator

log = logging.getLogger("ostack.dev")
EXAMPLES = REPO_ROOT / "examples"
RETRY_SECONDS = 5.0


def example_objects(directory: Path = EXAMPLES) -> list[dict[str, Any]]:
    objects = []
    for path in sorted(directory.glob("*.yaml")):
        objects += [o for o in yaml.safe_load_all(path.read_text()) if o]
    return objects


def apply_examples(api: client.ApiClient, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Server-side apply what can be applied now; return what must wait.

    A tenant's objects wait for their namespace, which the identity controller creates
    from the Project: until it runs, they stay pending and are retried.
    """
    resources = dynamic.DynamicClient(api).resources
    waiting = []
    for obj in objects:
        resource = resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        meta = obj["metadata"]
        try:
            resource.server_side_apply(
                body=obj,
                name=meta["name"],
                namespace=meta.get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
            log.info("applied %s %s", obj["kind"], meta["name"])
        except ApiException as error:
            if error.status != 404:
                raise
            waiting.append(obj)
    return waiting


def _wait_for_examples(api: client.ApiClient, stop: threading.Event) -> None:
    pending = example_objects()
    while pending and not stop.is_set():
        pending = apply_examples(api, pending)
        if pending:
            namespaces = sorted({o["metadata"].get("namespace", "") for o in pending})
            log.info(
                "%d example objects wait for namespace(s) %s (made by the identity controller)",
                len(pending),
                ", ".join(namespaces),
            )
            stop.wait(RETRY_SECONDS)


def _stop_on_signals(stop: threading.Event) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())


def run(plane: ControlPlane) -> int:
    """Run until SIGINT/SIGTERM; return the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    _stop_on_signals(stop)
    external = os.environ.get("KUBECONFIG")
    if external:
        log.info("KUBECONFIG is set: using the cluster it points to (%s)", external)
        with config.new_client_from_config(config_file=external) as api:
            install_crds(api, ostack_crds())
            install_tenant_roles(api)
            _wait_for_examples(api, stop)
        return 0

    plane.start(bootstrap=install_everything)
    try:
        with plane.api_client() as api:
            simulator = Simulator(api, Delays.from_env())
            simulator.start()
            print(f"\nready; point kubectl at it with:\n  {export_line(plane.kubeconfig)}\n")
            try:
                _wait_for_examples(api, stop)
                stop.wait()
            finally:
                simulator.stop()
    finally:
        plane.stop()
    return 0
