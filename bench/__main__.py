"""`make bench`: how fast ostack converges and what it costs, on the local control plane.

    python -m bench [--instances 500] [--json bench/results.json]

A real kube-apiserver + etcd + kube-controller-manager, the status simulator (fast
delays), and the identity, image and compute operators as their own processes. It
applies N Instances at once (their Image already active) and prints:

- convergence: time until every VirtualMachine exists and until every Instance is ACTIVE,
  p50/p99 per object, and the same apiserver's time for N bare creates of ConfigMaps in
  the same run, as a ratio;
- API cost, from the apiserver's own request metrics: mutating requests per Instance at
  creation (by resource), and in a quiet window after convergence (resync) and after a
  SIGKILL and restart of the operators; both should be 0;
- the operators' idle CPU and RSS with the objects in place, and RSS growth per 1,000
  Instances.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

from operators.devcluster.controlplane import REPO_ROOT, ControlPlane, die_with_parent_hook
from operators.devcluster.install import install_everything
from operators.devcluster.simulator import Delays, Simulator

SERVICES = ("identity", "image", "compute")
MUTATING = {"POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION"}
REQUEST = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")
# What ostack's operators write for an Instance; the rest is the simulator (KubeVirt, CDI)
# or the benchmark's own creates.
OPERATOR_WRITES = {
    ("compute.ostack.dev", "instances", "", "PATCH"),
    ("compute.ostack.dev", "instances", "status", "PATCH"),
    ("kubevirt.io", "virtualmachines", "", "APPLY"),
    ("kubevirt.io", "virtualmachines", "", "PATCH"),
    ("", "secrets", "", "APPLY"),
    ("", "secrets", "", "PATCH"),
    ("", "events", "", "POST"),
    ("events.k8s.io", "events", "", "POST"),
    ("identity.ostack.dev", "projects", "status", "PATCH"),
}


class Process:
    """One operator process, as the chart runs it: one service each."""

    def __init__(self, service: str, kubeconfig: Path, log: Path) -> None:
        self.service, self.kubeconfig, self.log = service, kubeconfig, log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "operators", "--service", self.service, "--no-webhook"]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent_hook(),
            )

    def kill(self) -> None:
        if self.popen is not None:
            self.popen.kill()
            self.popen.wait()

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


def requests(api: client.ApiClient) -> Counter[tuple[str, str, str, str]]:
    """The apiserver's mutating request counts by (group, resource, subresource, verb)."""
    response = api.call_api("GET", f"{api.configuration.host}/metrics")
    response.read()
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for line in response.data.decode().splitlines():
        match = REQUEST.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("verb") in MUTATING:
            key = (
                labels.get("group", ""),
                labels["resource"],
                labels.get("subresource", ""),
                labels["verb"],
            )
            counts[key] += int(float(match["value"]))
    return counts


def operator_writes(before: Counter, after: Counter) -> Counter:
    delta = after - before
    return Counter({k: v for k, v in delta.items() if k in OPERATOR_WRITES})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait(probe, what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def run(count: int, workdir: Path) -> dict[str, Any]:
    plane = ControlPlane(workdir / "plane")
    plane.start(bootstrap=install_everything)
    delays = Delays(
        vm_start=0.05, import_step=0.05, import_steps=2, bind=0.05, resize=0.05, snapshot=0.05
    )
    processes = [Process(s, plane.kubeconfig, workdir / f"{s}.log") for s in SERVICES]
    try:
        with plane.api_client() as api, Simulator(api, delays, workers=8):
            for process in processes:
                process.start()
            return measure(api, count, processes)
    finally:
        for process in processes:
            process.kill()
        plane.stop()


def measure(api: client.ApiClient, count: int, processes: list[Process]) -> dict[str, Any]:
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    project = f"bench-{uuid.uuid4().hex[:4]}"
    custom.create_cluster_custom_object(
        "identity.ostack.dev",
        "v1alpha1",
        "projects",
        {
            "apiVersion": "identity.ostack.dev/v1alpha1",
            "kind": "Project",
            "metadata": {"name": project},
            "spec": {},
        },
    )
    wait(
        lambda: (
            custom.get_cluster_custom_object("identity.ostack.dev", "v1alpha1", "projects", project)
            .get("status", {})
            .get("phase")
            == "Ready"
        ),
        "the Project",
        120,
    )
    custom.create_namespaced_custom_object(
        "image.ostack.dev",
        "v1alpha1",
        project,
        "images",
        {
            "apiVersion": "image.ostack.dev/v1alpha1",
            "kind": "Image",
            "metadata": {"name": "cirros"},
            "spec": {
                "source": {"http": {"url": "http://images.example.org/c.img"}},
                "diskFormat": "qcow2",
            },
        },
    )
    wait(
        lambda: (
            custom.get_namespaced_custom_object(
                "image.ostack.dev", "v1alpha1", project, "images", "cirros"
            )
            .get("status", {})
            .get("phase")
            == "active"
        ),
        "the Image",
        120,
    )
    time.sleep(2)
    compute = processes[-1]
    rss_empty = sum(p.rss_bytes() for p in processes)
    before = requests(api)

    created: dict[str, float] = {}

    def create(index: int) -> None:
        name = f"vm-{index:04d}"
        custom.create_namespaced_custom_object(
            "compute.ostack.dev",
            "v1alpha1",
            project,
            "instances",
            {
                "apiVersion": "compute.ostack.dev/v1alpha1",
                "kind": "Instance",
                "metadata": {"name": name},
                "spec": {"flavor": "m1.tiny", "image": {"name": "cirros"}},
            },
        )
        created[name] = time.monotonic()

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(create, range(count)))
    vm_seen: dict[str, float] = {}
    active: dict[str, float] = {}
    deadline = start + max(600, count * 2)
    while (len(vm_seen) < count or len(active) < count) and time.monotonic() < deadline:
        now = time.monotonic()
        for vm in custom.list_namespaced_custom_object(
            "kubevirt.io", "v1", project, "virtualmachines"
        )["items"]:
            vm_seen.setdefault(vm["metadata"]["name"], now)
        for inst in custom.list_namespaced_custom_object(
            "compute.ostack.dev", "v1alpha1", project, "instances"
        )["items"]:
            if (inst.get("status") or {}).get("phase") == "ACTIVE":
                active.setdefault(inst["metadata"]["name"], now)
        time.sleep(0.25)
    if len(active) < count:
        raise TimeoutError(f"only {len(active)} of {count} Instances ACTIVE")
    all_vms, all_active = max(vm_seen.values()) - start, max(active.values()) - start
    vm_latency = [vm_seen[n] - created[n] for n in created]
    active_latency = [active[n] - created[n] for n in created]
    time.sleep(3)
    after_creation = requests(api)
    creation = operator_writes(before, after_creation)

    # The same apiserver, N bare creates of a comparable small object, the same way.
    bare_ns = f"bare-{uuid.uuid4().hex[:4]}"
    core.create_namespace({"metadata": {"name": bare_ns}})
    bare_start = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(
            pool.map(
                lambda i: core.create_namespaced_config_map(
                    bare_ns, {"metadata": {"name": f"c-{i:04d}"}, "data": {"k": "v"}}
                ),
                range(count),
            )
        )
    bare = time.monotonic() - bare_start

    # Resync: a quiet window with everything converged.
    quiet_before = requests(api)
    cpu_before = {p.service: p.cpu_seconds() for p in processes}
    window = 20.0
    time.sleep(window)
    resync = operator_writes(quiet_before, requests(api))
    idle_cpu = {p.service: (p.cpu_seconds() - cpu_before[p.service]) / window for p in processes}
    rss = {p.service: p.rss_bytes() for p in processes}

    # Restart: SIGKILL every operator, start them again, let them resume everything.
    restart_before = requests(api)
    for process in processes:
        process.kill()
        process.start()
    time.sleep(30)
    restart = operator_writes(restart_before, requests(api))

    rss_total = sum(rss.values())
    return {
        "instances": count,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "convergence": {
            "all_vms_seconds": round(all_vms, 2),
            "all_active_seconds": round(all_active, 2),
            "vm_latency_p50": round(statistics.median(vm_latency), 2),
            "vm_latency_p99": round(percentile(vm_latency, 0.99), 2),
            "active_latency_p50": round(statistics.median(active_latency), 2),
            "active_latency_p99": round(percentile(active_latency, 0.99), 2),
            "bare_creates_seconds": round(bare, 2),
            "ratio_vms_to_bare": round(all_vms / bare, 2),
        },
        "api_cost": {
            "writes_per_instance_at_creation": round(sum(creation.values()) / count, 2),
            "by_resource": {
                "/".join(filter(None, k[:3])) + f" {k[3]}": round(v / count, 2)
                for k, v in sorted(creation.items())
            },
            "writes_per_object_on_resync": round(sum(resync.values()) / count, 4),
            "writes_per_object_on_restart": round(sum(restart.values()) / count, 4),
        },
        "operators": {
            "idle_cpu_percent": {k: round(100 * v, 2) for k, v in idle_cpu.items()},
            "rss_mib": {k: round(v / 2**20, 1) for k, v in rss.items()},
            "rss_growth_mib_per_1000_instances": round(
                (rss_total - rss_empty) / 2**20 / count * 1000, 1
            ),
        },
        "compute_log": str(compute.log),
    }


def show(result: dict[str, Any]) -> str:
    c, a, o = result["convergence"], result["api_cost"], result["operators"]
    n = result["instances"]
    rows = [
        ("Instances applied at once", f"{n}"),
        ("every VirtualMachine exists", f"{c['all_vms_seconds']} s"),
        ("every Instance ACTIVE", f"{c['all_active_seconds']} s"),
        ("per object to VM, p50 / p99", f"{c['vm_latency_p50']} / {c['vm_latency_p99']} s"),
        (
            "per object to ACTIVE, p50 / p99",
            f"{c['active_latency_p50']} / {c['active_latency_p99']} s",
        ),
        (f"{n} bare ConfigMap creates", f"{c['bare_creates_seconds']} s"),
        ("ratio: all VMs / bare creates", f"{c['ratio_vms_to_bare']}x"),
        ("operator writes per Instance at creation", f"{a['writes_per_instance_at_creation']}"),
        *((f"  {k}", f"{v}") for k, v in a["by_resource"].items()),
        ("operator writes per object, resync window", f"{a['writes_per_object_on_resync']}"),
        ("operator writes per object, after restart", f"{a['writes_per_object_on_restart']}"),
        (
            "idle CPU % (identity, image, compute)",
            ", ".join(f"{v}" for v in o["idle_cpu_percent"].values()),
        ),
        ("RSS MiB (identity, image, compute)", ", ".join(f"{v}" for v in o["rss_mib"].values())),
        ("RSS growth per 1,000 Instances", f"{o['rss_growth_mib_per_1000_instances']} MiB"),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "bench" / "results.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ostack-bench-") as workdir:
        try:
            result = run(args.instances, Path(workdir))
        except TimeoutError:
            for log in sorted(Path(workdir).glob("*.log")):
                print(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-15:]))
            raise
    result.pop("compute_log")
    print(show(result))
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
