"""``python -m harness up NAME`` / ``down NAME`` / ``reap``: the lab from a shell.

``up`` prints ``export DOCKER_HOST=...`` for the lab's private engine.
"""

from __future__ import annotations

import argparse
import sys

from harness import lab as labmod
from harness.system import reap_stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="start a persistent lab (engine, swarm, registry, images)")
    p_up.add_argument("name")
    p_up.add_argument("--no-images", action="store_true")
    p_down = sub.add_parser("down", help="stop a lab and remove its files")
    p_down.add_argument("name")
    sub.add_parser("reap", help="stop labs whose owner died")
    args = parser.parse_args(argv)
    if args.cmd == "up":
        lab = labmod.up(args.name, images=not args.no_images, persistent=True)
        print(f"export DOCKER_HOST={lab.docker_host}")
    elif args.cmd == "down":
        labmod.attach(args.name).down()
    else:
        for name in reap_stale():
            print(f"reaped {name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
