"""The VNC console of a running Proxmox guest: ``POST /nodes/{node}/qemu/{vmid}/vncproxy`` (no ``websocket``).

PVE starts a ``vncproxy`` worker that listens on the node's next free port in 5900-5999, accepts ONE connection
within 10 seconds (then the listener is gone) and connects it to the guest's VNC server (``RFB 003.008``). The
answer holds the port, a ``PVEVNC`` ticket and, for a guest with a graphical display, ``password``: an
8-character VNC password that ``qm vncproxy`` sets on the guest's VNC server (it expires 30 s later). That is
what a VNC client authenticates with, so :attr:`ConsoleEndpoint.password` is ``password`` (the ticket only when
PVE sends no password, as for serial-terminal displays, where ``vncterm`` checks the ticket).

The host is where a console proxy reaches the node's ports: option ``console_host`` (default the API host; set
it when the API is reached through a load balancer, since the port is opened on the node named in the URI).

Since qemu-server 9.1.7 (April 2026) the non-websocket listener speaks TLS first (the node's pveproxy
certificate) and RFB inside it; the simulator and PVE 9.1.3 speak RFB directly.
"""

from __future__ import annotations

from agents.base import ConsoleEndpoint
from agents.errors import InvalidState
from agents.proxmox_node import ProxmoxNode

PROXY_WAIT_S = 10.0  # PVE's vncproxy: "my $timeout = 10" for the one connection


def console(node: ProxmoxNode, vm_id: str) -> ConsoleEndpoint:
    entry, _ = node.require(vm_id)
    if entry.get("status") != "running":
        raise InvalidState(
            f"VM {vm_id!r} is {entry.get('status')}: only a running guest has a console",
            host=node.uri,
            code="OPERATION_INVALID",
        )
    answer = node.client.call("POST", node.qemu(entry["vmid"], "/vncproxy"))
    host = node.opts.console_host or node.host.strip("[]")
    password = answer.get("password") or answer["ticket"]
    return ConsoleEndpoint(host=host, port=int(answer["port"]), password=str(password), expires_s=PROXY_WAIT_S)
