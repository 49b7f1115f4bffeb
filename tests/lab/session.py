"""One libvirt lab per pytest session, shared by every test directory that needs it.

Use :func:`lab_for` from a fixture; the first caller starts the lab, later callers get the same one, and
it is torn down when pytest finishes (``config.add_cleanup``). Test labs use their own users
(``cflabt1..4``, or ``cflabta1..4`` etc. when another session holds that slot; override the prefix
with ``CONFLUENCIA_TEST_LAB_PREFIX``) and state dir so that they never touch a
lab started by hand with ``confluencia lab up``. A machine without root, libvirtd or qemu gets a skip
with the reason; a machine that has them and still cannot start the lab gets an error.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import pytest

from agents.libvirt_lab import PORTS_PER_HOST, Lab, LabError, LabHost, missing_requirements

SLOTS = 4  # concurrent pytest sessions with a lab each
HOSTS = 4  # 1 and 2: contract suite and migrations; 3: tests that kill its daemon; 4: the plans lab (issue 6)
_LAB = pytest.StashKey["Lab | str"]()


def lab_for(config: pytest.Config) -> Lab:
    """The session's lab (started on first use), or ``pytest.skip`` with the reason it cannot run."""
    found = config.stash.get(_LAB, None)
    if found is None:
        found = _start(config)
        config.stash[_LAB] = found
    if isinstance(found, str):
        pytest.skip(found)
    return found


def _start(config: pytest.Config) -> Lab | str:
    reason = missing_requirements()
    if reason:
        return f"libvirt lab unavailable: {reason}"
    base = os.environ.get("CONFLUENCIA_TEST_LAB_PREFIX", "cflabt")
    # Concurrent test sessions (several engineers on one machine) each take a free slot: own users,
    # own state dir, own migration ports. All slots busy: wait for the first one.
    slots = [base] + [f"{base}{chr(ord('a') + i)}" for i in range(SLOTS - 1)]
    stack = contextlib.ExitStack()
    lab = None
    for i, prefix in enumerate(slots):
        candidate = _lab(prefix, i)
        try:
            stack.enter_context(candidate.locked(timeout_s=0))
        except LabError:
            continue
        lab = candidate
        break
    if lab is None:
        lab = _lab(slots[0], 0)
        stack.enter_context(lab.locked(timeout_s=900))
    try:
        lab.up(timeout_s=90)
    except BaseException:
        stack.close()
        raise
    stack.callback(lab.down)
    config.add_cleanup(stack.close)
    return lab


def _lab(prefix: str, slot: int) -> Lab:
    state_dir = os.path.join(tempfile.gettempdir(), f"confluencia-test-lab-{prefix}")
    return Lab(HOSTS, prefix=prefix, state_dir=state_dir, base_port=49300 + PORTS_PER_HOST * HOSTS * slot)


def host(lab: Lab, index: int) -> LabHost:
    """Lab host ``index`` (1-based) as recorded by ``up``."""
    return lab.hosts()[index - 1]


def driver_options(h: LabHost) -> dict[str, str]:
    """The options to register lab host ``h`` with: ``migrate_uri``, its storage (``pools`` with its own
    ``default`` pool and the lab's ``shared`` one, ``shared_pools``, ``image_dir``) and ``hostname``."""
    return {**h.driver_options, "hostname": h.name}
