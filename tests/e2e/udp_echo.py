"""A UDP echo server for the relay tests: answers every datagram with ``echo:`` and the
datagram, to the address it came from, and prints that address (one line each).

    python udp_echo.py IP PORT SECONDS
"""

from __future__ import annotations

import socket
import sys
import time

if __name__ == "__main__":
    ip, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((ip, port))
        print("ready", flush=True)
        limit = time.monotonic() + seconds
        while (left := limit - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, sender = sock.recvfrom(2048)
            except TimeoutError:
                break
            sock.sendto(b"echo:" + data, sender)
            print(f"{sender[0]}:{sender[1]}", flush=True)
