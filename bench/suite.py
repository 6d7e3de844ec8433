"""The benchmark table of docs/performance.md: redirects, postbacks and Segment batches of a real
`tracklane serve` (one process) driven by wrk on loopback, each beside nginx answering the same route
with a constant in the same run.

Needs `wrk` and `nginx` on the PATH (Debian: `apt-get install wrk nginx-light`); installs nothing. nginx
runs with one worker from a configuration in a temporary directory, on a free loopback port. Tracklane runs
on a fresh SQLite file, or on PostgreSQL when `--database-url postgresql://...` names an empty database;
a program (advertiser, offer, partner) is created through the API with an admin key. Then, for each server,
wrk keeps CONNECTIONS keep-alive connections busy for DURATION seconds, with a browser User-Agent:

1. `GET /r/{offer}/{partner}`: each click committed before its 302;
2. `GET /postback` on distinct clicks (made first through `/clk`), each conversion committed;
3. `POST /v1/batch` with BATCH track events a request, each event committed.

Then `bench/deliveries.py` on the same database: webhooks and partner postbacks delivered by one and by two
`tracklane worker` processes to nginx, against direct signed POSTs (`--deliveries 0` leaves it out).

Prints one table: requests/s, units/s (clicks, conversions, events), p50 and p99 latency, errors, the ratio
to nginx, and the peak resident memory (VmRSS) of the server under that load.

    bench/run [--duration 10] [--connections 64] [--threads 2] [--batch 100] [--clicks N] [--database-url URL]
              [--workers 1] [--deliveries 10000] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, inspect

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
INSTALL_HINT = "install them first, e.g. on Debian or Ubuntu: sudo apt-get install wrk nginx-light"

# Lua shared by every wrk script: the browser User-Agent, a thread number for each thread, and a summary
# printed as one JSON line (wrk's own text is not meant to be parsed). `accepted` counts the answers the
# script's response() judged right, when it has one.
LUA_COMMON = """
wrk.headers["User-Agent"] = "%(user_agent)s"
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function done(summary, latency, requests)
  local accepted, checked = 0, 0
  for _, t in ipairs(threads) do
    accepted = accepted + (t:get("accepted") or 0)
    checked = checked + (t:get("checked") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, "status_errors": %%d, '
    .. '"socket_errors": %%d, "accepted": %%d, "checked": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout, accepted, checked))
end
"""

# Every click from another visitor address (through X-Forwarded-For, which Tracklane believes from
# loopback, its default trusted proxy): a repeat of the same address and user agent within a minute would
# be recorded as a duplicate click.
LUA_REDIRECT = """
local n = 0
function request()
  n = n + 1
  wrk.headers["X-Forwarded-For"] = string.format("10.%%d.%%d.%%d", tid, math.floor(n / 256) %% 256, n %% 256)
  return wrk.format("GET", "%(path)s")
end
"""

# Walks the prepared transaction ids: thread t takes ids t, t + T, t + 2T, ... (wrapping around, so a run
# longer than the prepared clicks meets duplicates: counted, as they are not "accepted").
LUA_POSTBACK = """
local ids, n = {}, 0
function init(args)
  for line in io.lines("%(ids_file)s") do ids[#ids + 1] = line end
  n = tid
  accepted, checked = 0, 0
end
function request()
  local id = ids[(n %% #ids) + 1]
  n = n + %(threads)d
  return wrk.format("GET", "/postback?transaction_id=" .. id .. "&secure=%(token)s&amount=49.90&order_id=o-" .. id)
end
function response(status, headers, body)
  checked = checked + 1
  if status == 200 and body:find('"accepted"', 1, true) then accepted = accepted + 1 end
end
"""

# A new batch for every request: new messageIds (so none is a duplicate) and new people.
LUA_SEGMENT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n, stamp = 0, os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ")
function init(args)
  accepted, checked = 0, 0
end
function request()
  n = n + 1
  local events = {}
  for i = 1, %(batch)d do
    events[i] = string.format('{"type":"track","event":"Product Viewed","userId":"u-%(run)s-%%d-%%d-%%d",'
      .. '"messageId":"m-%(run)s-%%d-%%d-%%d","timestamp":"%%s","properties":{"product_id":"p-1",'
      .. '"price":19.99,"currency":"USD"},"context":{"library":{"name":"analytics-python","version":"2.3.4"}}}',
      tid, n, i, tid, n, i, stamp)
  end
  local body = '{"batch":[' .. table.concat(events, ",") .. '],"sentAt":"' .. stamp .. '","writeKey":"%(write_key)s"}'
  return wrk.format(nil, "/v1/batch", nil, body)
end
function response(status, headers, body)
  checked = checked + 1
  if status == 200 then accepted = accepted + 1 end
end
"""

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    client_body_buffer_size 64k;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    default_type application/json;
    server {{
        listen 127.0.0.1:{port};
        location = /healthz {{ return 200 '{{"status": "ok"}}'; }}
        location /r/ {{
            add_header Cache-Control no-store;
            add_header Set-Cookie "tl_1=0123456789abcdef0123456789abcdef; Path=/; Max-Age=2592000; SameSite=Lax";
            return 302 "https://shop.example/land?tid=0123456789abcdef0123456789abcdef";
        }}
        location = /postback {{
            return 200 '{{"result": "accepted", "conversion_id": 1, "status": "approved"}}';
        }}
        location = /v1/batch {{ return 200 '{{"success": true}}'; }}
    }}
}}
"""


@dataclass
class Phase:
    name: str
    unit: str
    per_request: int  # units in one request; 0: the batch size
    script: int  # index in scripts()
    connections: int = 0  # 0: --connections


PHASES = (
    Phase("redirect /r", "clicks", 1, 0),
    Phase("postback", "conversions", 1, 1),
    # the sustainable rate first, then the brief's 64 connections, which overload one process (see the docs)
    Phase("segment /v1/batch", "events", 0, 2, connections=8),
    Phase("segment /v1/batch", "events", 0, 2),
)


@dataclass
class Run:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    accepted: int
    checked: int
    rss_mb: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require_tools() -> tuple[str, str]:
    wrk = shutil.which("wrk")
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    missing = [name for name, path in (("wrk", wrk), ("nginx", nginx)) if path is None]
    if missing or wrk is None or nginx is None:
        sys.exit(f"bench/run needs {' and '.join(missing)}: {INSTALL_HINT}")
    return wrk, nginx


def check_empty(database_url: str) -> None:
    url = database_url.replace("postgres://", "postgresql://", 1).replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            tables = inspect(connection).get_table_names()
    finally:
        engine.dispose()
    if tables:
        sys.exit(f"the database of --database-url is not empty ({len(tables)} tables): name an empty one")


@contextmanager
def started(args: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        proc = subprocess.Popen(args, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError as error:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{args[0]} did not start:\n{log.read_text()[-3000:]}") from error
                time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_kb(pid: int) -> int:
    """VmRSS of a process and its descendants, in kB (0 for one that has gone)."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += rss_kb(int(child))
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


@contextmanager
def peak_rss(pid: int) -> Iterator[list[int]]:
    """Samples the RSS of `pid` every 0.2 s while the block runs; the list holds the peak."""
    peak = [rss_kb(pid)]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            peak[0] = max(peak[0], rss_kb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        sampler.join()


@contextmanager
def profiled(pid: int, seconds: float, output: Path | None) -> Iterator[None]:
    """py-spy sampling `pid` (its threads, idle ones left out) while the block runs, as collapsed stacks in
    `output` (nothing when it is None)."""
    if output is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [spy, "record", "--pid", str(pid), "--duration", f"{max(1, round(seconds))}", "--rate", "200"]
    command += ["--format", "raw", "--threads", "--output", str(output)]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        recorder.wait(timeout=seconds + 30)


def wrk_run(
    wrk: str, args: argparse.Namespace, base: str, script: str, workdir: Path, pid: int, conns: int,
    profile: Path | None = None,
) -> Run:  # fmt: skip
    path = workdir / f"script-{secrets.token_hex(4)}.lua"
    path.write_text(LUA_COMMON % {"user_agent": USER_AGENT} + script)
    command = [wrk, "--latency", "-t", str(args.threads), "-c", str(conns or args.connections)]
    # a request unanswered after --timeout is counted as an error and left out of the latencies
    command += ["-d", f"{args.duration:g}s", "--timeout", f"{args.timeout:g}s"]
    with peak_rss(pid) as peak, profiled(pid, args.duration, profile):
        output = subprocess.run([*command, "-s", str(path), base], capture_output=True, text=True, check=True).stdout
    line = next((line for line in output.splitlines() if line.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{output}")
    summary = json.loads(line[len("BENCH ") :])
    return Run(
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        errors=summary["status_errors"] + summary["socket_errors"],
        accepted=summary["accepted"],
        checked=summary["checked"],
        rss_mb=peak[0] / 1024,
    )


async def prepare_clicks(base: str, offer_id: int, partner_id: int, count: int, connections: int) -> list[str]:
    """`count` clicks through `GET /clk` over keep-alive connections; their transaction ids."""
    url = httpx.URL(base)
    ids: list[str] = []
    numbers = iter(range(count))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            for n in numbers:
                writer.write(
                    f"GET /clk?offer_id={offer_id}&partner_id={partner_id}&sub1=prep{n} HTTP/1.1\r\n"
                    f"Host: {url.host}:{url.port}\r\nUser-Agent: {USER_AGENT}\r\n"
                    f"X-Forwarded-For: 10.200.{n // 256 % 256}.{n % 256}\r\n\r\n".encode()
                )
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower().split("\r\n")
                length = next(int(h.split(":", 1)[1]) for h in head if h.startswith("content-length:"))
                body = json.loads(await reader.readexactly(length))
                if not head[0].split()[1] == "200":
                    raise RuntimeError(f"/clk answered {head[0]}: {body}")
                ids.append(body["transaction_id"])
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return ids


def create_program(base: str, admin_key: str) -> tuple[int, int, str, str]:
    """Advertiser, offer, partner and a Segment source, through the API: (offer, partner, token, write key)."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30) as api:
        advertiser = api.post("/api/v1/advertisers", json={"name": "Bench advertiser"}).raise_for_status().json()
        offer = api.post(
            "/api/v1/offers",
            json={
                "advertiser_id": advertiser["id"],
                "name": "Bench offer",
                "destination_url": "https://shop.example/land?tid={transaction_id}&s1={sub1}",
                "revenue": {"type": "cps", "percent": "10"},
                "payout": {"type": "cps", "percent": "5"},
            },
        ).raise_for_status()
        partner = api.post("/api/v1/partners", json={"name": "Bench partner", "email": "bench@example.com"})
        source_body = {"name": "Bench source", "advertiser_id": advertiser["id"]}
        source = api.post("/api/v1/sources", json=source_body).raise_for_status()
        return (
            offer.json()["id"],
            partner.raise_for_status().json()["id"],
            advertiser["postback_token"],
            source.json()["write_key"],
        )


def accepted_clicks(base: str) -> int:
    """`tracklane_clicks_total{result="accepted"}` of the server (its /metrics answers loopback)."""
    total = 0.0
    for line in httpx.get(base + "/metrics", timeout=10).raise_for_status().text.splitlines():
        if line.startswith("tracklane_clicks_total{") and 'result="accepted"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def settle(base: str, limit: float = 30.0) -> None:
    """Waits until the server's writer queue is empty (what an earlier phase left is done or expired)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        text = httpx.get(base + "/metrics", timeout=10).raise_for_status().text
        depth = next((line for line in text.splitlines() if line.startswith("tracklane_writer_queue_depth")), "x 0")
        if float(depth.rsplit(" ", 1)[1]) == 0:
            return
        time.sleep(0.5)


def scripts(values: dict[str, object]) -> list[str]:
    return [LUA_REDIRECT % values, LUA_POSTBACK % values, LUA_SEGMENT % values]


def run_nginx(wrk: str, nginx: str, args: argparse.Namespace, workdir: Path, ids_file: Path) -> list[Run]:
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, port=port))
    ids_file.write_text("\n".join(secrets.token_hex(16) for _ in range(1000)) + "\n")
    values = {"path": "/r/1/1", "ids_file": ids_file, "threads": args.threads, "token": "t", "batch": args.batch}
    values |= {"run": "nginx", "write_key": "wk"}
    command = [nginx, "-p", str(workdir), "-c", str(conf)]
    with started(command, dict(os.environ), port, workdir / "nginx.log") as proc:
        lua, base = scripts(values), f"http://127.0.0.1:{port}"
        return [wrk_run(wrk, args, base, lua[p.script], workdir, proc.pid, p.connections) for p in PHASES]


def run_tracklane(wrk: str, args: argparse.Namespace, workdir: Path, ids_file: Path) -> tuple[list[Run], list[str]]:
    port, admin_key = free_port(), "tlk_bench_" + secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "TRACKLANE_DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'bench.db'}",
        "TRACKLANE_ADMIN_KEY": admin_key,
        "TRACKLANE_SECRETS_KEY": os.environ.setdefault("TRACKLANE_SECRETS_KEY", secrets.token_urlsafe(32)),
        "TRACKLANE_HOST": "127.0.0.1",
        "TRACKLANE_PORT": str(port),
        "TRACKLANE_WORKERS": str(args.workers),
        "TRACKLANE_LOG_LEVEL": "WARNING",
    }
    base = f"http://127.0.0.1:{port}"
    notes: list[str] = []
    command = [sys.executable, "-m", "tracklane", "serve"]
    with started(command, env, port, workdir / "tracklane.log") as proc:
        offer_id, partner_id, token, write_key = create_program(base, admin_key)
        values = {"path": f"/r/{offer_id}/{partner_id}", "ids_file": ids_file, "threads": args.threads}
        values |= {"token": token, "batch": args.batch, "run": secrets.token_hex(4), "write_key": write_key}
        lua = scripts(values)
        redirects = wrk_run(wrk, args, base, lua[0], workdir, proc.pid, 0, profile_of(args, 0))
        accepted = accepted_clicks(base)
        notes.append(f"clicks recorded accepted (metrics): {accepted}; wrk counted {redirects.requests}")
        count = args.clicks or max(5000, round(redirects.per_second * args.duration))
        began = time.perf_counter()
        ids = asyncio.run(prepare_clicks(base, offer_id, partner_id, count, args.connections))
        ids_file.write_text("\n".join(ids) + "\n")
        notes.append(f"prepared {len(ids)} clicks through /clk in {time.perf_counter() - began:.1f} s")
        later = []
        for number, phase in enumerate(PHASES[1:], start=1):
            settle(base)
            profile = profile_of(args, number)
            later.append(wrk_run(wrk, args, base, lua[phase.script], workdir, proc.pid, phase.connections, profile))
        if later[0].checked > len(ids):
            notes.append("postbacks outnumbered the prepared clicks: the repeats answered 'duplicate' (use --clicks)")
    return [redirects, *later], notes


def profile_of(args: argparse.Namespace, number: int) -> Path | None:
    """Where the profile of the server during phase `number` goes with `--profile DIR`."""
    if args.profile is None:
        return None
    phase = PHASES[number]
    name = f"{number + 1}-{phase.name.split()[0]}-{phase.connections or args.connections}.txt"
    return Path(args.profile) / name


def table(args: argparse.Namespace, nginx: list[Run], tracklane: list[Run]) -> str:
    lines = [
        "| phase | conns | server | requests/s | accepted units/s | p50 ms | p99 ms | errors | checked ok "
        "| vs nginx | RSS MB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase, base, ours in zip(PHASES, nginx, tracklane, strict=True):
        size = phase.per_request or args.batch
        for server, run in (("nginx", base), ("tracklane", ours)):
            good = run.accepted / run.seconds if run.checked else run.per_second
            units = f"{good * size:,.0f} {phase.unit}"
            checked = f"{run.accepted}/{run.checked}" if run.checked else "-"
            ratio = f"{run.per_second / base.per_second:.3f}x"
            lines.append(
                f"| {phase.name} | {phase.connections or args.connections} | {server} | {run.per_second:,.0f} "
                f"| {units} | {run.p50_ms:.2f} | {run.p99_ms:.2f} | {run.errors} | {checked} | {ratio} "
                f"| {run.rss_mb:.0f} |"
            )
    return "\n".join(lines)


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown CPU",
    )
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="tracklane serve processes (default 1; 2 on PostgreSQL measures two servers against one)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="wrk's request timeout (default 10 s)")
    parser.add_argument("--batch", type=int, default=100, help="events in each /v1/batch request (default 100)")
    parser.add_argument("--clicks", type=int, default=0, help="clicks prepared for postbacks (default: 1 run's worth)")
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database (default: SQLite file)")
    parser.add_argument(
        "--deliveries",
        type=int,
        default=10_000,
        help="then webhook and partner postback deliveries a run, per worker (bench/deliveries.py; 0: none)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        default=None,
        help="record the server with py-spy during each Tracklane phase: collapsed stacks, a file a phase in DIR",
    )
    args = parser.parse_args()
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    wrk, nginx = require_tools()
    if args.database_url:
        check_empty(args.database_url)
    with tempfile.TemporaryDirectory(prefix="tracklane-bench-") as tmp:
        workdir = Path(tmp)
        nginx_runs = run_nginx(wrk, nginx, args, workdir, workdir / "nginx-ids.txt")
        tracklane_runs, notes = run_tracklane(wrk, args, workdir, workdir / "ids.txt")
    database = (args.database_url or "sqlite").split(":", 1)[0]
    print(f"machine: {machine()}")
    print(
        f"wrk: {args.connections} connections, {args.threads} threads, {args.duration:g} s a run; "
        f"tracklane serve: {args.workers} process{'es' if args.workers > 1 else ''} on {database}; nginx: 1 worker"
    )
    print(table(args, nginx_runs, tracklane_runs))
    for note in notes:
        print(note)
    if args.deliveries:  # on the same database: with the same secrets key (run_tracklane set it)
        print()
        sys.stdout.flush()
        deliveries = [
            sys.executable,
            str(Path(__file__).with_name("deliveries.py")),
            "--messages",
            str(args.deliveries),
        ]
        subprocess.run([*deliveries, *(["--database-url", args.database_url] if args.database_url else [])], check=True)


if __name__ == "__main__":
    main()
