"""The ``confluencia`` command: every group and command, imported at module level (a command that
cannot be imported fails the whole command loudly instead of silently disappearing).

- ``serve``, ``demo`` (:mod:`.server`); ``db upgrade``, ``bootstrap-operator`` (:mod:`.database`);
  ``audit verify`` (:mod:`.audit`), ``secrets generate-key | status | rotate`` (:mod:`.secrets`): run on the
  control plane's own database;
- ``plans``, ``hosts`` (:mod:`.plans`, :mod:`.hosts`): the operators' HTTP client of the API;
- ``placement`` (:mod:`.placement`): the placement engine on JSON or Ganeti htools files, offline;
- ``lab`` (:mod:`.lab`): the libvirt test lab of session daemons on this machine;
- ``console-proxy`` (:mod:`.console`): websockify and the noVNC page for VM consoles.
"""

from __future__ import annotations

import sys

import click

from api.cli.audit import audit
from api.cli.console import console_proxy
from api.cli.database import bootstrap_operator, db
from api.cli.hosts import hosts
from api.cli.lab import lab
from api.cli.placement import placement
from api.cli.plans import plans
from api.cli.secrets import secrets
from api.cli.server import demo, serve
from api.cli.usage import usage


@click.group()
def main() -> None:
    """Confluencia control plane / plano de control Confluencia."""


for _command in (serve, demo, db, bootstrap_operator, audit, secrets, plans, hosts, placement, lab, console_proxy,
                 usage):
    main.add_command(_command)


if __name__ == "__main__":
    sys.exit(main())
