"""The version of headwater-connector-testing (released in lockstep with headwater-core)."""

__version__ = "0.1.0"
