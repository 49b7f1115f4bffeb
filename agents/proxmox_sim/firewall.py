"""The firewall of each VM in the simulated cluster: ``/nodes/{node}/qemu/{vmid}/firewall/...`` and the node's
network listing.

As in PVE, a VM's firewall lives in the cluster file system (``/etc/pve/firewall/<vmid>.fw``) and is keyed by
the VMID alone: a migration does not touch it (it travels with the VM), a clone copies its source's
(``clone_vmfw_conf``), destroying the VM removes it (``remove_vmfw_conf``), and it may exist before the VM does
(the API does not look for the VM). Rules and IP sets are not proxied (any node path reaches them); options are
proxied to the node named in the path, so an offline node answers 595.

Rules: ``POST`` puts the new rule at position 0 (``unshift``) with ``enable=0`` unless given; ``GET`` numbers
them (``pos``) and puts the list's ``digest`` on each; ``DELETE .../rules/{pos}`` removes one and renumbers the
rest, refusing a ``digest`` that is not the current one. IP sets: ``ipfilter-netN`` holds the addresses NIC N may
send from (PVE's anti-spoofing filter, active when the set exists or the ``ipfilter`` option is on); entries are
stored as PVE cleans them (``10.0.0.5``, ``10.0.0.0/24``).

Real PVE endpoints that the schema extract (``pve-api-subset.json``) does not list -- pve-firewall's
``Rules.pm`` and ``IPSet.pm`` define them: ``DELETE .../firewall/rules/{pos}``, ``GET|POST|DELETE
.../firewall/ipset/{name}`` and ``DELETE .../firewall/ipset/{name}/{cidr}``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from agents.proxmox_sim import fwrules
from agents.proxmox_sim.disks import DiskCluster, split_list
from agents.proxmox_sim.model import ApiError
from agents.proxmox_sim.network import interfaces

OPTIONS = ("enable", "dhcp", "ipfilter", "log_level_in", "log_level_out", "macfilter", "ndp", "policy_in",
           "policy_out", "radv")
RULE_KEYS = ("type", "action", "enable", "iface", "source", "dest", "proto", "dport", "sport", "icmp-type", "log",
             "macro", "comment")


@dataclass
class SimFirewall:
    """``/etc/pve/firewall/<vmid>.fw``: ``[OPTIONS]``, ``[RULES]`` (position 0 first) and ``[IPSET name]``s."""

    options: dict[str, Any] = field(default_factory=dict)
    rules: list[dict[str, Any]] = field(default_factory=list)
    ipsets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    ipset_comments: dict[str, str] = field(default_factory=dict)


class FirewallCluster(DiskCluster):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.firewalls: dict[int, SimFirewall] = {}

    # ---- the file of a VMID ----------------------------------------------------------------------------
    def vmfw(self, vmid: int) -> SimFirewall:
        """The VM's firewall config, created (empty) on first write like the file."""
        return self.firewalls.setdefault(vmid, SimFirewall())

    def remove_vmfw(self, vmid: int) -> None:
        self.firewalls.pop(vmid, None)

    def clone_vmfw(self, vmid: int, newid: int) -> None:
        if vmid in self.firewalls:
            self.firewalls[newid] = copy.deepcopy(self.firewalls[vmid])

    def _ipset(self, vmid: int, name: str) -> list[dict[str, Any]]:
        found = self.vmfw(vmid).ipsets.get(name)
        if found is None:
            raise ApiError(500, f"no such IPSet '{name}'")
        return found

    # ---- options (proxied to the node) -----------------------------------------------------------------
    def fw_options(self, node: str, vmid: int) -> dict[str, Any]:
        with self.lock:
            self.node(node)
            return fwrules.with_digest(self.vmfw(vmid).options)

    def set_fw_options(self, node: str, vmid: int, p: dict[str, Any]) -> None:
        with self.lock:
            self.node(node)
            fw = self.vmfw(vmid)
            fwrules.assert_unmodified(fwrules.with_digest(fw.options)["digest"], p.get("digest"))
            for opt in split_list(str(p.get("delete", ""))):
                if opt not in OPTIONS:
                    raise fwrules.param_error("delete", f"no such option '{opt}'")
                fw.options.pop(opt, None)
            for key in OPTIONS:
                if key in p:
                    fw.options[key] = p[key]

    # ---- rules -----------------------------------------------------------------------------------------
    def fw_rules(self, node: str, vmid: int) -> list[dict[str, Any]]:
        with self.lock:
            listed = fwrules.list_with_digest(self.vmfw(vmid).rules)
            return [{**rule, "pos": pos} for pos, rule in enumerate(listed)]

    def add_fw_rule(self, node: str, vmid: int, p: dict[str, Any]) -> None:
        with self.lock:
            fw = self.vmfw(vmid)
            rule = {k: p[k] for k in RULE_KEYS if k in p and str(p[k]) not in ("", "-")}
            rule = fwrules.verify_rule(rule, fw.ipsets)
            rule["enable"] = 1 if rule.get("enable") else 0  # written as '|' (off) or not, read back as 0/1
            fw.rules.insert(0, rule)

    def delete_fw_rule(self, node: str, vmid: int, pos: int, p: dict[str, Any]) -> None:
        with self.lock:
            fw = self.vmfw(vmid)
            fwrules.assert_unmodified(fwrules.list_digest(fw.rules), p.get("digest"))
            if pos >= len(fw.rules):
                raise ApiError(500, f"no rule at position {pos}")
            del fw.rules[pos]

    # ---- IP sets ---------------------------------------------------------------------------------------
    def ipset_index(self, node: str, vmid: int) -> list[dict[str, Any]]:
        with self.lock:
            fw = self.vmfw(vmid)
            sets = [{"name": name, "comment": fw.ipset_comments.get(name) or None} for name in sorted(fw.ipsets)]
            return fwrules.list_with_digest(sets)

    def create_ipset(self, node: str, vmid: int, p: dict[str, Any]) -> None:
        with self.lock:
            fw, name = self.vmfw(vmid), p["name"]
            if p.get("rename"):
                old = p["rename"]
                listed = [{"name": n, "comment": fw.ipset_comments.get(n)} for n in sorted(fw.ipsets)]
                fwrules.assert_unmodified(fwrules.list_digest(listed), p.get("digest"))
                if old not in fw.ipsets:
                    raise fwrules.param_error("name", f"IPSet '{old}' does not exist")
                if name in fw.ipsets and name != old:
                    raise fwrules.param_error("name", f"IPSet '{name}' does already exist")
                fw.ipsets[name] = fw.ipsets.pop(old)
                if old in fw.ipset_comments:
                    fw.ipset_comments[name] = fw.ipset_comments.pop(old)
            else:
                if name in fw.ipsets:
                    raise fwrules.param_error("name", f"IPSet '{name}' already exists")
                fw.ipsets[name] = []
            if "comment" in p:
                fw.ipset_comments[name] = p["comment"]

    def delete_ipset(self, node: str, vmid: int, name: str, p: dict[str, Any]) -> None:
        with self.lock:
            fw = self.vmfw(vmid)
            if self._ipset(vmid, name) and not p.get("force"):
                raise ApiError(500, f"IPSet '{name}' is not empty")
            del fw.ipsets[name]
            fw.ipset_comments.pop(name, None)

    def ipset_entries(self, node: str, vmid: int, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return fwrules.list_with_digest(self._ipset(vmid, name))

    def add_ipset_entry(self, node: str, vmid: int, name: str, p: dict[str, Any]) -> None:
        with self.lock:
            entries = self._ipset(vmid, name)
            text = str(p["cidr"])
            if fwrules.NAME.match(text):
                raise ApiError(500, f"no such alias '{text.split('/')[-1]}'")
            cidr = fwrules.ipset_cidr(text)
            if any(e["cidr"] == cidr for e in entries):
                raise fwrules.param_error("cidr", f"address '{cidr}' already exists")
            entry: dict[str, Any] = {"cidr": cidr}
            if p.get("nomatch"):
                entry["nomatch"] = True
            if p.get("comment"):
                entry["comment"] = p["comment"]
            entries.insert(0, entry)

    def delete_ipset_entry(self, node: str, vmid: int, name: str, cidr: str, p: dict[str, Any]) -> None:
        with self.lock:
            entries = self._ipset(vmid, name)
            fwrules.assert_unmodified(fwrules.list_digest(entries), p.get("digest"))
            entries[:] = [e for e in entries if e["cidr"] != cidr]

    # ---- the node's network ----------------------------------------------------------------------------
    def network_index(self, node: str, kind: str | None) -> list[dict[str, Any]]:
        with self.lock:
            return interfaces(self.node(node).bridges, kind)
