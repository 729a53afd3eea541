"""A throw-away certificate authority for one test control plane, made with the openssl CLI.

EC P-256 keys: generated in milliseconds, accepted by kube-apiserver and Python's ssl.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .process import run_checked

_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_DAYS = "3650"


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ControlPlanePki:
    ca: CertPair
    serving: CertPair  # kube-apiserver's TLS certificate, valid for 127.0.0.1 and localhost
    admin: CertPair  # a client certificate in group system:masters
    service_account_key: Path  # signs service-account tokens
    service_account_public_key: Path  # verifies them


def _signed_cert(
    directory: Path, ca: CertPair, name: str, subject: str, extensions: str
) -> CertPair:
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    ext_file = directory / f"{name}.ext"
    ext_file.write_text(extensions)
    run_checked(
        [
            "openssl",
            "req",
            "-new",
            *_EC_KEY,
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-subj",
            subject,
        ],
        f"openssl: {name} key",
    )
    run_checked(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca.cert),
            "-CAkey",
            str(ca.key),
            "-CAcreateserial",
            "-days",
            _DAYS,
            "-extfile",
            str(ext_file),
            "-out",
            str(cert),
        ],
        f"openssl: sign {name}",
    )
    return CertPair(cert, key)


def make_control_plane_pki(directory: Path) -> ControlPlanePki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertPair(directory / "ca.crt", directory / "ca.key")
    run_checked(
        [
            "openssl",
            "req",
            "-x509",
            *_EC_KEY,
            "-keyout",
            str(ca.key),
            "-out",
            str(ca.cert),
            "-days",
            _DAYS,
            "-subj",
            "/CN=aiscaler-test-ca",
        ],
        "openssl: CA",
    )
    serving = _signed_cert(
        directory,
        ca,
        "apiserver",
        "/CN=kube-apiserver",
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default\n"
        "extendedKeyUsage=serverAuth\n",
    )
    admin = _signed_cert(
        directory,
        ca,
        "admin",
        "/O=system:masters/CN=aiscaler-test-admin",
        "extendedKeyUsage=clientAuth\n",
    )
    service_account_key = directory / "service-account.key"
    run_checked(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            str(service_account_key),
        ],
        "openssl: service-account key",
    )
    service_account_public_key = directory / "service-account.pub"
    run_checked(
        [
            "openssl",
            "pkey",
            "-in",
            str(service_account_key),
            "-pubout",
            "-out",
            str(service_account_public_key),
        ],
        "openssl: service-account public key",
    )
    return ControlPlanePki(ca, serving, admin, service_account_key, service_account_public_key)
