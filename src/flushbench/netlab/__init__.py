"""Emulated hosts: two network namespaces joined by an emulated link (the `emulated` transport).

:class:`Netlab` builds a lab (veth + tbf, netem, or the TUN delay line); :mod:`.state` keeps
the record of labs and removes stale ones (never a namespace without a record); :mod:`.teardown`
tries every teardown step and reports each failure; :mod:`.linkspec` parses ``--link`` and the
profiles in ``profiles.toml``; :mod:`.netns` runs ip/tc and works inside namespaces. Needs root.
"""

from __future__ import annotations

from .lab import Netlab
from .linkspec import LinkSpec, profiles
from .netns import check_support, enter_netns, in_netns, netns_socket
from .state import cleanup_stale, destroy, destroy_all, list_labs, status_lines
from .teardown import TeardownError

__all__ = ["LinkSpec", "Netlab", "TeardownError", "check_support", "cleanup_stale", "destroy",
           "destroy_all", "enter_netns", "in_netns", "list_labs", "netns_socket", "profiles",
           "status_lines"]
