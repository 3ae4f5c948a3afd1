"""Pure builders: an Image's spec in, the CDI and KubeVirt objects it becomes out."""

from __future__ import annotations

from typing import Any

from operators.common import children
from operators.common.schema import quantity_value
from operators.image.api import ImageSpec

CDI = "cdi.kubevirt.io/v1beta1"
INSTANCETYPES = "instancetype.kubevirt.io/v1beta1"
RBAC = "rbac.authorization.k8s.io"
# Who may clone a public or community image: every authenticated identity (KubeVirt
# clones a VM's root disk as the VM namespace's service account).
EVERYONE = "system:authenticated"


def object_name(image: dict[str, Any]) -> str:
    """The name of the DataVolume, its PVC, the DataSource and the preference; prefixed so
    an Image and a Volume of the same name cannot collide."""
    return f"image-{image['metadata']['name']}"


def _meta(image: dict[str, Any], project: str, name: str) -> dict[str, Any]:
    return children.child_metadata(image, project, name, image["metadata"]["namespace"])


def import_size(spec: ImageSpec, default: str) -> str:
    """The PVC size an import asks for: CDI needs one before it knows the image's. minDisk
    when set (an Instance's disk is never smaller), else the cloud's default."""
    if spec.min_disk and quantity_value(spec.min_disk) >= quantity_value(default):
        return spec.min_disk
    return default


def source(spec: ImageSpec, namespace: str, volume_pvc: str | None) -> dict[str, Any]:
    """The DataVolume's `spec.source` for the Image's source."""
    src = spec.source
    if src.http is not None:
        out = {"url": src.http.url}
        if src.http.cert_config_map:
            out["certConfigMap"] = src.http.cert_config_map
        if src.http.secret_ref:
            out["secretRef"] = src.http.secret_ref
        if spec.checksum:
            out["checksum"] = spec.checksum
        return {"http": out}
    if src.registry is not None:
        out = {"url": src.registry.url}
        if src.registry.secret_ref:
            out["secretRef"] = src.registry.secret_ref
        if src.registry.cert_config_map:
            out["certConfigMap"] = src.registry.cert_config_map
        return {"registry": out}
    if src.s3 is not None:
        out = {"url": src.s3.url, "secretRef": src.s3.secret_ref}
        if src.s3.cert_config_map:
            out["certConfigMap"] = src.s3.cert_config_map
        return {"s3": out}
    if src.upload is not None:
        return {"upload": {}}
    assert volume_pvc is not None, "a volume source needs the Volume's PVC"
    return {"pvc": {"namespace": namespace, "name": volume_pvc}}


def data_volume(
    image: dict[str, Any],
    project: str,
    spec: ImageSpec,
    default_size: str,
    volume_pvc: str | None = None,
) -> dict[str, Any]:
    meta = _meta(image, project, object_name(image))
    # Nothing ever mounts an image's PVC directly: bind it at once, even where the storage
    # class waits for a first consumer, so the import starts.
    meta["annotations"] = {"cdi.kubevirt.io/storage.bind.immediate.requested": "true"}
    storage: dict[str, Any] = {}
    if spec.source.volume is None:  # a clone takes its size from the source
        storage["resources"] = {"requests": {"storage": import_size(spec, default_size)}}
    return {
        "apiVersion": CDI,
        "kind": "DataVolume",
        "metadata": meta,
        "spec": {
            "source": source(spec, image["metadata"]["namespace"], volume_pvc),
            "storage": storage,
            "contentType": "kubevirt",
        },
    }


def data_source(image: dict[str, Any], project: str) -> dict[str, Any]:
    """How other Projects refer to the image when they clone it."""
    return {
        "apiVersion": CDI,
        "kind": "DataSource",
        "metadata": _meta(image, project, object_name(image)),
        "spec": {
            "source": {
                "pvc": {"namespace": image["metadata"]["namespace"], "name": object_name(image)}
            }
        },
    }


_WINDOWS_TIMERS = {
    "hpet": {"present": False},
    "hyperv": {},
    "pit": {"tickPolicy": "delay"},
    "rtc": {"tickPolicy": "catchup"},
}
_WINDOWS_HYPERV = {"relaxed": {}, "vapic": {}, "spinlocks": {"spinlocks": 8191}}


def preference_spec(spec: ImageSpec) -> dict[str, Any]:
    """Glance properties (and minRam) as a KubeVirt preference spec; empty if none apply."""
    props = spec.properties
    out: dict[str, Any] = {}
    firmware = props.get("hw_firmware_type")
    if firmware == "uefi":
        out["firmware"] = {"preferredUseEfi": True}
    elif firmware == "bios":
        out["firmware"] = {"preferredUseBios": True}
    devices = {
        field: props[key]
        for key, field in (
            ("hw_disk_bus", "preferredDiskBus"),
            ("hw_cdrom_bus", "preferredCdromBus"),
            ("hw_vif_model", "preferredInterfaceModel"),
        )
        if key in props
    }
    if devices:
        out["devices"] = devices
    if props.get("os_type") == "windows":
        out["clock"] = {"preferredTimer": _WINDOWS_TIMERS}
        out["features"] = {"preferredHyperv": _WINDOWS_HYPERV}
    if spec.min_ram:
        # KubeVirt refuses a VM whose flavor has less memory than its preference requires:
        # Glance's minRam, enforced where the VM is made.
        out["requirements"] = {"memory": {"guest": spec.min_ram}}
    return out


def preference(image: dict[str, Any], project: str, spec: ImageSpec) -> dict[str, Any] | None:
    body = preference_spec(spec)
    if not body:
        return None
    return {
        "apiVersion": INSTANCETYPES,
        "kind": "VirtualMachinePreference",
        "metadata": _meta(image, project, object_name(image)),
        "spec": body,
    }


def grantees(spec: ImageSpec, namespaces: dict[str, str]) -> list[dict[str, str]]:
    """Who may clone the image besides its own Project: every authenticated identity for
    public and community images, the service accounts of the `sharedWith` Projects'
    namespaces (`namespaces`: project -> namespace) for shared ones, nobody otherwise."""
    if spec.visibility in ("public", "community"):
        groups = [EVERYONE]
    elif spec.visibility == "shared":
        groups = [
            f"system:serviceaccounts:{namespaces[p]}"
            for p in sorted(spec.shared_with or [])
            if p in namespaces
        ]
    else:
        groups = []
    return [{"kind": "Group", "apiGroup": RBAC, "name": g} for g in groups]


def clone_grant(
    image: dict[str, Any], project: str, spec: ImageSpec, namespaces: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The Role and RoleBinding CDI checks before a cross-namespace clone (`create` on
    `datavolumes/source`), for this image's PVC alone; None when nobody else may clone."""
    subjects = grantees(spec, namespaces)
    if not subjects:
        return None
    name = f"ostack-clone-{object_name(image)}"
    role = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "Role",
        "metadata": _meta(image, project, name),
        "rules": [
            {
                "apiGroups": ["cdi.kubevirt.io"],
                "resources": ["datavolumes/source"],
                "resourceNames": [object_name(image)],
                "verbs": ["create"],
            }
        ],
    }
    binding = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": _meta(image, project, name),
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
        "subjects": subjects,
    }
    return role, binding


def upload_command(image: dict[str, Any]) -> str:
    return (
        f"virtctl image-upload dv {object_name(image)} --namespace "
        f"{image['metadata']['namespace']} --no-create --image-path=<file>"
    )
