"""A real S3 object store on loopback for `make dev` and the tests: versitygw (built from
its pinned release by `make tools`) on a POSIX directory, with its internal IAM, so
per-Project accounts, bucket policies, versioning and presigned URLs are the store's own.

`install` points the objectstorage service at it: the ConfigMap `ostack-object-store` and
the admin credentials Secret, in the operators' namespace.
"""

from __future__ import annotations

import base64
import secrets
import socket
import subprocess
import time
from pathlib import Path

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from operators.devcluster.controlplane import DEFAULT_BIN_DIR, die_with_parent_hook
from operators.objectstorage import config

ADMIN_SECRET = "ostack-object-store-admin"
REGION = "us-east-1"
STORAGE_POLICIES = {
    "gold": {"description": "3 replicas", "storageClass": "STANDARD"},
    "silver": {"description": "2 replicas", "storageClass": "STANDARD"},
    "cold": {"description": "erasure coded", "storageClass": "STANDARD_IA"},
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ObjectStoreServer:
    """versitygw on 127.0.0.1; stop() and start() again keep its data and accounts."""

    def __init__(self, workdir: Path, binary: Path = DEFAULT_BIN_DIR / "versitygw") -> None:
        self.workdir, self.binary = workdir, binary
        self.port = _free_port()
        self.admin_access = "ostack-admin"
        self.admin_secret = secrets.token_urlsafe(24)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        for sub in ("data", "iam", "versions"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        command = [
            str(self.binary),
            "--port",
            f"127.0.0.1:{self.port}",
            "--access",
            self.admin_access,
            "--secret",
            self.admin_secret,
            "--region",
            REGION,
            "--iam-dir",
            str(self.workdir / "iam"),
            "--iam-cache-disable",
            "--quiet",
            "posix",
            "--versioning-dir",
            str(self.workdir / "versions"),
            str(self.workdir / "data"),
        ]
        log = (self.workdir / "versitygw.log").open("ab")
        self._proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent_hook()
        )
        deadline = time.monotonic() + timeout
        while not self._listening():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"versitygw did not start; see {self.workdir / 'versitygw.log'}")
            time.sleep(0.05)

    def _listening(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> ObjectStoreServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def config_text(self) -> str:
        return yaml.safe_dump(
            {
                "endpoint": self.endpoint,
                "region": REGION,
                "admin": "versitygw",
                "adminCredentialsSecret": ADMIN_SECRET,
                "defaultStoragePolicy": "silver",
                "storagePolicies": STORAGE_POLICIES,
            },
            sort_keys=False,
        )

    def install(self, api: client.ApiClient) -> None:
        """Point the objectstorage service at this store."""
        core = client.CoreV1Api(api)
        try:
            core.create_namespace({"metadata": {"name": config.NAMESPACE}})
        except ApiException as error:
            if error.status != 409:
                raise
        secret = {
            "metadata": {"name": ADMIN_SECRET},
            "data": {
                "accessKey": base64.b64encode(self.admin_access.encode()).decode(),
                "secretKey": base64.b64encode(self.admin_secret.encode()).decode(),
            },
        }
        configmap = {
            "metadata": {"name": config.CONFIG_MAP},
            "data": {"config.yaml": self.config_text()},
        }
        for create, replace, body in (
            (core.create_namespaced_secret, core.replace_namespaced_secret, secret),
            (core.create_namespaced_config_map, core.replace_namespaced_config_map, configmap),
        ):
            try:
                create(config.NAMESPACE, body)
            except ApiException as error:
                if error.status != 409:
                    raise
                replace(body["metadata"]["name"], config.NAMESPACE, body)
