#!/usr/bin/env python3
"""Measures the origin's cold start: from starting the process to the first
200 from GET /health/ready, polled about every millisecond.

Usage: cold_start.py STARTS LOG_FILE BINARY [ARGUMENT...]

Each start gets a free port on 127.0.0.1 in PORT; the rest of the environment
(database, secret, log settings) is passed through unchanged. The server's
output is appended to LOG_FILE. Every server is stopped with SIGTERM before the
next one starts. Prints one JSON object with each start's time and the median,
in milliseconds.
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

POLL_INTERVAL_S = 0.001
# Maximum wait for one start. A start that takes longer fails the measurement.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ready_status(port):
    """Returns the status code of GET /health/ready, or None when nothing responds yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as connection:
            connection.sendall(
                b"GET /health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            status_line = connection.makefile("rb").readline()
    except OSError:
        return None
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    return int(parts[1])


def stop(process):
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def measure_one(command, log):
    port = free_port()
    environment = dict(os.environ, PORT=str(port))
    started = time.perf_counter()
    process = subprocess.Popen(command, env=environment, stdout=log, stderr=log)
    try:
        while True:
            if ready_status(port) == 200:
                return (time.perf_counter() - started) * 1000.0
            if process.poll() is not None:
                sys.exit(f"error: the server exited with status {process.returncode} before it was ready; see {log.name}")
            if time.perf_counter() - started > START_TIMEOUT_S:
                sys.exit(f"error: the server was not ready within {START_TIMEOUT_S:.0f} s; see {log.name}")
            time.sleep(POLL_INTERVAL_S)
    finally:
        stop(process)


def main():
    if len(sys.argv) < 4 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 1:
        sys.exit("usage: cold_start.py STARTS LOG_FILE BINARY [ARGUMENT...]")
    starts = int(sys.argv[1])
    command = sys.argv[3:]
    with open(sys.argv[2], "ab") as log:
        times_ms = [measure_one(command, log) for _ in range(starts)]
    print(json.dumps({
        "starts": starts,
        "median_ms": statistics.median(times_ms),
        "times_ms": [round(value, 2) for value in times_ms],
    }))


if __name__ == "__main__":
    main()
