"""Test fixtures for the libvirt lab (see :mod:`tests.lab.session`)."""
