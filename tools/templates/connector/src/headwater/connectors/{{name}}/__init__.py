"""The {{title}} connector for headwater.

Registered as ``{{name}}`` in the ``headwater.connectors`` entry-point group (see ``CONNECTOR``).
"""

from headwater.connectors.{{name}}._connector import CONNECTOR
from headwater.connectors.{{name}}._options import {{class_prefix}}Options
from headwater.connectors.{{name}}.version import __version__

__all__ = ["CONNECTOR", "{{class_prefix}}Options", "__version__"]
