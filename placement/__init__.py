"""Pure placement algorithms: no I/O, deterministic for a given input and seed."""
