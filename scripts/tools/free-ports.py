#!/usr/bin/env python3
"""Prints N distinct free TCP ports, space-separated, for test scripts that start servers.

  scripts/tools/free-ports.py 5      # e.g. "23411 28102 20977 26640 21313"

The same policy as common/socket.cc's PickFreeLoopbackPorts (the C++ binaries' one): ports drawn
at random from [20000, 30000), cut at the start of the kernel's ephemeral range
(/proc/sys/net/ipv4/ip_local_port_range), each checked free on every address (bound to 0.0.0.0
without SO_REUSEADDR) and held until all are picked. Below the ephemeral range no other process's
bind(0) or outgoing connection can take a port between this pick and the server's bind, which
bind(0)-and-release could not promise under `ctest -j2` (a test failed so once). With under 1000
ports in that range, the kernel picks (bind to port 0).
"""
import random
import socket
import sys


def pickable_range():
    begin, end = 20000, 30000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo = int(f.read().split()[0])
        if lo > 0:
            end = min(end, lo)
    except (OSError, ValueError, IndexError):
        pass
    return (begin, end) if end - begin >= 1000 else (0, 0)


def free_ports(n):
    begin, end = pickable_range()
    held, ports = [], []
    rng = random.SystemRandom()
    for _ in range(n):
        for _attempt in range(4 * max(1, end - begin)):
            port = rng.randrange(begin, end) if end > begin else 0
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                s.close()
                if port == 0:
                    raise
                continue
            held.append(s)
            ports.append(s.getsockname()[1])
            break
        else:
            sys.exit(f"free-ports.py: no free TCP port in [{begin}, {end})")
    for s in held:
        s.close()
    return ports


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    print(" ".join(str(p) for p in free_ports(count)))
