"""The version of headwater-core (shared with headwater-connector-base)."""

__version__ = "0.1.0"
