"""A municipality's VMs, one module per use case, each holding its request half (API, one transaction)
and its worker half (Celery task, hypervisor I/O):

- :mod:`.create`: claim quota and a host, then build (rescheduling to another host on failure);
- :mod:`.power`: start and stop;
- :mod:`.delete`: delete (and clean up stray copies of failed builds);
- :mod:`.migrate`: live migration (requested as a one-move plan, run by the plan executor);
- :mod:`.access`: look-up, listing, tenant scoping and pinning.
"""
