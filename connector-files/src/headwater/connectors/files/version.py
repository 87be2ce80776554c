"""The version of headwater-connector-files (its own SemVer; releases are labelled X.Y.Z-C.M)."""

__version__ = "0.1.0"
