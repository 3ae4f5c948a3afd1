"""The status simulator: KubeVirt's, CDI's and a CSI driver's *runtime*, played against a real
apiserver so operators can be tested end to end without nodes.

It is a controller like the ones it replaces: one watch per resource feeds a de-duplicating
delay queue, workers reconcile a key by reading the object afresh and taking at most one step,
and an object already in its target state costs no write (status is compared before it is
patched, through the status subresource, as field manager `ostack-simulator`). What it does:

* VirtualMachine: creates the DataVolumes of its `dataVolumeTemplates` (owned by the VM;
  printableStatus Provisioning until they succeed, DataVolumeError if one fails), then
  runs a VirtualMachineInstance while `spec.runStrategy` is Always,
  RerunOnFailure or Once (or the legacy `spec.running: true`), deletes it for Halted, leaves
  it as it is for Manual. A VMI deleted under a VM that should run is recreated (a restart).
  The VMI is reported Running on node `sim-node-0` with one address per interface (pod
  network 10.244.0.0/16, Multus networks 10.245.0.0/16), and the VM's status follows it.
* Storage, for the provisioner/driver `sim.csi.ostack.dev`: the default StorageClass and
  VolumeSnapshotClass `standard` are created if absent; claims get a PV pre-bound to them
  (kube-controller-manager's PV controller does the binding), grown claims get their volume
  and `status.capacity` grown, released volumes with policy Delete are deleted, and
  VolumeSnapshots get a VolumeSnapshotContent and become readyToUse.
* Cluster API (capi.py): a Cluster's KubevirtCluster, KubeadmControlPlane and
  MachineDeployments become ready at their versions, `<cluster>-kubeconfig` appears, and
  the Cluster goes Provisioned; its deletion completes a step later.
* DataVolume: gets its PVC, then goes Pending -> ImportScheduled -> ImportInProgress (progress
  in `import_steps` steps) -> Succeeded once the claim is bound; clones go through
  CloneScheduled/CloneInProgress, uploads stop at UploadReady (see below).

Annotations, the simulator's stand-ins for what needs a real runtime:

* `sim.ostack.dev/paused: "true"` on a VM: the VMI gets `Paused=True` (and Ready=False,
  as the launcher pod's readiness gate does) and the VM `printableStatus: Paused`;
  removing it unpauses. KubeVirt's own pause API (`PUT .../virtualmachineinstances/<name>/
  pause` in `subresources.kubevirt.io`, what `virtctl pause` calls) is served by the
  simulator too (`subresources.py`) and sets this annotation.
* `sim.ostack.dev/fail-schedule: "<message>"` on a VM or its namespace: a VMI not yet running
  stays in phase Scheduling with `PodScheduled=False` (reason Unschedulable, the message or a
  default one); the VM shows `ErrorUnschedulable`. Removing it lets the VMI run.
* `sim.ostack.dev/fail-import: "<message>"` on a DataVolume or its namespace, or an import URL
  whose host ends in `.invalid` (RFC 2606): the DataVolume goes Failed with CDI's Running
  condition reason Error and restartCount 1. Once the cause is gone, the import starts over.
* `sim.ostack.dev/uploaded: "true"` on an upload DataVolume: the upload (`virtctl
  image-upload`) finished; it then goes from UploadReady to Succeeded.

How long things take is set by `Delays`, or OSTACK_SIM_* environment variables. Run it alone
with `python -m operators.devcluster.simulator --kubeconfig PATH`.
"""

from __future__ import annotations

from types import TracebackType

from kubernetes import client

from operators.devcluster.simulator.capi import Clusters
from operators.devcluster.simulator.cdi import DataVolumes
from operators.devcluster.simulator.common import (
    DRIVER,
    FAIL_IMPORT,
    FAIL_SCHEDULE,
    HOLD_DELETION,
    NODE_NAME,
    PAUSED,
    UPLOADED,
    Delays,
)
from operators.devcluster.simulator.engine import Context, Engine, namespace_source
from operators.devcluster.simulator.kube import FIELD_MANAGER
from operators.devcluster.simulator.storage import (
    Claims,
    Classes,
    SnapshotContents,
    Snapshots,
    Volumes,
    ensure_classes,
)
from operators.devcluster.simulator.subresources import SubresourceServer
from operators.devcluster.simulator.virt import VirtualMachines

__all__ = [
    "DRIVER",
    "FAIL_IMPORT",
    "FAIL_SCHEDULE",
    "FIELD_MANAGER",
    "HOLD_DELETION",
    "NODE_NAME",
    "PAUSED",
    "UPLOADED",
    "Delays",
    "Simulator",
]

DEFAULT_WORKERS = 4


class Simulator:
    """The status simulator; `start()` returns once its watches have listed, `stop()` ends it.

    It makes its own ApiClient from `api_client`'s configuration (user agent
    `ostack-simulator`), so the caller's client is left as it was. `delays` defaults to
    `Delays.from_env()`.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        delays: Delays | None = None,
        *,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self.delays = delays if delays is not None else Delays.from_env()
        self._engine = Engine(api_client, workers)
        ctx = Context(self._engine.kube, self.delays, self._engine.timers)
        vms = VirtualMachines(ctx)
        claims = Claims(ctx)
        volumes = Volumes(ctx, claims)
        data_volumes = DataVolumes(ctx)
        snapshots = Snapshots(ctx)
        clusters = Clusters(ctx)
        self._engine.register(vms, *vms.sources())
        self._engine.register(claims, *claims.sources())
        self._engine.register(volumes, *volumes.sources())
        self._engine.register(data_volumes, *data_volumes.sources())
        self._engine.register(snapshots, *snapshots.sources())
        self._engine.register(clusters, *clusters.sources())
        self._engine.register(SnapshotContents(ctx))
        self._engine.register(Classes(ctx))
        self._engine.watch(namespace_source(self._engine.kube, vms.kind, data_volumes.kind))
        self._subresources = SubresourceServer(self._engine.kube)

    def start(self) -> None:
        # The classes before anything else, so that claims created once start() returned get
        # the default class at admission; a class whose API is not served yet is retried.
        if not ensure_classes(self._engine.kube):
            self._engine.enqueue([Classes.key])
        self._engine.start()
        self._subresources.start()

    def stop(self) -> None:
        self._subresources.stop()
        self._engine.stop()

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
