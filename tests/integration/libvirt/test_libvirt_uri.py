"""validate_uri: syntax only, no libvirt needed (these run everywhere)."""

from __future__ import annotations

import pytest

from agents.errors import InvalidURI
from agents.libvirt_uri import validate_qemu_uri
from agents.registry import validate_uri


@pytest.mark.parametrize(
    "uri",
    [
        "qemu+ssh://user@host/system",
        "qemu:///system",
        "qemu:///session?socket=/tmp/run-cflab1/libvirt/libvirt-sock",
        "qemu+ssh://confluencia@10.0.0.7:2222/system?keyfile=/etc/confluencia/id_ed25519&no_tty=1",
        "qemu+tcp://hv3.dc.example/system",
        "qemu+tls://hv4.dc.example:16514/system?pkipath=/etc/pki/confluencia",
        "qemu+unix:///system?socket=/run/libvirt/libvirt-sock",
    ],
)
def test_valid_uris(uri: str):
    validate_qemu_uri(uri)
    validate_uri("libvirt", uri)


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "garbage",
        "qemu",
        "qemu:/system",
        "qemu://",
        "qemu:///",
        "qemu+ssh://user@host",  # missing path
        "qemu+ssh://user@host/",
        "qemu+ssh:///system",  # ssh without a host
        "qemu+unix://host/system",
        "lxc:///system",  # wrong scheme
        "https://host/system",
        "test:///default",
        "qemu+smoke://host/system",
        "qemu:///system?socket=relative",
        "qemu:///system?socket=/a&socket=/b",
        "qemu:///system?unknown=1",
        "qemu+ssh://user:pw@host/system",
        "qemu+ssh://user@host:notaport/system",
        "qemu:///system#frag",
        "qemu:///sys tem",
    ],
)
def test_invalid_uris(uri: str):
    with pytest.raises(InvalidURI):
        validate_qemu_uri(uri)
    with pytest.raises(InvalidURI):
        validate_uri("libvirt", uri)
