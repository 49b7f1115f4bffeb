"""A stand-in for Proxmox VE's ``pveum`` and ``pvesh`` commands, for the ``proxmox_node`` role's test.

Why a stand-in: no Proxmox VE can run on the CI machine (it is a whole distribution with its cluster file
system), so the role's commands are pointed (``proxmox_pveum``/``proxmox_pvesh``) at this script. It implements
the few subcommands the role uses with the shapes and messages of pve-access-control's API (``--output-format
json``; "already exists" errors with exit status 255; a token's secret printed only by ``token add``), keeps its
users, roles, ACL and tokens in a JSON file, and logs every call, so the test can see that the token was made
exactly once (``user list --full 1`` lists each user's tokens, as the API's ``full`` parameter does).
``pvesh get /nodes/NODE/storage/STORAGE/status`` answers like a ``dir`` storage: the size of the
filesystem of a directory (``os.statvfs``), as Proxmox VE computes it for such a storage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCRIPT = """#!/usr/bin/python3
import json, os, re, sys, uuid
STATE = {state!r}
state = json.load(open(STATE))
argv = sys.argv[1:]
state["calls"].append([os.path.basename(sys.argv[0])] + argv)

def save():
    tmp = STATE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1)
    os.replace(tmp, STATE)

def die(msg):
    save()
    sys.stderr.write(msg + "\\n")
    sys.exit(255)

def out(data):
    save()
    assert opts.get("output-format") == "json", "the role always asks for JSON"
    print(json.dumps(data))
    sys.exit(0)

pos, opts, i = [], {{}}, 0
while i < len(argv):
    if argv[i].startswith("--"):
        opts[argv[i][2:]] = argv[i + 1]
        i += 2
    else:
        pos.append(argv[i])
        i += 1

if os.path.basename(sys.argv[0]) == "pvesh":
    m = re.fullmatch(r"/nodes/([^/]+)/storage/([^/]+)/status", pos[1]) if pos[:1] == ["get"] else None
    if not m or m.group(1) != state["node"] or m.group(2) not in state["storages"]:
        die("storage does not exist or unknown path")
    st = os.statvfs(state["storages"][m.group(2)])
    total = st.f_blocks * st.f_frsize
    out({{"total": total, "used": total - st.f_bfree * st.f_frsize, "avail": st.f_bavail * st.f_frsize,
         "type": "dir", "content": "images,rootdir", "active": 1, "enabled": 1, "shared": 0}})

users, roles, acl = state["users"], state["roles"], state["acl"]
if pos[:2] == ["user", "list"]:
    full = opts.get("full") in ("1", "true")
    out([{{"userid": u, "enable": 1, "comment": d.get("comment", ""),
          **({{"tokens": [{{"tokenid": t, **i}} for t, i in sorted(d["tokens"].items())]}} if full else {{}})}}
         for u, d in sorted(users.items())])
if pos[:2] == ["user", "add"]:
    if pos[2] in users:
        die("create user failed: user '%s' already exists" % pos[2])
    users[pos[2]] = {{"comment": opts.get("comment", ""), "tokens": {{}}}}
    save(); sys.exit(0)
if pos[:2] == ["role", "list"]:
    out([{{"roleid": r, "privs": ",".join(sorted(p)), "special": int(r.startswith("PVE"))}} for r, p in roles.items()])
if pos[:2] in (["role", "add"], ["role", "modify"]):
    if pos[1] == "add" and pos[2] in roles:
        die("create role failed: role '%s' already exists" % pos[2])
    if pos[1] == "modify" and pos[2] not in roles:
        die("update role failed: role '%s' does not exist" % pos[2])
    roles[pos[2]] = sorted({{p for p in re.split(r"[,;\\s]+", opts.get("privs", "")) if p}})
    save(); sys.exit(0)
if pos[:2] == ["acl", "list"]:
    out(acl)
if pos[:2] == ["acl", "modify"]:
    for user in opts["users"].split(","):
        for role in opts["roles"].split(","):
            entry = {{"path": pos[2], "type": "user", "ugid": user, "roleid": role, "propagate": 1}}
            if entry not in acl:
                acl.append(entry)
    save(); sys.exit(0)
if pos[:3] == ["user", "token", "list"]:
    if pos[3] not in users:
        die("no such user ('%s')" % pos[3])
    out([{{"tokenid": t, **info}} for t, info in sorted(users[pos[3]]["tokens"].items())])
if pos[:3] == ["user", "token", "add"]:
    user, token = pos[3], pos[4]
    if user not in users:
        die("no such user ('%s')" % user)
    if token in users[user]["tokens"]:
        die("Parameter verification failed.\\ntokenid: Token already exists.")
    info = {{"privsep": opts.get("privsep", "1"), "comment": opts.get("comment", ""), "expire": 0}}
    users[user]["tokens"][token] = info
    value = str(uuid.uuid4())
    state["secrets"]["%s!%s" % (user, token)] = value
    out({{"full-tokenid": "%s!%s" % (user, token), "info": info, "value": value}})
die("stand-in: unsupported command %r" % argv)
"""


class PveStandIn:
    """The stand-in's files: ``bin/pveum``, ``bin/pvesh`` and ``state.json`` under ``root``."""

    def __init__(self, root: Path, node: str, storages: dict[str, str]) -> None:
        self.state_file = root / "state.json"
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        self.state_file.write_text(json.dumps({
            "node": node, "storages": storages, "users": {"root@pam": {"comment": "", "tokens": {}}},
            "roles": {"PVEVMAdmin": ["VM.Allocate", "VM.Audit"], "PVEAuditor": ["Sys.Audit", "VM.Audit"]},
            "acl": [], "secrets": {}, "calls": [],
        }))  # fmt: skip
        for name in ("pveum", "pvesh"):
            path = self.bin / name
            path.write_text(SCRIPT.format(state=str(self.state_file)))
            path.chmod(0o755)

    @property
    def pveum(self) -> str:
        return str(self.bin / "pveum")

    @property
    def pvesh(self) -> str:
        return str(self.bin / "pvesh")

    def state(self) -> dict[str, Any]:
        return dict(json.loads(self.state_file.read_text()))

    def calls(self, *prefix: str) -> list[list[str]]:
        return [c for c in self.state()["calls"] if c[1 : 1 + len(prefix)] == list(prefix)]
