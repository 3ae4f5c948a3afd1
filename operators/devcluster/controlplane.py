"""A real local Kubernetes control plane: etcd, kube-apiserver and kube-controller-manager.

The three upstream binaries run as plain processes on 127.0.0.1 with ports chosen when they
start, so several control planes (one for `make dev`, one per pytest session) can coexist.
Everything a control plane owns lives in its workdir:

    pki/                 CA, serving and client certificates, service-account keys (made once)
    etcd/                etcd's data
    logs/<component>.log each component's stdout and stderr (and the supervisor's)
    run/<component>.pid  lets `down` in another process find and stop the processes
    run/supervisor.pid   the `up --foreground` process that owns them, when there is one
    state.json           the ports, reused on the next start so the kubeconfig stays stable
    kubeconfig           admin credentials (CN=ostack-admin, O=system:masters)

There are no nodes and no kubelet: this is an API server with its controllers, enough for
operators and for a simulator that plays the part of the workloads.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import fcntl
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WORKDIR = REPO_ROOT / ".dev"
DEFAULT_BIN_DIR = REPO_ROOT / ".tools" / "bin"

LOOPBACK = "127.0.0.1"
SERVICE_CIDR = "10.96.0.0/16"
# Pods would reach the apiserver through the `kubernetes` Service, which takes the first
# address of the service range, so the serving certificate names that address too.
KUBERNETES_SERVICE_IP = "10.96.0.1"
# Fixed rather than derived from the port, so tokens survive a restart on another port.
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "ostack-admin"
CONTEXT = "ostack-dev"

ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
COMPONENTS = (ETCD, APISERVER, CONTROLLER_MANAGER)  # start order; stop runs in reverse
SUPERVISOR = "supervisor"  # the `up --foreground` process that owns them, if any

DEFAULT_START_TIMEOUT = 90.0
DEFAULT_STOP_GRACE = 15.0
_PORT_ATTEMPTS = 3  # another program may grab a port between our probe and the bind
_POLL_INTERVAL = 0.1
_LOG_TAIL_LINES = 40
_CERT_DAYS = 3650  # a dev workdir should not quietly break after a year


class ControlPlaneError(Exception):
    """A control plane could not be started or stopped; `message` is one line."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.log_tail = log_tail

    def __str__(self) -> str:
        if not self.log_tail:
            return self.message
        return f"{self.message}\n{self.log_tail}"


class BinaryNotFound(ControlPlaneError):
    """A component's binary is not in the bin dir (run `make tools`)."""


class AlreadyRunning(ControlPlaneError):
    """The workdir's control plane (or a start of it) is already running."""


class PortInUse(ControlPlaneError):
    """A component could not bind its port."""


class StartupFailed(ControlPlaneError):
    """A component exited or did not become ready in time; `log_tail` says why."""


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int

    def all(self) -> tuple[int, ...]:
        return (self.etcd_client, self.etcd_peer, self.apiserver)


@dataclass(frozen=True)
class Pki:
    """Paths of the certificates and keys in a workdir's pki/ directory."""

    dir: Path

    def crt(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"


# --- public helpers ------------------------------------------------------------------------


def missing_binaries(bin_dir: Path) -> list[str]:
    """Names of the components whose binary is absent (or a dangling link) in `bin_dir`."""
    return [name for name in COMPONENTS if not os.access(bin_dir / name, os.X_OK)]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:`port` now.

    SO_REUSEADDR as the Go servers set it: a port whose last connections linger in
    TIME_WAIT is free for them and must count as free here.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def export_line(kubeconfig: Path) -> str:
    return f"export KUBECONFIG={shlex.quote(str(kubeconfig))}"


# --- the control plane ---------------------------------------------------------------------


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager for one workdir.

    `start()` returns once the apiserver is ready and kube-controller-manager's controllers
    run (they give a new namespace its `default` ServiceAccount); `stop()` ends the
    processes, whether this object started them or another process did (it then goes by
    the pid files).
    """

    def __init__(self, workdir: Path, bin_dir: Path = DEFAULT_BIN_DIR) -> None:
        self.workdir = Path(workdir).absolute()
        self.bin_dir = Path(bin_dir).absolute()
        self.pki = Pki(self.workdir / "pki")
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._ports: Ports | None = None
        self._ssl: ssl.SSLContext | None = None

    # -- paths and addresses

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def ca_file(self) -> Path:
        return self.pki.crt("ca")

    @property
    def ports(self) -> Ports:
        if self._ports is None:
            self._ports = self._load_ports()
        if self._ports is None:
            raise ControlPlaneError(f"no control plane has been started in {self.workdir}")
        return self._ports

    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.ports.apiserver}"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _pid_path(self, name: str) -> Path:
        return self.workdir / "run" / f"{name}.pid"

    @property
    def _ready_marker(self) -> Path:
        return self.workdir / "run" / "ready"

    # -- lifecycle

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(
        self,
        timeout: float = DEFAULT_START_TIMEOUT,
        bootstrap: Callable[[ApiClient], None] | None = None,
    ) -> None:
        """Start the three components as children of this process; return once healthy.

        `bootstrap` runs against the apiserver before kube-controller-manager starts: CRDs
        installed there are known to every controller from its first discovery, as in a
        cluster whose CRDs were installed long ago (kube-controller-manager only rediscovers
        every 30s, so quota and garbage collection would otherwise ignore them meanwhile).

        On Linux they get SIGTERM when the calling thread ends, so a killed pytest leaves
        nothing running: call this from a long-lived thread. `start_background()` is for a
        control plane that outlives this process.
        """
        self._check_binaries()
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self._start_lock():
            self._refuse_if_running()
            ensure_pki(self.pki.dir)
            deadline = time.monotonic() + timeout
            for attempt in range(_PORT_ATTEMPTS):
                try:
                    self._launch(self._choose_ports(fresh=attempt > 0), deadline, bootstrap)
                    return
                except PortInUse:
                    self.stop()
                    if attempt == _PORT_ATTEMPTS - 1:
                        raise
                except BaseException:
                    self.stop()
                    raise

    def start_background(self, timeout: float = DEFAULT_START_TIMEOUT) -> int:
        """Start under a detached supervisor process; return its pid once healthy.

        The supervisor is `python -m operators.devcluster up --foreground`: it outlives this
        process, reaps the components (an init that does not would collect zombies), and on
        SIGTERM (`down`) stops them in order.
        """
        self._check_binaries()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._refuse_if_running()
        self._ready_marker.unlink(missing_ok=True)
        supervisor = self._spawn_supervisor(timeout)
        log = self.log_path(SUPERVISOR)
        # The supervisor enforces `timeout` itself; the margin covers its own start-up.
        deadline = time.monotonic() + timeout + 30
        while not self._marked_ready_by(supervisor.pid):
            if supervisor.poll() is not None:
                raise StartupFailed(
                    f"the control plane did not start (supervisor exited with "
                    f"{supervisor.returncode}); tail of {log}:",
                    _tail(log),
                )
            if time.monotonic() >= deadline:
                _terminate_child(supervisor, DEFAULT_STOP_GRACE * len(COMPONENTS))
                raise StartupFailed(
                    f"the supervisor did not report ready; tail of {log}:", _tail(log)
                )
            time.sleep(_POLL_INTERVAL)
        self._ports = None  # the supervisor chose them; read them from state.json
        return supervisor.pid

    def run_foreground(
        self, timeout: float = DEFAULT_START_TIMEOUT, on_ready: Callable[[], None] | None = None
    ) -> None:
        """Start, call `on_ready`, and supervise until SIGINT, SIGTERM or SIGHUP; then stop.

        Raises ControlPlaneError if a component exits on its own. Main thread only, as it
        installs signal handlers.
        """
        self._check_binaries()
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self._start_lock():
            # Checked before the pid file is written: it must not replace a live one.
            self._refuse_if_running()
            _write_atomically(self._pid_path(SUPERVISOR), f"{os.getpid()}\n")
        signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {signum: signal.getsignal(signum) for signum in signals}
        for signum in signals:
            signal.signal(signum, _raise_keyboard_interrupt)
        try:
            self.start(timeout)
            _write_atomically(self._ready_marker, f"{os.getpid()}\n")
            if on_ready is not None:
                on_ready()
            while not (exited := self.exited()):
                time.sleep(1.0)
            codes = ", ".join(f"{name} exited with {code}" for name, code in exited.items())
            raise ControlPlaneError(f"{codes}; logs in {self.log_dir}")
        except KeyboardInterrupt:
            pass  # asked to stop: not an error
        finally:
            for signum in signals:
                signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut stop() short
            if self._procs:  # empty if start() failed: it cleaned up, and nothing else is ours
                self.stop()
            if self._recorded_pid(SUPERVISOR) == os.getpid():
                self._pid_path(SUPERVISOR).unlink()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def stop(self, grace: float = DEFAULT_STOP_GRACE) -> dict[str, int]:
        """Stop this workdir's control plane, whoever started it; return the pids stopped.

        A supervisor (see start_background) gets SIGTERM and stops the components itself.
        Components go in reverse start order: SIGTERM, then SIGKILL after `grace` seconds.
        """
        running = self.running()
        stopped: dict[str, int] = {}  # in the order they are stopped
        supervisor = self.supervisor_pid()
        if supervisor is not None:
            stopped[SUPERVISOR] = supervisor
            _terminate_foreign(supervisor, grace * len(COMPONENTS) + 5)
        stopped.update((name, running[name]) for name in reversed(COMPONENTS) if name in running)
        for name in reversed(COMPONENTS):
            proc = self._procs.pop(name, None)
            if proc is not None:
                _terminate_child(proc, grace)
            else:
                pid = self._recorded_pid(name)
                if pid is not None:  # only if the supervisor did not, or there is none
                    _terminate_foreign(pid, grace)
            self._pid_path(name).unlink(missing_ok=True)
        self._ready_marker.unlink(missing_ok=True)
        return stopped

    def running(self) -> dict[str, int]:
        """Pids of this workdir's components that are alive, by component."""
        found = {}
        for name in COMPONENTS:
            proc = self._procs.get(name)
            pid = proc.pid if proc is not None and proc.poll() is None else None
            pid = pid or self._recorded_pid(name)
            if pid is not None:
                found[name] = pid
        return found

    def supervisor_pid(self) -> int | None:
        """The pid of another process supervising this workdir's control plane, if any."""
        pid = self._recorded_pid(SUPERVISOR)
        return None if pid == os.getpid() else pid

    def exited(self) -> dict[str, int]:
        """Exit codes of the components this object started that have since exited."""
        return {
            name: code for name, proc in self._procs.items() if (code := proc.poll()) is not None
        }

    def ready(self) -> bool:
        """Whether the apiserver answers /readyz with 200."""
        try:
            return self._https_status("/readyz") == 200
        except ControlPlaneError:
            return False

    def api_client(self) -> ApiClient:
        """A `kubernetes.client.ApiClient` with the admin credentials; close it when done."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    # -- start, step by step

    def _check_binaries(self) -> None:
        missing = missing_binaries(self.bin_dir)
        if missing:
            raise BinaryNotFound(
                f"{', '.join(missing)} not found in {_display(self.bin_dir)}: run `make tools`"
            )

    @contextlib.contextmanager
    def _start_lock(self) -> Iterator[None]:
        # Two `up`s racing on one workdir would both pass the pid check. The lock file's fd
        # is not inherited (Popen closes fds), so the components never hold it.
        with open(self.workdir / ".start.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise AlreadyRunning(
                    f"another process is starting a control plane in {_display(self.workdir)}"
                ) from None
            yield

    def _refuse_if_running(self) -> None:
        running = self.running()
        supervisor = self.supervisor_pid()
        if supervisor is not None:
            running[SUPERVISOR] = supervisor
        if running:
            pids = ", ".join(f"{name} {pid}" for name, pid in running.items())
            raise AlreadyRunning(
                f"a control plane is already running in {_display(self.workdir)} ({pids}); "
                "stop it with `down` first"
            )
        for name in COMPONENTS:
            self._pid_path(name).unlink(missing_ok=True)  # stale: their processes are gone

    def _choose_ports(self, *, fresh: bool) -> Ports:
        previous = None if fresh else self._load_ports()
        if previous is not None and all(port_is_free(p) for p in previous.all()):
            return previous
        etcd_client, etcd_peer, apiserver = _free_ports(3)
        return Ports(etcd_client=etcd_client, etcd_peer=etcd_peer, apiserver=apiserver)

    def _launch(
        self,
        ports: Ports,
        deadline: float,
        bootstrap: Callable[[ApiClient], None] | None = None,
    ) -> None:
        self._ports = ports
        self._ssl = None
        _write_atomically(self.workdir / "state.json", json.dumps({"ports": asdict(ports)}))
        self._write_kubeconfigs()

        # Sequential on purpose: kube-controller-manager gives up if the apiserver is not
        # healthy within 10s, which a cold apiserver on a small machine can exceed.
        self._spawn(ETCD, self._etcd_args())
        self._wait_until(ETCD, self._etcd_healthy, deadline)
        self._spawn(APISERVER, self._apiserver_args())
        self._wait_until(APISERVER, self.ready, deadline)
        if bootstrap is not None:
            with self.api_client() as api:
                bootstrap(api)
        self._spawn(CONTROLLER_MANAGER, self._controller_manager_args())
        self._wait_until(CONTROLLER_MANAGER, self._default_service_account_exists, deadline)
        self._wait_for_fresh_service_account(deadline)

    def _spawn(self, name: str, args: list[str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._pid_path(name).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path(name), "wb") as log:
            # A session of their own: Ctrl-C in the terminal reaches only the CLI, which
            # then stops them in order, and closing the terminal does not SIGHUP them.
            proc = subprocess.Popen(
                [str(self.bin_dir / name), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=die_with_parent_hook(),
            )
        self._procs[name] = proc
        self._pid_path(name).write_text(f"{proc.pid}\n")

    def _spawn_supervisor(self, timeout: float) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", __package__ or "operators.devcluster", "up"]
        command += ["--foreground", f"--timeout={timeout}"]
        command += ["--workdir", str(self.workdir), "--bin-dir", str(self.bin_dir)]
        with open(self.log_path(SUPERVISOR), "wb") as log:
            # Its own session: it survives this process and the terminal it runs in.
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,  # so `-m operators...` imports this checkout
                start_new_session=True,
            )

    def _marked_ready_by(self, pid: int) -> bool:
        try:
            return int(self._ready_marker.read_text().strip()) == pid
        except (OSError, ValueError):
            return False

    def _wait_until(self, name: str, probe: Callable[[], bool], deadline: float) -> None:
        while True:
            self._raise_if_any_exited()
            if probe():
                return
            if time.monotonic() >= deadline:
                raise StartupFailed(
                    f"{name} did not become ready in time; tail of {self.log_path(name)}:",
                    _tail(self.log_path(name)),
                )
            time.sleep(_POLL_INTERVAL)

    def _raise_if_any_exited(self) -> None:
        for name, code in self.exited().items():
            log = self.log_path(name)
            tail = _tail(log)
            busy = _address_in_use_line(tail)
            if busy:
                raise PortInUse(f"{name} could not bind its port on {LOOPBACK}: {busy}", tail)
            raise StartupFailed(f"{name} exited with code {code}; tail of {log}:", tail)

    # -- probes

    def _etcd_healthy(self) -> bool:
        url = f"http://{LOOPBACK}:{self.ports.etcd_client}/health"
        # No proxy: an http_proxy in the environment must not see loopback traffic.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=2) as response:
                return json.load(response).get("health") == "true"
        except (OSError, ValueError):
            return False

    def _default_service_account_exists(self) -> bool:
        # kube-controller-manager's serviceaccount controller creates it, so it proves the
        # controllers run with working credentials, not only that the process is up.
        path = "/api/v1/namespaces/default/serviceaccounts/default"
        try:
            return self._https_status(path) == 200
        except ControlPlaneError:
            return False

    def _wait_for_fresh_service_account(self, deadline: float) -> None:
        # In a warm workdir default/default exists before kube-controller-manager starts, so
        # it proves nothing there; a new namespace gets its ServiceAccount only from a
        # serviceaccount controller that runs now.
        probe = f"ostack-devcluster-probe-{secrets.token_hex(4)}"
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": probe}}
        status = self._https("POST", "/api/v1/namespaces", body)
        if status != 201:
            raise StartupFailed(f"creating the probe namespace {probe} answered HTTP {status}")
        try:
            path = f"/api/v1/namespaces/{probe}/serviceaccounts/default"
            self._wait_until(CONTROLLER_MANAGER, lambda: self._https("GET", path) == 200, deadline)
        finally:
            with contextlib.suppress(ControlPlaneError):
                self._https("DELETE", f"/api/v1/namespaces/{probe}")

    def _https_status(self, path: str) -> int:
        return self._https("GET", path)

    def _https(self, method: str, path: str, body: dict[str, Any] | None = None) -> int:
        """The HTTP status of an admin request to the apiserver; raises if it cannot connect."""
        if self._ssl is None:
            if not self.pki.crt("ca").exists():
                raise ControlPlaneError(f"no certificates in {self.pki.dir}")
            context = ssl.create_default_context(cafile=str(self.pki.crt("ca")))
            context.load_cert_chain(str(self.pki.crt("admin")), str(self.pki.key("admin")))
            self._ssl = context
        handler = urllib.request.HTTPSHandler(context=self._ssl)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), handler)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.server + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with opener.open(request, timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code
        except OSError as error:
            raise ControlPlaneError(f"{self.server}{path}: {error}") from error

    # -- component flags

    def _etcd_args(self) -> list[str]:
        ports = self.ports
        client = f"http://{LOOPBACK}:{ports.etcd_client}"
        peer = f"http://{LOOPBACK}:{ports.etcd_peer}"
        return [
            "--name=ostack-dev",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=ostack-dev={peer}",
            "--initial-cluster-state=new",
            # A throwaway dev store: losing the last writes on a host crash is acceptable,
            # waiting on fsync for every apiserver write is not.
            "--unsafe-no-fsync=true",
            # A restarted member waits a full election timeout (1s by default) before it
            # leads; alone on loopback there is no one to wait for.
            "--heartbeat-interval=10",
            "--election-timeout=100",
            "--log-level=warn",
        ]

    def _apiserver_args(self) -> list[str]:
        pki = self.pki
        return [
            f"--etcd-servers=http://{LOOPBACK}:{self.ports.etcd_client}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={self.ports.apiserver}",
            f"--tls-cert-file={pki.crt('apiserver')}",
            f"--tls-private-key-file={pki.key('apiserver')}",
            f"--client-ca-file={pki.crt('ca')}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.key('sa')}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # KubeVirt's and CDI's own workloads run privileged; without this the apiserver
            # rejects their pod specs outright.
            "--allow-privileged=true",
            # The default reconciler publishes the advertise address as the endpoint of the
            # `kubernetes` Service and fails every 10s: Endpoints may not hold loopback
            # addresses. Nothing here runs in a pod network that could use it anyway.
            "--endpoint-reconciler-type=none",
        ]

    def _controller_manager_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.workdir / 'controller-manager.kubeconfig'}",
            "--controllers=*",
            # Each controller acts as its own ServiceAccount, as in a real cluster, so RBAC
            # gaps show up here rather than in production.
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={self.pki.key('sa')}",
            f"--root-ca-file={self.pki.crt('ca')}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--leader-elect=false",
            f"--bind-address={LOOPBACK}",
            "--secure-port=0",  # nothing scrapes it; one port fewer to collide
            # Each controller's credentials cost a few requests at start-up; the default
            # client limit (20/s) spreads them over seconds on every cold start.
            "--kube-api-qps=200",
            "--kube-api-burst=400",
        ]

    # -- files

    def _write_kubeconfigs(self) -> None:
        pki = self.pki
        write_kubeconfig(
            self.kubeconfig, self.server, pki.crt("ca"), pki.crt("admin"), pki.key("admin")
        )
        write_kubeconfig(
            self.workdir / "controller-manager.kubeconfig",
            self.server,
            pki.crt("ca"),
            pki.crt("controller_manager"),
            pki.key("controller_manager"),
        )

    def _load_ports(self) -> Ports | None:
        try:
            return Ports(**json.loads((self.workdir / "state.json").read_text())["ports"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _recorded_pid(self, name: str) -> int | None:
        """The pid in `name`'s pid file if that process is alive and is this workdir's."""
        try:
            pid = int(self._pid_path(name).read_text().strip())
        except (OSError, ValueError):
            return None
        if _is_alive(pid) and _runs_for(pid, name, self.workdir):
            return pid
        return None


# --- certificates --------------------------------------------------------------------------


def ensure_pki(pki_dir: Path) -> Pki:
    """Create the CA, certificates and service-account keys unless `pki_dir` has them."""
    pki = Pki(pki_dir)
    if pki.crt("ca").exists():
        return pki
    if shutil.which("openssl") is None:
        raise ControlPlaneError("openssl not found on PATH: install it to create certificates")
    # Built aside and renamed into place, so an interrupted run never leaves half a PKI
    # that a later start would take for complete.
    partial = pki_dir.with_name(pki_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700, parents=True)
    _generate_pki(Pki(partial))
    partial.rename(pki_dir)
    return pki


def _generate_pki(pki: Pki) -> None:
    _new_key(pki.key("ca"))
    ca = ["-key", str(pki.key("ca")), "-subj", "/CN=ostack-dev-ca", "-out", str(pki.crt("ca"))]
    _openssl_with_config(
        ["req", "-x509", "-new", *ca, "-days", str(_CERT_DAYS), "-sha256"],
        extensions=[
            "basicConstraints = critical, CA:TRUE",
            "keyUsage = critical, keyCertSign, cRLSign, digitalSignature",
            "subjectKeyIdentifier = hash",
        ],
    )
    alt_names = [
        f"IP:{LOOPBACK}",
        f"IP:{KUBERNETES_SERVICE_IP}",
        "DNS:localhost",
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local",
    ]
    _issue(pki, "apiserver", "/CN=kube-apiserver", "serverAuth", alt_names)
    _issue(pki, "admin", f"/O=system:masters/CN={ADMIN_USER}", "clientAuth")
    # RBAC's bootstrap policy binds this exact user name to the controller-manager's roles.
    _issue(pki, "controller_manager", "/CN=system:kube-controller-manager", "clientAuth")
    _new_key(pki.key("sa"))
    _openssl(["pkey", "-in", str(pki.key("sa")), "-pubout", "-out", str(pki.sa_pub)])


def _issue(
    pki: Pki, name: str, subject: str, usage: str, alt_names: list[str] | None = None
) -> None:
    key, crt = pki.key(name), pki.crt(name)
    csr = pki.dir / f"{name}.csr"
    _new_key(key)
    _openssl(["req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr)])
    extensions = [
        "basicConstraints = critical, CA:FALSE",
        "keyUsage = critical, digitalSignature",
        f"extendedKeyUsage = {usage}",
        "authorityKeyIdentifier = keyid",
    ]
    if alt_names:
        extensions.append(f"subjectAltName = {', '.join(alt_names)}")
    signing = ["-CA", str(pki.crt("ca")), "-CAkey", str(pki.key("ca"))]
    validity = ["-set_serial", str(secrets.randbits(63)), "-days", str(_CERT_DAYS), "-sha256"]
    _openssl_with_config(
        ["x509", "-req", "-in", str(csr), *signing, *validity, "-out", str(crt)],
        extensions=extensions,
        config_flag="-extfile",
    )
    csr.unlink()


def _new_key(path: Path) -> None:
    # P-256: instant to generate, and accepted by Kubernetes for TLS and token signing.
    _openssl(
        ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)]
    )
    path.chmod(0o600)


def _openssl_with_config(
    args: list[str], *, extensions: list[str], config_flag: str = "-config"
) -> None:
    # Our own config, not the system's: distributions' defaults add extensions that clash
    # with ours ("extension already exists").
    config = "[req]\ndistinguished_name = dn\n[dn]\n[ext]\n" + "\n".join(extensions) + "\n"
    with tempfile.NamedTemporaryFile("w", suffix=".cnf") as file:
        file.write(config)
        file.flush()
        _openssl([*args, config_flag, file.name, "-extensions", "ext"])


def _openssl(args: list[str]) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()
        raise ControlPlaneError(
            f"openssl {args[0]} failed: {detail[-1] if detail else result.returncode}",
            result.stderr,
        )


def write_kubeconfig(
    path: Path, server: str, ca_crt: Path, client_crt: Path, client_key: Path
) -> None:
    """A kubeconfig with everything embedded, so it works when copied elsewhere."""
    user = CONTEXT
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_crt)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client_crt),
                    "client-key-data": _b64(client_key),
                },
            }
        ],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user}}],
        "current-context": CONTEXT,
        "preferences": {},
    }
    _write_atomically(path, yaml.safe_dump(document, sort_keys=False))


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


# --- processes -----------------------------------------------------------------------------


def die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when the starting thread dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def hook() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


def _terminate_child(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _terminate_foreign(pid: int, grace: float) -> None:
    """Stop a process that another process started: we cannot wait(), only watch /proc."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, grace):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, 5.0)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL)
    return True


def _is_alive(pid: int) -> bool:
    # A zombie has exited and holds no ports; it only waits for its parent to reap it,
    # which a container's init may never do.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _runs_for(pid: int, name: str, workdir: Path) -> bool:
    """Whether `pid` is `name` (a component or the supervisor) for `workdir`.

    Checked before signalling, so a pid file whose pid was recycled harms nobody.
    """
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if name == SUPERVISOR:
        # Its argv need not name the workdir (the default, or a relative path), so the pid
        # file's location has to vouch for that; the command line shows it is a supervisor.
        package = os.fsencode(__package__ or "operators.devcluster")
        return package in argv and b"up" in argv and b"--foreground" in argv
    if not argv or Path(os.fsdecode(argv[0])).name != name:
        return False
    marker = os.fsencode(f"{workdir}{os.sep}")
    return any(marker in arg for arg in argv[1:])


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _free_ports(count: int) -> list[int]:
    # All bound at once so the kernel hands out distinct ports.
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


# --- small helpers -------------------------------------------------------------------------


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - 64 * 1024))
            text = file.read().decode("utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


_ADDRESS_IN_USE = re.compile(r"[^\n]*address already in use[^\n]*", re.IGNORECASE)


def _address_in_use_line(log_tail: str) -> str | None:
    match = _ADDRESS_IN_USE.search(log_tail)
    return match.group(0).strip()[-200:] if match else None


def _write_atomically(path: Path, text: str) -> None:
    # Readers (kubectl, `env` in another shell) never see a half-written file; 0600 because
    # kubeconfigs hold private keys.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _display(path: Path) -> str:
    """`path` relative to the working directory when it is inside it (`.tools/bin`)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
