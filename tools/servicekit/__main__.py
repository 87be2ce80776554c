"""``python -m servicekit``: the ``tools/services`` command, where servicekit is installed.

headwater-connector-testing ships this package as ``headwater.connectors.testing.servicekit``;
its pytest plugin runs ``python -m headwater.connectors.testing.servicekit`` outside the repository.
"""

import sys

from .cli import main

sys.exit(main())
