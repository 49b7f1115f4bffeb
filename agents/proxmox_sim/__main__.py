"""``python -m agents.proxmox_sim --port 8006 --nodes pve1,pve2,pve3 [--token SECRET]``: try the driver."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from agents.proxmox_sim.operations import SimCluster
from agents.proxmox_sim.server import SimServer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agents.proxmox_sim", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8006)
    ap.add_argument("--nodes", default="pve1,pve2,pve3", help="comma-separated node names")
    ap.add_argument("--token-id", default="root@pam!confluencia", help="USER@REALM!TOKENNAME")
    ap.add_argument("--token", default=None, help="token secret (random when omitted)")
    ap.add_argument("--memory-mib", type=int, default=65536, help="RAM of each node")
    ap.add_argument("--template", default="9000:debian-12", help="VMID:NAME of a template on the first node")
    ap.add_argument("--cert-dir", type=Path, default=None, help="keep the self-signed certificate here")
    args = ap.parse_args(argv)

    nodes = [n.strip() for n in args.nodes.split(",") if n.strip()]
    cluster = SimCluster(nodes, mem_total_mib=args.memory_mib)
    secret = cluster.add_token(args.token_id, args.token)
    if args.template:
        vmid, _, name = args.template.partition(":")
        cluster.add_template(int(vmid), nodes[0], name or "template")
    server = SimServer(cluster, host=args.host, port=args.port, cert_dir=args.cert_dir).start()
    print(f"Proxmox VE simulator: {server.url}  nodes: {', '.join(nodes)}", flush=True)
    print(f"certificate (use as CA bundle): {server.cert_path}", flush=True)
    print(f"token id: {args.token_id}", flush=True)
    print(f"token secret: {secret}", flush=True)
    print(f"driver URI: pve://{server.address}/{nodes[0]}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
