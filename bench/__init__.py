"""contentd vs containerd 1.6.20, side by side in one run (issue 6).

Run ``.venv/bin/python -m bench.run --help`` from the repository root. The
package imports the real-peer harness in ``tests/peers`` (a private
containerd, a registry, the multi-platform test image), so the repository
root must be on ``sys.path`` (``python -m bench.run`` from the root does it,
and ``python bench/run.py`` adds it).
"""

import os as _os

# The run forks children (ctr, the daemons) while its own gRPC channels are open. With
# gRPC core's fork support on, the child between fork and exec can abort in gRPC's
# at-fork handlers; the benchmark never uses gRPC in a forked child, so turn it off
# before the first channel exists. (The contentd daemon is started without this setting.)
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
