"""The version of headwater-connector-jdbc."""

__version__ = "0.1.0"
