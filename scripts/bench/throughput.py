#!/usr/bin/env python3
"""Times one transfer through a TCP address to fake_launcher.py's sink or source.

  throughput.py upload HOST PORT BYTES    # to the sink: length, BYTES bytes, its count back
  throughput.py download HOST PORT BYTES  # from the source: length, then BYTES bytes

Prints `<MB/s> <seconds>` (MB = 10^6 bytes), timed from before the connect to the sink's
count (upload) or the last byte (download); exits 1 when fewer bytes made it.
"""
import socket
import struct
import sys
import time

CHUNK = 1 << 20


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def upload(conn, size):
    conn.sendall(struct.pack(">Q", size))
    zeros = memoryview(bytes(CHUNK))
    left = size
    while left > 0:
        n = min(CHUNK, left)
        conn.sendall(zeros[:n])
        left -= n
    answer = read_exact(conn, 8)
    return struct.unpack(">Q", answer)[0] if answer else 0


def download(conn, size):
    conn.sendall(struct.pack(">Q", size))
    buf = memoryview(bytearray(CHUNK))
    got = 0
    while got < size:
        n = conn.recv_into(buf, min(CHUNK, size - got))
        if n == 0:
            break
        got += n
    return got


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("upload", "download"):
        sys.exit(f"usage: {sys.argv[0]} upload|download HOST PORT BYTES")
    direction, host, port, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    start = time.perf_counter()
    with socket.create_connection((host, port), timeout=300) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        got = (upload if direction == "upload" else download)(conn, size)
    seconds = time.perf_counter() - start
    if got != size:
        sys.exit(f"{direction}: {got} of {size} bytes made it")
    print(f"{size / seconds / 1e6:.0f} {seconds:.3f}")


if __name__ == "__main__":
    main()
