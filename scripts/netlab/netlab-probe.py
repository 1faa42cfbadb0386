#!/usr/bin/env python3
"""Measurement probes for colony's network lab (docs/netlab.md).

Runs inside a lab host's namespace (netlab.sh exec I python3 netlab-probe.py ...)
and prints one JSON object on stdout. Only the Python standard library, so the
lab needs neither iputils-ping nor netcat.

  ping DEST [-c N] [-i SEC] [-W SEC] [-s BYTES]   ICMP echo (raw socket, root)
  tcp-sink --port P [--timeout SEC]               accept one connection, count bytes
  tcp-send DEST --port P [--seconds T]            connect (retrying), send for T seconds
  tcp-connect DEST --port P [--timeout SEC]       exit 0 when a connection opens
  tcp-listen --port P [--seconds T]               accept and close connections for T seconds
  udp-recv --port P --count N [--timeout SEC]      count numbered datagrams, and those out of order
  udp-send DEST --port P --count N [-i SEC]        send N numbered datagrams
"""
import argparse
import json
import os
import select
import socket
import statistics
import struct
import sys
import time


def checksum(data: bytes) -> int:
    """Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def cmd_ping(args):
    """Sends echo requests at a fixed interval and matches replies by sequence
    number while sending, so a lost reply never delays the next request."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    dest = socket.gethostbyname(args.dest)
    ident = os.getpid() & 0xFFFF
    payload = bytes(range(256)) * (args.size // 256 + 1)
    payload = payload[: args.size]
    sent_at = {}
    rtts = {}

    def send(seq):
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        packet = header + payload
        packet = struct.pack("!BBHHH", 8, 0, checksum(packet), ident, seq) + payload
        sent_at[seq] = time.monotonic()
        sock.sendto(packet, (dest, 0))

    def receive_until(deadline):
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                return
            data, addr = sock.recvfrom(65535)
            now = time.monotonic()
            ihl = (data[0] & 0x0F) * 4
            icmp_type, _, _, rid, seq = struct.unpack("!BBHHH", data[ihl : ihl + 8])
            if addr[0] == dest and icmp_type == 0 and rid == ident and seq in sent_at and seq not in rtts:
                rtts[seq] = (now - sent_at[seq]) * 1000.0

    start = time.monotonic()
    for seq in range(args.count):
        send(seq)
        receive_until(start + (seq + 1) * args.interval)
    receive_until(time.monotonic() + args.timeout)
    values = sorted(rtts.values())
    result = {
        "dest": dest,
        "sent": args.count,
        "received": len(values),
        "loss_pct": 100.0 * (args.count - len(values)) / args.count,
        "rtt_ms": None
        if not values
        else {
            "min": values[0],
            "median": statistics.median(values),
            "mean": statistics.fmean(values),
            "p90": percentile(values, 0.9),
            "max": values[-1],
        },
    }
    print(json.dumps(result))
    return 0 if values else 1


def connect_retrying(dest, port, deadline):
    while True:
        try:
            return socket.create_connection((dest, port), timeout=max(0.1, deadline - time.monotonic()))
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def cmd_tcp_sink(args):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", args.port))
    srv.listen(1)
    srv.settimeout(args.timeout)
    conn, peer = srv.accept()
    conn.settimeout(args.timeout)
    total = 0
    first = last = None
    marks = []  # (time, bytes so far), to report the rate after the first second
    buf = bytearray(1 << 20)
    while True:
        n = conn.recv_into(buf)
        if n == 0:
            break
        now = time.monotonic()
        if first is None:
            first = now
        total += n
        last = now
        marks.append((now, total))
    seconds = (last - first) if first is not None else 0.0
    steady = None
    later = [m for m in marks if first is not None and m[0] >= first + 1.0]
    if len(later) >= 2 and later[-1][0] > later[0][0]:
        steady = (later[-1][1] - later[0][1]) * 8 / (later[-1][0] - later[0][0]) / 1e6
    print(json.dumps({
        "peer": peer[0],
        "bytes": total,
        "seconds": seconds,
        "mbit_s": total * 8 / seconds / 1e6 if seconds > 0 else 0.0,
        "steady_mbit_s": steady,
    }))
    return 0 if total > 0 else 1


def cmd_tcp_send(args):
    sock = connect_retrying(args.dest, args.port, time.monotonic() + args.connect_timeout)
    block = b"\xa5" * 65536
    end = time.monotonic() + args.seconds
    total = 0
    while time.monotonic() < end:
        total += sock.send(block)
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(args.seconds + 30)
    sock.recv(1)  # wait for the sink to close: every byte has arrived
    sock.close()
    print(json.dumps({"bytes": total, "seconds": args.seconds}))
    return 0


def cmd_tcp_connect(args):
    start = time.monotonic()
    try:
        socket.create_connection((args.dest, args.port), timeout=args.timeout).close()
        ok = True
    except OSError as exc:
        ok = False
        error = str(exc)
    result = {"connected": ok, "seconds": time.monotonic() - start}
    if not ok:
        result["error"] = error
    print(json.dumps(result))
    return 0 if ok else 1


def cmd_tcp_listen(args):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", args.port))
    srv.listen(16)
    end = time.monotonic() + args.seconds
    accepted = 0
    while time.monotonic() < end:
        ready, _, _ = select.select([srv], [], [], max(0.0, end - time.monotonic()))
        if ready:
            srv.accept()[0].close()
            accepted += 1
    print(json.dumps({"accepted": accepted}))
    return 0


def cmd_udp_recv(args):
    """Receives datagrams numbered by udp-send; a datagram whose number is lower
    than one received before it counts as reordered."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", args.port))
    sock.settimeout(args.timeout)
    received = reordered = 0
    highest = -1
    try:
        while received < args.count:
            data = sock.recv(65535)
            (seq,) = struct.unpack("!I", data[:4])
            received += 1
            if seq < highest:
                reordered += 1
            highest = max(highest, seq)
    except socket.timeout:
        pass
    print(json.dumps({"received": received, "reordered": reordered}))
    return 0


def cmd_udp_send(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start = time.monotonic()
    for seq in range(args.count):
        sock.sendto(struct.pack("!I", seq) + b"\0" * (args.size - 4), (args.dest, args.port))
        delay = start + (seq + 1) * args.interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print(json.dumps({"sent": args.count}))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ping")
    p.add_argument("dest")
    p.add_argument("-c", "--count", type=int, default=10)
    p.add_argument("-i", "--interval", type=float, default=0.05)
    p.add_argument("-W", "--timeout", type=float, default=1.0)
    p.add_argument("-s", "--size", type=int, default=56)
    p.set_defaults(func=cmd_ping)
    p = sub.add_parser("tcp-sink")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=cmd_tcp_sink)
    p = sub.add_parser("tcp-send")
    p.add_argument("dest")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--connect-timeout", type=float, default=5.0)
    p.set_defaults(func=cmd_tcp_send)
    p = sub.add_parser("tcp-connect")
    p.add_argument("dest")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=1.0)
    p.set_defaults(func=cmd_tcp_connect)
    p = sub.add_parser("tcp-listen")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, default=10.0)
    p.set_defaults(func=cmd_tcp_listen)
    p = sub.add_parser("udp-recv")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--timeout", type=float, default=2.0)
    p.set_defaults(func=cmd_udp_recv)
    p = sub.add_parser("udp-send")
    p.add_argument("dest")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("-i", "--interval", type=float, default=0.0005)
    p.add_argument("-s", "--size", type=int, default=64)
    p.set_defaults(func=cmd_udp_send)
    args = parser.parse_args()
    if getattr(args, "count", 1) < 1:
        parser.error("--count must be >= 1")
    if args.cmd == "udp-send" and not 4 <= args.size <= 65000:
        parser.error("--size must be within 4..65000")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
