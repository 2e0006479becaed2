#!/usr/bin/env python3
"""Readiness probes for scripts/services, with nothing but the standard library.

  probe.py kafka HOST:PORT   exits 0 when the broker answers a Metadata request naming a broker
  probe.py http URL          exits 0 when URL answers HTTP 200

A raw Metadata v0 request is used instead of a Kafka client so that `scripts/services up` can
tell the broker is ready before anything has been built or installed.
"""
import socket
import struct
import sys
import urllib.request


def kafka_metadata_brokers(address: str, timeout: float = 3.0) -> list:
    host, port = address.rsplit(":", 1)
    client_id = b"herald-probe"
    # Request header v1 (api_key 3 = Metadata, version 0, correlation id, client id), then a
    # v0 body with an empty topic array, which v0 reads as "all topics".
    payload = struct.pack(">hhih", 3, 0, 42, len(client_id)) + client_id + struct.pack(">i", 0)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", _read_exact(sock, 4))[0]
        body = _read_exact(sock, size)
    correlation_id, broker_count = struct.unpack_from(">ii", body, 0)
    if correlation_id != 42:
        raise ValueError(f"unexpected correlation id {correlation_id}")
    brokers, offset = [], 8
    for _ in range(broker_count):
        node_id, host_len = struct.unpack_from(">ih", body, offset)
        offset += 6
        broker_host = body[offset:offset + host_len].decode()
        offset += host_len
        (broker_port,) = struct.unpack_from(">i", body, offset)
        offset += 4
        brokers.append((node_id, f"{broker_host}:{broker_port}"))
    return brokers


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        data += chunk
    return data


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("kafka", "http"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, target = sys.argv[1], sys.argv[2]
    try:
        if kind == "kafka":
            brokers = kafka_metadata_brokers(target)
            if not brokers:
                print("the broker answered but lists no broker yet", file=sys.stderr)
                return 1
            print(" ".join(f"{node}@{addr}" for node, addr in brokers))
        else:
            with urllib.request.urlopen(target, timeout=3) as response:
                if response.status != 200:
                    return 1
        return 0
    except (OSError, ValueError, struct.error) as error:
        print(error, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
