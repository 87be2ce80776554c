"""Workspace tooling for headwater: versioning, releases, the connector template and the docs.

Run as ``python -m tools``. Nothing here imports a headwater package at import time: the tools run
before any package is installed, with the standard library and ``packaging`` only.
"""
