"""The admission webhook: where kopf serves it, its certificate, and its registration.

kopf serves the handlers (`@kopf.on.validate`) at `/<handler id>`; the
ValidatingWebhookConfiguration is ours rather than kopf-managed so that it can be scoped
to Project namespaces (a namespaceSelector) and refuse, not ignore, when the operator
cannot answer: a quota that silently stops counting is worse than a create that waits.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from operators.common.children import PROJECT


@dataclass(frozen=True)
class Endpoint:
    """Where the apiserver reaches the webhook: a URL (local control plane) or a Service
    (in a cluster)."""

    ca_bundle: bytes
    url: str | None = None
    service: tuple[str, str, int] | None = None
    """(namespace, name, port) of the Service in front of the operator."""

    def client_config(self, path: str) -> dict[str, Any]:
        import base64

        config: dict[str, Any] = {"caBundle": base64.b64encode(self.ca_bundle).decode()}
        if self.url is not None:
            config["url"] = f"{self.url.rstrip('/')}/{path}"
        else:
            assert self.service is not None
            namespace, name, port = self.service
            config["service"] = {
                "namespace": namespace,
                "name": name,
                "port": port,
                "path": f"/{path}",
            }
        return config


def self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    """A certificate for `host` (an IP or DNS name) and its key, made once per directory.

    The certificate is its own CA: the apiserver is given it as the caBundle.
    """
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


@dataclass(frozen=True)
class Check:
    """One validating webhook: a kopf handler id and the requests it sees."""

    handler_id: str
    group: str
    plural: str
    operations: tuple[str, ...]


def validating_configuration(
    name: str, endpoint: Endpoint, checks: list[Check], version: str
) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "ostack"}},
        "webhooks": [
            {
                "name": f"{check.handler_id}.{name}",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                "timeoutSeconds": 10,
                "namespaceSelector": {"matchExpressions": [{"key": PROJECT, "operator": "Exists"}]},
                "rules": [
                    {
                        "apiGroups": [check.group],
                        "apiVersions": [version],
                        "resources": [check.plural],
                        "operations": list(check.operations),
                        "scope": "Namespaced",
                    }
                ],
                "clientConfig": endpoint.client_config(check.handler_id),
            }
            for check in checks
        ],
    }
