"""Plans: the one way VMs are moved. Every migration, manual or nightly, is a move of a plan.

- :mod:`.manage`: compute a draft (rebalance, drain), review, approve, discard, cancel; a manual
  migration is a one-move plan approved at once;
- :mod:`.drains`: maintenance on/off starts or stops the host's drain;
- :mod:`.execute`: the executor's step (worker half), one plan at a time under a database lock;
- :mod:`.rules`: the executor's decisions as pure functions (unit-tested without a database);
- :mod:`.nightly`: the nightly optimizer inside the maintenance window.
"""
