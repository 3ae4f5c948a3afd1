"""Helpers the integration tests share: waiting with a deadline, acting as a user, and
running an operator as the real process it is."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from operators.devcluster.controlplane import die_with_parent_hook

T = TypeVar("T")
DEADLINE = 60.0  # generous: controllers react in well under a second, CI machines vary
REPO = Path(__file__).resolve().parents[1]


def eventually(probe: Callable[[], T], what: str, timeout: float = DEADLINE) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


@contextmanager
def acting_as(
    api: client.ApiClient, user: str, group: str | None = None
) -> Iterator[client.ApiClient]:
    """An ApiClient that acts as `user` (and `group`) through impersonation."""
    with client.ApiClient(api.configuration) as impersonated:
        impersonated.set_default_header("Impersonate-User", user)
        if group is not None:
            impersonated.set_default_header("Impersonate-Group", group)
        yield impersonated


@contextmanager
def fresh_namespace(api: client.ApiClient, prefix: str = "test") -> Iterator[str]:
    """A namespace of its own for one test, deleted (not awaited) afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)


def refused(call: Callable[[], object], status: int = 403) -> str:
    """Run `call`, which must fail with `status`; return the apiserver's message."""
    with pytest.raises(ApiException) as error:
        call()
    assert error.value.status == status, error.value.body
    return str(error.value.body)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Operator:
    """`python -m operators --service ...` as a child process, against a kubeconfig."""

    def __init__(self, kubeconfig: Path, workdir: Path, services: tuple[str, ...]) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.services = services
        self.log = workdir / f"operator-{'-'.join(services)}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._offset = 0
        self.metrics_port = free_port()

    def start(self) -> None:
        health = free_port()
        command = [sys.executable, "-m", "operators"]
        for service in self.services:
            command += ["--service", service]
        command += [
            "--liveness",
            f"http://127.0.0.1:{health}/healthz",
            "--webhook-port",
            str(free_port()),
            "--webhook-host",
            "127.0.0.1",
            "--webhook-cert-dir",
            str(self.workdir / "webhook"),
            "--metrics-port",
            str(self.metrics_port),
        ]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            # Dies with the test run, however that ends (a timeout, a kill).
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent_hook(),
            )
        eventually(lambda: self._healthy(health), f"the operator to serve /healthz ({self.log})")

    def _healthy(self, port: int) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"operator exited with {self.process.returncode}:\n{self.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return True
        except OSError:
            return False

    def metrics(self) -> str:
        """What the operator serves at /metrics (Prometheus' text format)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def output(self) -> str:
        """What the operator logged since its latest start."""
        with self.log.open("rb") as log:
            log.seek(self._offset)
            return log.read().decode(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def an_event(
    api: client.ApiClient, namespace: str | None, name: str, matches: Callable[[object], bool]
) -> object:
    """Wait for an Event about `name` that `matches`: kopf posts Events from a queue, a
    moment after the status they describe."""

    def found() -> object | None:
        core = client.CoreV1Api(api)
        selector = f"involvedObject.name={name}"
        events = (
            core.list_namespaced_event(namespace, field_selector=selector)
            if namespace
            else core.list_event_for_all_namespaces(field_selector=selector)
        )
        return next((e for e in events.items if matches(e)), None)

    return eventually(found, f"an Event about {name}")


def read_object(
    api: client.ApiClient, group: str, version: str, plural: str, namespace: str, name: str
) -> dict | None:
    """A namespaced custom object as a dict, or None."""
    try:
        return client.CustomObjectsApi(api).get_namespaced_custom_object(
            group, version, namespace, plural, name
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def create_object(api: client.ApiClient, kind, namespace: str, name: str, spec: dict) -> None:
    """Create one of our kinds with `spec`."""
    body = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": name}}
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        kind.group, kind.api_version.split("/")[1], namespace, kind.plural, {**body, "spec": spec}
    )


def patch_spec(api: client.ApiClient, kind, namespace: str, name: str, spec: dict) -> None:
    """Merge-patch the spec of one of our kinds."""
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        kind.group, kind.api_version.split("/")[1], namespace, kind.plural, name, {"spec": spec}
    )
