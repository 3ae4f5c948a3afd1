"""The containerinfra service's pure parts: what a Cluster becomes in Cluster API, and how
its nodes count against a Project's quotas."""

from __future__ import annotations

from decimal import Decimal

from operators.containerinfra import builders
from operators.containerinfra.api import ClusterSpec
from operators.identity import quota

GI = 2**30
BODY = {
    "apiVersion": "containerinfra.ostack.dev/v1alpha1",
    "kind": "Cluster",
    "metadata": {"name": "k8s", "namespace": "demo", "uid": "c-1"},
}
PLAN = builders.Plan(
    builders.NodeImage("images", "image-ubuntu", Decimal(30 * GI)),
    {"m1.small": Decimal(20 * GI), "m1.large": Decimal(80 * GI)},
    {"network.ostack.dev/name": "private", "network.ostack.dev/project": "demo"},
)


def spec(**extra) -> ClusterSpec:
    return ClusterSpec.model_validate(
        {
            "kubernetesVersion": "v1.33.1",
            "image": {"name": "ubuntu", "project": "images"},
            "controlPlane": {"replicas": 3, "flavor": "m1.large"},
            "nodeGroups": [{"name": "workers", "replicas": 2, "flavor": "m1.small"}],
            **extra,
        }
    )


def test_the_cluster_refers_to_its_control_plane_and_infrastructure() -> None:
    body = builders.capi_cluster(BODY, "demo")
    assert body["apiVersion"] == "cluster.x-k8s.io/v1beta2"
    assert body["spec"]["infrastructureRef"] == {
        "apiGroup": "infrastructure.cluster.x-k8s.io",
        "kind": "KubevirtCluster",
        "name": "k8s",
    }
    assert body["metadata"]["labels"]["cluster.x-k8s.io/cluster-name"] == "k8s"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "c-1"


def test_machine_templates_are_vms_of_the_flavor_from_the_image() -> None:
    template = builders.machine_template(BODY, "demo", "control-plane", "m1.large", PLAN)
    vm = template["spec"]["template"]["spec"]["virtualMachineTemplate"]["spec"]
    assert vm["instancetype"] == {"kind": "VirtualMachineClusterInstancetype", "name": "m1.large"}
    storage = vm["dataVolumeTemplates"][0]["spec"]["storage"]["resources"]["requests"]
    assert storage == {"storage": "80Gi"}  # the larger of the flavor's disk and minDisk
    small = builders.machine_template(BODY, "demo", "workers", "m1.small", PLAN)
    small_vm = small["spec"]["template"]["spec"]["virtualMachineTemplate"]["spec"]
    assert small_vm["dataVolumeTemplates"][0]["spec"]["storage"]["resources"]["requests"] == {
        "storage": "30Gi"
    }
    labels = vm["template"]["metadata"]["labels"]
    assert labels["network.ostack.dev/name"] == "private"
    assert template["metadata"]["name"].startswith("k8s-control-plane-")
    assert small["metadata"]["name"].startswith("k8s-workers-")


def test_a_changed_template_gets_a_new_name_so_machines_roll() -> None:
    first = builders.machine_template(BODY, "demo", "workers", "m1.small", PLAN)
    again = builders.machine_template(BODY, "demo", "workers", "m1.small", PLAN)
    bigger = builders.machine_template(BODY, "demo", "workers", "m1.large", PLAN)
    assert first["metadata"]["name"] == again["metadata"]["name"] != bigger["metadata"]["name"]


def test_control_plane_and_workers() -> None:
    s = spec(keyPairs=["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOstackTestKey me@laptop"])
    template = builders.machine_template(BODY, "demo", "control-plane", "m1.large", PLAN)
    kcp = builders.control_plane(BODY, "demo", s, template)
    assert (kcp["spec"]["replicas"], kcp["spec"]["version"]) == (3, "v1.33.1")
    assert (
        kcp["spec"]["machineTemplate"]["spec"]["infrastructureRef"]["name"]
        == (template["metadata"]["name"])
    )
    assert kcp["spec"]["kubeadmConfigSpec"]["users"][0]["sshAuthorizedKeys"] == s.key_pairs
    group = s.node_groups[0]
    md = builders.machine_deployment(BODY, "demo", group, "v1.32.0", template)
    assert md["spec"]["replicas"] == 2
    assert md["spec"]["template"]["spec"]["version"] == "v1.32.0"
    assert md["spec"]["selector"]["matchLabels"] == md["spec"]["template"]["metadata"]["labels"]
    assert "annotations" not in md["metadata"]


def test_autoscaled_groups_are_annotated_and_leave_replicas_to_the_autoscaler() -> None:
    s = spec(
        nodeGroups=[
            {
                "name": "burst",
                "replicas": 2,
                "flavor": "m1.small",
                "minReplicas": 1,
                "maxReplicas": 9,
            }
        ]
    )
    template = builders.machine_template(BODY, "demo", "burst", "m1.small", PLAN)
    md = builders.machine_deployment(BODY, "demo", s.node_groups[0], "v1.33.1", template, False)
    assert md["metadata"]["annotations"] == {
        builders.AUTOSCALER_MIN: "1",
        builders.AUTOSCALER_MAX: "9",
    }
    assert "replicas" not in md["spec"]


def test_cluster_nodes_count_as_instances_of_their_flavors() -> None:
    nodes = quota.cluster_nodes(
        {
            "controlPlane": {"replicas": 3, "flavor": "m1.large"},
            "nodeGroups": [
                {"name": "a", "replicas": 2, "flavor": "m1.small"},
                {"name": "b", "replicas": 1, "flavor": "m1.small", "maxReplicas": 4},
            ],
        }
    )
    flavors = {
        "m1.small": quota.Flavor(1, Decimal(2 * GI)),
        "m1.large": quota.Flavor(4, Decimal(8 * GI)),
    }
    used = quota.usage(quota.Holdings(instances=nodes), flavors)
    assert (used["instances"], used["cores"], used["ram"]) == (9, 18, Decimal(36 * GI))


def test_worker_bootstrap_is_never_empty() -> None:
    # Cluster API's schema wants a non-empty KubeadmConfigTemplate spec, keys or not.
    template = builders.config_template(BODY, "demo", spec(), "workers")
    assert template["spec"]["template"]["spec"] == {"format": "cloud-config"}
