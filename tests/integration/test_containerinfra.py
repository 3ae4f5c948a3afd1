"""Magnum on the real control plane: Clusters become Cluster API objects accepted by the
upstream CAPI and CAPK schemas, and follow Cluster API (played by the status simulator)
through provisioning, scaling, upgrade and deletion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from operators.common.kinds import VERSION
from operators.containerinfra.api import CLUSTER
from operators.devcluster.simulator import HOLD_DELETION
from operators.identity.api import PROJECT
from operators.network.api import NETWORK
from tests.integration.test_compute import an_image
from tests.support import Operator, eventually, refused
from tests.support import create_object as make
from tests.support import patch_spec as patch
from tests.support import read_object as get

pytestmark = pytest.mark.integration

Obj = dict[str, Any]


@pytest.fixture(scope="module", autouse=True)
def operators(run_operator: Callable[..., Operator], simulator: object) -> None:
    for service in ("identity", "image", "containerinfra"):
        run_operator(service)


def cluster(api: client.ApiClient, ns: str, name: str) -> Obj:
    return get(api, CLUSTER.group, VERSION, CLUSTER.plural, ns, name) or {}


def in_phase(api: client.ApiClient, ns: str, name: str, phase: str) -> Obj:
    return eventually(
        lambda: (c := cluster(api, ns, name)).get("status", {}).get("phase") == phase and c,
        f"Cluster {name} {phase}",
    )


def capi(api: client.ApiClient, ns: str, group: str, version: str, plural: str, name: str):
    return get(api, group, version, plural, ns, name)


def spec(**extra: Any) -> Obj:
    return {
        "kubernetesVersion": "v1.33.1",
        "image": {"name": "cirros"},
        "controlPlane": {"replicas": 1, "flavor": "m1.medium"},
        "nodeGroups": [{"name": "workers", "replicas": 2, "flavor": "m1.small"}],
        "keyPairs": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOstackTestKey tester@laptop"],
        **extra,
    }


def test_a_cluster_becomes_cluster_api_objects_and_goes_ready(
    api: client.ApiClient, project
) -> None:
    ns = project()
    an_image(api, ns)
    make(api, CLUSTER, ns, "k8s", spec())
    obj = in_phase(api, ns, "k8s", "Ready")
    status = obj["status"]
    assert status["apiEndpoint"] == f"https://k8s-lb.{ns}.svc:6443"
    assert status["kubeconfigSecret"] == "k8s-kubeconfig"
    assert (status["controlPlaneReady"], status["workersReady"]) == (1, 2)
    assert status["kubernetesVersion"] == "v1.33.1"

    capi_cluster = capi(api, ns, "cluster.x-k8s.io", "v1beta2", "clusters", "k8s")
    assert capi_cluster["spec"]["controlPlaneRef"] == {
        "apiGroup": "controlplane.cluster.x-k8s.io",
        "kind": "KubeadmControlPlane",
        "name": "k8s-control-plane",
    }
    kcp = capi(
        api,
        ns,
        "controlplane.cluster.x-k8s.io",
        "v1beta2",
        "kubeadmcontrolplanes",
        "k8s-control-plane",
    )
    assert kcp["spec"]["kubeadmConfigSpec"]["users"][0]["sshAuthorizedKeys"]
    template_name = kcp["spec"]["machineTemplate"]["spec"]["infrastructureRef"]["name"]
    template = capi(
        api,
        ns,
        "infrastructure.cluster.x-k8s.io",
        "v1alpha1",
        "kubevirtmachinetemplates",
        template_name,
    )
    vm = template["spec"]["template"]["spec"]["virtualMachineTemplate"]["spec"]
    assert vm["instancetype"]["name"] == "m1.medium"
    assert vm["dataVolumeTemplates"][0]["spec"]["sourceRef"] == {
        "kind": "DataSource",
        "namespace": ns,
        "name": "image-cirros",
    }
    md = capi(api, ns, "cluster.x-k8s.io", "v1beta2", "machinedeployments", "k8s-workers")
    assert md["spec"]["replicas"] == 2
    assert md["spec"]["template"]["spec"]["version"] == "v1.33.1"
    assert md["metadata"]["ownerReferences"][0]["kind"] == "Cluster"
    assert md["metadata"]["ownerReferences"][0]["apiVersion"] == CLUSTER.api_version


def test_scaling_autoscaling_and_upgrade_change_the_right_fields(
    api: client.ApiClient, project
) -> None:
    ns = project()
    an_image(api, ns)
    make(api, CLUSTER, ns, "k8s", spec())
    in_phase(api, ns, "k8s", "Ready")

    groups = [
        {"name": "workers", "replicas": 3, "flavor": "m1.small"},
        {"name": "burst", "replicas": 1, "flavor": "m1.small", "minReplicas": 1, "maxReplicas": 5},
    ]
    patch(api, CLUSTER, ns, "k8s", {"nodeGroups": groups})
    eventually(lambda: cluster(api, ns, "k8s")["status"].get("workersReady") == 4, "4 workers")
    burst = capi(api, ns, "cluster.x-k8s.io", "v1beta2", "machinedeployments", "k8s-burst")
    assert burst["metadata"]["annotations"] == {
        "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size": "1",
        "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size": "5",
    }
    # The autoscaler owns an autoscaled group's replicas: its change is not reverted.
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        "cluster.x-k8s.io",
        "v1beta2",
        ns,
        "machinedeployments",
        "k8s-burst",
        {"spec": {"replicas": 4}},
    )
    patch(api, CLUSTER, ns, "k8s", {"keyPairs": []})  # any change reconciles
    eventually(lambda: cluster(api, ns, "k8s")["status"].get("workersReady") == 7, "scaled out")
    eventually(
        lambda: (
            cluster(api, ns, "k8s")["status"].get("observedGeneration")
            == cluster(api, ns, "k8s")["metadata"]["generation"]
            and cluster(api, ns, "k8s")["status"]["phase"] == "Ready"
        ),
        "the key change applied",
    )
    assert (
        capi(api, ns, "cluster.x-k8s.io", "v1beta2", "machinedeployments", "k8s-burst")["spec"][
            "replicas"
        ]
        == 4
    )

    # Upgrade: the control plane first, then the workers.
    patch(api, CLUSTER, ns, "k8s", {"kubernetesVersion": "v1.34.0"})
    upgrading = in_phase(api, ns, "k8s", "Upgrading")
    assert "v1.34.0" in upgrading["status"]["conditions"][0]["message"]
    done = in_phase(api, ns, "k8s", "Ready")
    assert done["status"]["kubernetesVersion"] == "v1.34.0"
    for group in ("workers", "burst"):
        md = capi(api, ns, "cluster.x-k8s.io", "v1beta2", "machinedeployments", f"k8s-{group}")
        assert md["spec"]["template"]["spec"]["version"] == "v1.34.0"

    # A removed node group goes.
    patch(api, CLUSTER, ns, "k8s", {"nodeGroups": groups[:1]})
    eventually(
        lambda: (
            capi(api, ns, "cluster.x-k8s.io", "v1beta2", "machinedeployments", "k8s-burst") is None
        ),
        "the burst group deleted",
    )


def test_refusals_and_recovery_when_the_image_appears(api: client.ApiClient, project) -> None:
    ns = project()
    make(api, CLUSTER, ns, "early", spec())
    message = in_phase(api, ns, "early", "Error")["status"]["conditions"][0]["message"]
    assert message == f"Image cirros does not exist in Project {ns}"
    an_image(api, ns)  # its becoming active brings the Cluster back
    in_phase(api, ns, "early", "Ready")
    make(api, CLUSTER, ns, "odd", spec(controlPlane={"replicas": 1, "flavor": "m9.huge"}))
    message = in_phase(api, ns, "odd", "Error")["status"]["conditions"][0]["message"]
    assert message == "flavor m9.huge does not exist"
    make(api, NETWORK, ns, "lan", {"type": "bridge"})
    make(api, CLUSTER, ns, "bridged", spec(network={"name": "lan"}))
    message = in_phase(api, ns, "bridged", "Error")["status"]["conditions"][0]["message"]
    assert "a Cluster's network must be a pod Network" in message


def test_an_over_quota_cluster_is_refused(api: client.ApiClient, project) -> None:
    ns = project()
    custom = client.CustomObjectsApi(api)
    custom.patch_cluster_custom_object(
        PROJECT.group, VERSION, PROJECT.plural, ns, {"spec": {"quotas": {"instances": 2}}}
    )
    eventually(
        lambda: (
            custom.get_cluster_custom_object(PROJECT.group, VERSION, PROJECT.plural, ns)
            .get("status", {})
            .get("quotaUsage", {})
            .get("instances", {})
            .get("limit")
            == "2"
        ),
        "the quota in force",
    )
    # One control-plane node and two workers are three Instances.
    message = refused(lambda: make(api, CLUSTER, ns, "big", spec()), status=403)
    assert f"Quota exceeded for instances: requested 3, in use 0, limit 2 (Project {ns})" in message


def test_deletion_waits_for_cluster_api(api: client.ApiClient, project) -> None:
    ns = project()
    an_image(api, ns)
    make(api, CLUSTER, ns, "gone", spec())
    in_phase(api, ns, "gone", "Ready")
    custom = client.CustomObjectsApi(api)
    hold = {"metadata": {"annotations": {HOLD_DELETION: "true"}}}
    custom.patch_namespaced_custom_object(
        "cluster.x-k8s.io", "v1beta2", ns, "clusters", "gone", hold
    )
    custom.delete_namespaced_custom_object(CLUSTER.group, VERSION, ns, CLUSTER.plural, "gone")
    # While Cluster API tears the machines down, the Cluster waits and says so.
    obj = in_phase(api, ns, "gone", "Deleting")
    assert "waiting for Cluster API" in obj["status"]["conditions"][0]["message"]
    assert capi(api, ns, "cluster.x-k8s.io", "v1beta2", "clusters", "gone")["metadata"][
        "deletionTimestamp"
    ]
    release = {"metadata": {"annotations": {HOLD_DELETION: None}}}
    custom.patch_namespaced_custom_object(
        "cluster.x-k8s.io", "v1beta2", ns, "clusters", "gone", release
    )
    eventually(lambda: not cluster(api, ns, "gone"), "the Cluster gone after Cluster API's")
    assert capi(api, ns, "cluster.x-k8s.io", "v1beta2", "clusters", "gone") is None
