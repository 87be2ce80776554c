"""Real test servers for headwater's connector tests, and fault-injecting proxies.

``tools/services`` is the command-line face of this package; the pytest plugin in
connector-testing drives the same command and imports :mod:`servicekit.faults` for the
proxies. Everything here uses only the standard library, so that any ``python3`` >= 3.11
(the system one included) can bring servers up before a virtual environment exists.

Modules:

- :mod:`servicekit.settings`: where installs, run state and data live; port selection.
- :mod:`servicekit.installers`: cached installs from PyPI, npm and Debian's packages.
- :mod:`servicekit.processes`: start, identify, measure and stop server processes by PID.
- :mod:`servicekit.probes`: "does it really answer?" checks in each server's own protocol.
- :mod:`servicekit.registry`: the services, as data plus small hooks.
- :mod:`servicekit.manager`: ``up``/``down``/``status`` over a state directory.
- :mod:`servicekit.faults`: the fault-injecting HTTP proxy and the TCP outage proxy.
- :mod:`servicekit.cli`: the ``tools/services`` command.
"""
