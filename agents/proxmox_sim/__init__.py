"""A Proxmox VE API simulator (standard library only), faithful at the wire level for the endpoints we use.

cluster = SimCluster(["pve1", "pve2"]); secret = cluster.add_token("root@pam!confluencia")
server = SimServer(cluster).start()   # https://127.0.0.1:PORT/api2/json, self-signed certificate
"""

from agents.proxmox_sim.model import ApiError, SimNode, SimStorage, SimTask, SimVM, SimVolume
from agents.proxmox_sim.operations import SimCluster
from agents.proxmox_sim.server import SimServer

__all__ = ["ApiError", "SimCluster", "SimNode", "SimServer", "SimStorage", "SimTask", "SimVM", "SimVolume"]
