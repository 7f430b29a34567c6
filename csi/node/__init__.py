"""Node-side OS operations of the CSI driver: find a hot-plugged disk, format, mount, grow, report stats.

Every side effect is a one-method `typing.Protocol` so the node service can be tested with tiny fakes; each
Protocol has a real implementation here that runs the usual Linux tools (util-linux, e2fsprogs, xfsprogs)
through one async command runner, never a shell.
"""
