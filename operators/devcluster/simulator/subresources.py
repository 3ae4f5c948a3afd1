"""KubeVirt's `subresources.kubevirt.io` API (pause, unpause), served by the simulator.

KubeVirt pauses a guest only through this aggregated API (virt-api); there is no field to
set. So the simulator serves the two calls the operators make, as an APIService behind an
ExternalName Service that points the apiserver's aggregator at `localhost`, and plays a
pause by the annotation its VM reconciler already honours (`sim.ostack.dev/paused`).
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from operators.common.webhook import self_signed
from operators.devcluster.simulator.common import PAUSED
from operators.devcluster.simulator.kube import VM, VMI, Kube, Resource, controller_of, meta

log = logging.getLogger(__name__)

GROUP, VERSION = "subresources.kubevirt.io", "v1"
SERVICE = Resource("", "v1", "services", "Service", core="service")
API_SERVICE = Resource(
    "apiregistration.k8s.io", "v1", "apiservices", "APIService", namespaced=False
)
SERVICE_NAMESPACE, SERVICE_NAME = "default", "ostack-simulator-subresources"
ACTION = re.compile(
    rf"^/apis/{GROUP}/{VERSION}/namespaces/([^/]+)/virtualmachineinstances/([^/]+)/(pause|unpause)$"
)
RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": f"{GROUP}/{VERSION}",
    "resources": [
        {
            "name": f"virtualmachineinstances/{action}",
            "singularName": "",
            "namespaced": True,
            "kind": "VirtualMachineInstance",
            "verbs": ["update"],
        }
        for action in ("pause", "unpause")
    ],
}


class SubresourceServer:
    """The HTTPS server and its registration with the apiserver."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._certs = tempfile.TemporaryDirectory(prefix="ostack-sim-")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        cert, key = self_signed(Path(self._certs.name), "localhost")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()
        self._register()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._certs.cleanup()

    def _register(self) -> None:
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE},
            # ExternalName, the one Service kind whose target may be this machine's loopback.
            "spec": {
                "type": "ExternalName",
                "externalName": "localhost",
                "ports": [{"name": "https", "port": self.port, "protocol": "TCP"}],
            },
        }
        api_service = {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": f"{VERSION}.{GROUP}"},
            "spec": {
                "group": GROUP,
                "version": VERSION,
                "service": {
                    "namespace": SERVICE_NAMESPACE,
                    "name": SERVICE_NAME,
                    "port": self.port,
                },
                "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 1000,
                "versionPriority": 15,
            },
        }
        for resource, body in ((SERVICE, service), (API_SERVICE, api_service)):
            name = body["metadata"]["name"]
            namespace = body["metadata"].get("namespace", "")
            if self.kube.get(resource, name, namespace) is None:
                self.kube.create(resource, body, namespace)
            else:
                self.kube.patch(resource, name, {"spec": body["spec"]}, namespace)
        log.info("serving %s/%s on 127.0.0.1:%d", GROUP, VERSION, self.port)

    def act(self, namespace: str, name: str, action: str) -> int:
        """Pause or unpause: mark the VMI's VM, which the VM reconciler plays out."""
        vmi = self.kube.get(VMI, name, namespace)
        owner = controller_of(vmi) if vmi else None
        if vmi is None or owner is None or owner.get("kind") != "VirtualMachine":
            return 404
        value: Any = "true" if action == "pause" else None
        self.kube.patch(
            VM, owner["name"], {"metadata": {"annotations": {PAUSED: value}}}, namespace
        )
        log.info("%s/%s: %s", namespace, meta(vmi)["name"], action)
        return 200


def _handler(server: SubresourceServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if path == f"/apis/{GROUP}/{VERSION}":
                self._reply(200, RESOURCES)
            elif path == f"/apis/{GROUP}":
                version = {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}
                group = {"name": GROUP, "versions": [version], "preferredVersion": version}
                self._reply(200, {"kind": "APIGroup", "apiVersion": "v1", **group})
            else:
                self._reply(404, _status(404, "not found"))

        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            found = ACTION.match(self.path.split("?")[0])
            if not found:
                self._reply(404, _status(404, "not found"))
                return
            code = server.act(*found.groups())
            self._reply(code, {} if code == 200 else _status(code, "no such VMI"))

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return Handler


def _status(code: int, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "code": code,
    }
