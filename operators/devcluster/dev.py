"""`make dev`: the whole product on one machine, in the foreground until Ctrl-C.

Without `KUBECONFIG`: a local control plane, the upstream and ostack CRDs, the KubeVirt/CDI
status simulator, a real S3 object store (versitygw) on loopback, every operator and
`examples/`. With `KUBECONFIG` pointing at a real
cluster: the ostack CRDs, the operators and `examples/` go there instead, and nothing
local is started.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, dynamic
from kubernetes.client.exceptions import ApiException

from operators.devcluster.controlplane import (
    REPO_ROOT,
    ControlPlane,
    die_with_parent_hook,
    export_line,
)
from operators.devcluster.install import (
    FIELD_MANAGER,
    install_crds,
    install_everything,
    install_tenant_roles,
    ostack_crds,
    remove_admission,
)
from operators.devcluster.objectstore import ObjectStoreServer
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_operators(kubeconfig: str, webhook: list[str]) -> subprocess.Popen[bytes]:
    """Every service in one process (`python -m operators`), logging to our stdout."""
    command = [sys.executable, "-m", "operators", *webhook]
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    # A session of its own, so Ctrl-C reaches only us and the operators get exactly one
    # SIGTERM, from _stop; and they die with us if we are killed.
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,
        preexec_fn=die_with_parent_hook(),
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _serve(api: client.ApiClient, kubeconfig: str, webhook: list[str], stop: threading.Event):
    operators = start_operators(kubeconfig, webhook)
    try:
        _wait_for_examples(api, stop)
        stop.wait()
    finally:
        _stop(operators)
        remove_admission(api)


def run(plane: ControlPlane) -> int:
    """Run until SIGINT/SIGTERM; return the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    _stop_on_signals(stop)
    external = os.environ.get("KUBECONFIG")
    if external:
        # A real apiserver cannot call back to this machine: quotas are then enforced by
        # the ResourceQuota backstop only, until the chart runs the webhook in-cluster.
        log.info("KUBECONFIG is set: running against the cluster it points to (%s)", external)
        with config.new_client_from_config(config_file=external) as api:
            install_crds(api, ostack_crds())
            install_tenant_roles(api)
            _serve(api, external, ["--no-webhook"], stop)
        return 0

    plane.start(bootstrap=install_everything)
    webhook = [
        "--webhook-host=127.0.0.1",
        f"--webhook-port={_free_port()}",
        f"--webhook-cert-dir={plane.workdir / 'webhook'}",
    ]
    try:
        store = ObjectStoreServer(plane.workdir / "objectstore")
        with plane.api_client() as api, Simulator(api, Delays.from_env()), store:
            store.install(api)
            print(f"\nready; point kubectl at it with:\n  {export_line(plane.kubeconfig)}\n")
            _serve(api, str(plane.kubeconfig), webhook, stop)
    finally:
        plane.stop()
    return 0
