"""``flushbench netlab up|down|status``: emulated hosts by hand."""

from __future__ import annotations

from typing import Any

from . import netlab
from .errors import UsageError


def add_arguments(parser: Any) -> None:
    """Add ``up``, ``down`` and ``status`` to the ``flushbench netlab`` parser."""
    sub = parser.add_subparsers(dest="netlab_command", required=True, metavar="up|down|status")
    up = sub.add_parser("up", help="create a lab that persists until 'down'")
    up.add_argument("--link", default="none", help="rate=100mbit,delay=10ms,jitter=1ms,"
                    f"loss=0.1%%,mtu=1500 or a profile ({', '.join(netlab.profiles())})")
    up.add_argument("--name", default=None, help="lab name (fb-NAME); default fb-N")
    down = sub.add_parser("down", help="tear down a lab, or all of them")
    down.add_argument("name", nargs="?", help="lab name, e.g. fb-0")
    down.add_argument("--all", action="store_true", help="every lab and fb- namespace")
    sub.add_parser("status", help="list the labs")


def main(args: Any) -> int:
    """Run one ``flushbench netlab`` command; errors are raised as FlushbenchError."""
    if args.netlab_command == "up":
        lab = netlab.Netlab(args.link, args.name, persistent=True).start()
        lab.detach()
        print("\n".join(lab.describe()))
    elif args.netlab_command == "down":
        if args.all == bool(args.name):
            raise UsageError("netlab down: give a lab name (see 'netlab status') or --all")
        netlab.check_support()
        if args.all:
            for state in netlab._read_states():
                netlab._destroy(state)
            netlab.cleanup_stale()
        elif not netlab.destroy(args.name):
            raise UsageError(f"no lab named {args.name!r} (see 'flushbench netlab status')")
    else:
        labs = netlab.list_labs()
        for s in labs:
            relay = f" relay {s['relay_pid']}" if s.get("relay_pid") else ""
            print(f"{s['name']}  {s['link']} via {s['backend']}{relay}  "
                  f"client {s['client_ns']} {s['client_addr']}  "
                  f"server {s['server_ns']} {s['server_addr']}"
                  + ("" if s["alive"] else "  STALE (owner gone; next lab or 'down' removes it)"))
        if not labs:
            print("no labs")
    return 0
