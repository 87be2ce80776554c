"""``python -m tools``: the workspace's command line.

python -m tools release ...          versions, build, check, tag (see tools/release.py)
python -m tools new-connector NAME   scaffold connector-NAME/ from tools/templates/connector
python -m tools connector-stats      lines per connector: source, sink, options, glue, tests
python -m tools compat-table         regenerate docs/compatibility.md from compatibility.toml
python -m tools import-cycles        fail when workspace modules import each other in a cycle
python -m tools check [NAME...]      the static checks CI runs (see tools/checks.py)
python -m tools links                fail on a broken relative link in the markdown
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from tools import checks, connector_stats, docs_gen, import_cycles, links, new_connector, release

COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "release": release.main,
    "new-connector": new_connector.main,
    "connector-stats": connector_stats.main,
    "compat-table": docs_gen.main,
    "import-cycles": import_cycles.main,
    "check": checks.main,
    "links": links.main,
}


def main(argv: list[str]) -> int:
    """Dispatch ``argv[0]`` to its command; print the usage for anything else."""
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
