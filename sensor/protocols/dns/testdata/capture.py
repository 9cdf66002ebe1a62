#!/usr/bin/env python3
"""Captures the DNS messages in this folder.

dnsmasq answers on 127.0.0.1 from its own configuration only (no upstream, no hosts file); dig
queries it through a relay on loopback that writes every datagram, and each direction of every TCP
connection, to a file named after the scenario. Nothing leaves 127.0.0.0/8.

    python3 capture.py [outdir] > dig_output.txt   # outdir: default the folder of this script

dig_output.txt, what dig printed for each exchange, is the ground truth parser_test.cc checks
the parse against. A new capture has new ids and cookies: the tests that name ids then need them.

Files: <scenario>.query.bin / <scenario>.response.bin for UDP, <scenario>.client.bin /
<scenario>.server.bin for the two byte streams of a TCP connection (2-byte length prefixes
included, RFC 1035 4.2.2). fuzz/ seeds the fuzz target with copies of them and hand-made
hostile messages (hand_*.bin); the unit test replays all of fuzz/.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

LOOPBACK = "127.0.0.1"

# What dnsmasq knows: example.test and everything under it is 198.18.0.10 (RFC 2544 benchmark
# space, never routed). www is a CNAME to it; dnsmasq answers that CNAME alone, since it only
# follows a CNAME to a target it holds as a record (hosts, --host-record), not to an --address
# domain. alias -> cdn -> edge is a chain it does follow to edge's address. v6 has both families;
# nx.test is NXDOMAIN; example.test also has an MX, a type the parser skips.
DNSMASQ_ARGS = [
    "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
    "--listen-address=127.0.0.1", "--pid-file=", "--user=root", "--group=root",
    "--local-ttl=300",
    "--address=/example.test/198.18.0.10",
    "--address=/nx.test/",
    "--cname=www.example.test,example.test,120",
    "--host-record=edge.example.test,198.18.0.20,600",
    "--cname=cdn.example.test,edge.example.test,120",
    "--cname=alias.example.test,cdn.example.test,60",
    "--host-record=v6.example.test,198.18.0.11,fd00:198:18::11,900",
    "--mx-host=example.test,mail.example.test,10",
]

# (scenario, dig arguments). UDP scenarios are one query each; the TCP one keeps a single
# connection open for two queries so the stream holds two length-prefixed messages each way.
SCENARIOS = [
    ("udp_a", ["example.test", "A"]),
    ("udp_a_noedns", ["+noedns", "example.test", "A"]),
    ("udp_www_cname", ["www.example.test", "A"]),
    ("udp_cname_chain", ["alias.example.test", "A"]),
    ("udp_aaaa", ["v6.example.test", "AAAA"]),
    ("udp_nxdomain", ["nope.nx.test", "A"]),
    ("udp_refused", ["unknown.invalid", "A"]),
    ("udp_mx", ["example.test", "MX"]),
    ("tcp_two", ["+tcp", "+keepopen", "example.test", "A", "www.example.test", "A"]),
]


def free_port():
    """A port >= 20000 free for both UDP and TCP on loopback."""
    for port in range(20000 + os.getpid() % 20000, 65000):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                 socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                u.bind((LOOPBACK, port))
                t.bind((LOOPBACK, port))
                return port
        except OSError:
            continue
    raise RuntimeError("no free port")


class Relay:
    def __init__(self, outdir, server_port):
        self.outdir = outdir
        self.server = (LOOPBACK, server_port)
        self.scenario = None
        self.stop = threading.Event()
        self.port = free_port()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((LOOPBACK, self.port))
        self.udp.settimeout(0.2)
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((LOOPBACK, self.port))
        self.tcp.listen(4)
        self.tcp.settimeout(0.2)
        self.threads = [threading.Thread(target=self.run_udp), threading.Thread(target=self.run_tcp)]
        for t in self.threads:
            t.start()

    def write(self, suffix, data, mode="wb"):
        with open(os.path.join(self.outdir, f"{self.scenario}.{suffix}.bin"), mode) as f:
            f.write(data)

    def run_udp(self):
        while not self.stop.is_set():
            try:
                query, client = self.udp.recvfrom(65535)
            except socket.timeout:
                continue
            self.write("query", query)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
                up.settimeout(2)
                up.sendto(query, self.server)
                response, _ = up.recvfrom(65535)
            self.write("response", response)
            self.udp.sendto(response, client)

    def pump(self, src, dst, suffix):
        self.write(suffix, b"")
        while True:
            data = src.recv(65535)
            if not data:
                dst.shutdown(socket.SHUT_WR)
                return
            self.write(suffix, data, "ab")
            dst.sendall(data)

    def run_tcp(self):
        while not self.stop.is_set():
            try:
                client, _ = self.tcp.accept()
            except socket.timeout:
                continue
            up = socket.create_connection(self.server, timeout=2)
            a = threading.Thread(target=self.pump, args=(client, up, "client"))
            b = threading.Thread(target=self.pump, args=(up, client, "server"))
            a.start()
            b.start()
            a.join()
            b.join()
            client.close()
            up.close()

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        self.udp.close()
        self.tcp.close()


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    for tool in ("dnsmasq", "dig"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install -y dnsmasq-base bind9-dnsutils")
    dns_port = free_port()
    logdir = tempfile.mkdtemp(prefix="ns-dns-capture-")
    dnsmasq = subprocess.Popen(
        ["dnsmasq", f"--port={dns_port}", f"--log-facility={logdir}/dnsmasq.log", "--log-queries"]
        + DNSMASQ_ARGS)
    relay = None
    try:
        for _ in range(50):
            try:
                socket.create_connection((LOOPBACK, dns_port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        relay = Relay(outdir, dns_port)
        for scenario, args in SCENARIOS:
            relay.scenario = scenario
            out = subprocess.run(
                ["dig", f"@{LOOPBACK}", "-p", str(relay.port), "+tries=1", "+time=2"] + args,
                capture_output=True, text=True, check=True).stdout
            print(f"== {scenario}\n{out}")
            time.sleep(0.3)  # let the relay finish writing the TCP streams
    finally:
        if relay:
            relay.close()
        dnsmasq.terminate()
        dnsmasq.wait()
        shutil.rmtree(logdir)


if __name__ == "__main__":
    main()
