"""The version of headwater-connector-base (released in lockstep with headwater-core)."""

__version__ = "0.1.0"
