"""MTOM streaming benchmark: a 200 MB attachment through the real server and back.

    .venv/bin/python bench/mtom.py [--size-mb 200] [--workers 2] [--limit-mb 64]

It creates a community in a temporary folder (``ihe-gateway init``), switches
on the diagnostics endpoint, serves it (``ihe-gateway serve``, gunicorn with
mutual TLS), and sends one MTOM echo request whose attachment is generated on
the fly and streamed (Content-Length, no chunking). The echoed attachment is
streamed back to disk by the gateway's own MTOM reader, and both hashes are
checked against what was sent. Meanwhile it samples the resident memory of
every server process; it exits non-zero when the largest growth of any server
process reaches the limit (64 MB), or when the bytes do not come back intact.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import requests
from lxml import etree

from gateway.diagnostics import DIAG_NS, MTOM_ECHO, XOP_NS
from gateway.soap import mtom
from profiles.transaction import OutgoingAttachment
from profiles.xop import content_id_from_href

MiB = 1024 * 1024
S12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
PATH = "/diagnostics/mtom-echo"


def cli() -> list[str]:
    exe = Path(sys.executable).with_name("ihe-gateway")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gateway.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def enable_diagnostics(toml: Path) -> None:
    text = toml.read_text()
    if "diagnostics" in tomllib.loads(text):
        text = text.replace("enabled = false", "enabled = true")
    else:
        text += "\n[diagnostics]\nenabled = true\n"
    toml.write_text(text)
    assert tomllib.loads(text)["diagnostics"]["enabled"] is True


# --- memory of a process tree, from /proc -------------------------------------------------


def status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid``: shows which worker served the request."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree(root: int) -> list[int]:
    """``root`` and its descendants."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, own processes)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Sampler(threading.Thread):
    """Samples VmRSS of a process tree every ``interval`` seconds; keeps each pid's maximum."""

    def __init__(self, root: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak: dict[int, int] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for pid in tree(self.root):
                rss = status_kib(pid, "VmRSS")
                if rss is not None:
                    self.peak[pid] = max(self.peak.get(pid, 0), rss)
            self.done.wait(self.interval)


# --- the request -------------------------------------------------------------------------


def echo_envelope(cid: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="{S12}" '
        f'xmlns:wsa="{WSA}"><env:Header><wsa:Action env:mustUnderstand="1">{MTOM_ECHO.action}'
        f"</wsa:Action><wsa:MessageID>urn:uuid:bench-{os.getpid()}</wsa:MessageID></env:Header>"
        f'<env:Body><diag:EchoRequest xmlns:diag="{DIAG_NS}" xmlns:xop="{XOP_NS}"><diag:Part>'
        f'<xop:Include href="{mtom.href_for(cid)}"/></diag:Part></diag:EchoRequest></env:Body>'
        "</env:Envelope>"
    ).encode()


class SizedBody:
    """A lazy body with a length, so requests sends Content-Length and streams the chunks.

    (requests-toolbelt's StreamingIterator grew this client by 300 MiB here when fed
    unaligned 1 MiB chunks; iterating directly keeps memory flat.)
    """

    def __init__(self, body: mtom.MultipartBody) -> None:
        assert body.length is not None
        self.body = body

    def __len__(self) -> int:
        return self.body.length  # type: ignore[return-value]

    def __iter__(self):
        return iter(self.body)


class Payload:
    """``size`` pseudo-random bytes made 1 MiB at a time, hashed as they are sent."""

    def __init__(self, size: int, seed: int = 2) -> None:
        self.size, self.seed = size, seed
        self.sha1 = hashlib.sha1()

    def chunks(self):
        rng = random.Random(self.seed)
        self.sha1 = hashlib.sha1()
        left = self.size
        while left:
            block = rng.randbytes(min(MiB, left))
            self.sha1.update(block)
            left -= len(block)
            yield block


def echo(session: requests.Session, url: str, size: int, spool: Path, tls: dict) -> dict:
    payload = Payload(size)
    cid = "payload@bench.ihe-gateway"
    att = OutgoingAttachment(cid, "application/octet-stream", payload.chunks, size)
    content_type, body = mtom.write_multipart(
        echo_envelope(cid), [att], soap_media_type="application/soap+xml", action=MTOM_ECHO.action
    )
    started = time.perf_counter()
    resp = session.post(
        url,
        data=SizedBody(body),
        headers={"Content-Type": content_type},
        stream=True,
        timeout=600,
        **tls,
    )
    if resp.status_code != 200:
        raise SystemExit(f"echo failed: HTTP {resp.status_code}: {resp.content[:2000]!r}")
    message = mtom.read_multipart(
        resp.raw,
        resp.headers["Content-Type"],
        max_root_bytes=MiB,
        max_attachment_bytes=size + 1,
        spool_dir=str(spool),
    )
    seconds = time.perf_counter() - started
    try:
        part = etree.fromstring(message.root).find(f".//{{{DIAG_NS}}}Part")
        href = part.find(f"{{{XOP_NS}}}Include").get("href")
        back = message.attachments[content_id_from_href(href)]
        sent = payload.sha1.hexdigest()
        return {
            "seconds": seconds,
            "ok": part.get("sha1") == sent == back.sha1 and int(part.get("size")) == back.size
            == size,
            "sent_sha1": sent,
            "server_sha1": part.get("sha1"),
            "returned_sha1": back.sha1,
            "returned_size": back.size,
        }
    finally:
        message.close()


# --- the run -----------------------------------------------------------------------------


def wait_ready(url: str, tls: dict, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    session = requests.Session()
    session.trust_env = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if session.get(url, timeout=2, **tls).status_code in (200, 503):
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server did not answer within {timeout}s:\n{log.read_text()[-3000:]}")


def spool_files(folder: Path, wait: float) -> int:
    deadline = time.monotonic() + wait
    while (left := len(list(folder.glob("*")))) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run(args: argparse.Namespace, work: Path) -> int:
    port = free_port()
    community = work / "community"
    subprocess.run([*cli(), "init", str(community), "--port", str(port)], check=True,
                   stdout=subprocess.DEVNULL)
    enable_diagnostics(community / "gateway.toml")
    certs = community / "certs"
    tls = {
        "cert": (str(certs / "client.pem"), str(certs / "client-key.pem")),
        "verify": str(certs / "ca.pem"),
    }
    log = work / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cli(), "serve", "--config", str(community / "gateway.toml"), "--port", str(port),
             "--workers", str(args.workers)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"https://localhost:{port}"
    spool = work / "client-spool"
    spool.mkdir()
    try:
        wait_ready(base + "/healthz", tls, proc, log, timeout=60)
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE must not replace verify=
        # Warm every worker (app built, first-request set-up done) before the baseline: a
        # new connection each time, since a kept-alive one always reaches the same worker.
        for _ in range(args.workers * 4):
            fresh = requests.Session()
            fresh.trust_env = False
            warm = echo(fresh, base + PATH, MiB, spool, tls)
            fresh.close()
            if not warm["ok"]:
                raise SystemExit(f"warm-up echo came back wrong: {warm}")
        pids = tree(proc.pid)
        baseline = {pid: status_kib(pid, "VmRSS") or 0 for pid in pids}
        cpu = {pid: cpu_seconds(pid) for pid in pids}
        hwm_reset = all(reset_peak(pid) for pid in pids)
        reset_peak(os.getpid())
        client_before = status_kib(os.getpid(), "VmRSS") or 0
        sampler = Sampler(proc.pid)
        sampler.start()
        result = echo(session, base + PATH, args.size_mb * MiB, spool, tls)
        sampler.done.set()
        sampler.join()
        client_peak = status_kib(os.getpid(), "VmHWM") or 0
        # The server deletes its spooled copy just after the last byte of the answer.
        result["left_in_spool"] = spool_files(community / "data" / "spool", wait=5.0)
        growth = {}
        for pid, before in baseline.items():
            peak = max(sampler.peak.get(pid, 0), status_kib(pid, "VmHWM") if hwm_reset else 0)
            growth[pid] = (before, peak or before, cpu_seconds(pid) - cpu[pid])
    finally:
        stop(proc)
    return report(args, result, growth, hwm_reset, client_before, client_peak)


def report(args, result, growth, hwm_reset, client_before, client_peak) -> int:
    size = args.size_mb * MiB
    worst = max((peak - before for before, peak, _ in growth.values()), default=0) / 1024
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    print(f"payload: {args.size_mb} MiB attachment, echoed back; workers: {args.workers}")
    print(f"round trip: {result['seconds']:.2f} s "
          f"({2 * size / MiB / result['seconds']:.0f} MiB/s up and down together)")
    print(f"sha1 sent {result['sent_sha1']}, server {result['server_sha1']}, "
          f"returned {result['returned_sha1']} ({result['returned_size']} bytes)")
    how = "VmHWM after reset + VmRSS sampling" if hwm_reset else "VmRSS sampling every 20 ms"
    print(f"server processes ({how}):")
    for pid, (before, peak, busy) in sorted(growth.items()):
        print(f"  pid {pid}: {before / 1024:.1f} MiB before, peak {peak / 1024:.1f} MiB, "
              f"growth {(peak - before) / 1024:.1f} MiB, CPU {busy:.2f} s during the echo")
    print(f"client: {client_before / 1024:.1f} MiB before, peak {client_peak / 1024:.1f} MiB, "
          f"growth {(client_peak - client_before) / 1024:.1f} MiB")
    served = max(growth.values(), key=lambda g: g[2])
    print(f"worker that served the echo: growth {(served[1] - served[0]) / 1024:.1f} MiB")
    print(f"largest growth of any server process: {worst:.1f} MiB (limit {args.limit_mb} MiB)")
    print(f"files left in the server's spool folder: {result['left_in_spool']}")
    if not result["ok"] or result["left_in_spool"]:
        print("FAIL: the echoed bytes do not match what was sent, or a spooled file remains")
        return 1
    if worst >= args.limit_mb:
        print("FAIL: server memory grew past the limit")
        return 1
    print("PASS")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=200, help="attachment size in MiB")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--limit-mb", type=int, default=64, help="fail at this RSS growth")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-mtom-"))
    try:
        return run(args, work)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
