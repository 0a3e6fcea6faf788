"""Load run: concurrent clients submit readings and changes against the served local stack,
then the run checks that nothing was lost and nothing doubled.

    python scripts/load.py BASE_URL ENV_FILE [--clients 32] [--seconds 120]

`scripts/load` starts a fresh stack and the API for it and runs this. Every client loops
over a mix of writes: meter readings (rising values on two meters, so clients race for
the same meter), contact-data changes, bank-details changes, messages; one
request in five is sent twice with the same Idempotency-Key. Afterwards the outbox relay
runs once and the checks are (C: request ids in the transaction tables, S: distinct
request ids on the requests queue and its dead-letter queue):

- C == S, every id delivered once, no outbox entry still pending;
- every request answered 2xx is in C; a retried key answered the same request id;
- no final answer other than 2xx and the deliberate 409/422/429 (a client retries a 5xx or a
  missing answer under the same key, as a real one would).

`--outage SECONDS` (with `--proxy-port`, which `scripts/load` sets) takes the AWS endpoint
down for the functions in the middle of the run — every connection cut, calls in flight
failing, some after they were applied — and brings it back with its state; the same checks
must hold afterwards.

Throughput and latency percentiles are printed. Exit status 1 if a check fails.
"""

import argparse
import hashlib
import json
import random
import secrets
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import datetime
from collections import Counter, defaultdict
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
ALLOWED_REFUSALS = {409, 422, 429}
# Readings race on these meters (HT/NT, single-register): (customer, session, meter,
# registers, a value above the demo data's last reading).
METERS = [
    ("1000001", "erika", "1EMH0012345678", ["HT", "NT"], 30000),
    ("1000002", "jmueller", "1ESY1160012345", ["SINGLE"], 54000),
]


class Proxy:
    """A TCP proxy in front of the AWS emulator that can be taken down and brought back:
    for the functions, the AWS endpoint stops and restarts (the emulator keeps its state)."""

    def __init__(self, listen_port, target_port):
        import socket
        self.target_port = target_port
        self.up = threading.Event()
        self.up.set()
        self.connections = []
        self.lock = threading.Lock()
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", listen_port))
        self.server.listen(256)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        import socket
        while True:
            conn, _ = self.server.accept()
            if not self.up.is_set():
                conn.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                conn.close()
                continue
            with self.lock:
                self.connections += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    def pipe(self, source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.close()
                except OSError:
                    pass

    def down(self):
        """Cuts every open connection (calls in flight fail, some after they were applied)."""
        self.up.clear()
        with self.lock:
            for c in self.connections:
                try:
                    c.close()
                except OSError:
                    pass
            self.connections = []

    def restore(self):
        self.up.set()


def read_env(path):
    env = {}
    for line in Path(path).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value
    return env


def aws(env, service):
    return boto3.client(
        service,
        endpoint_url=env.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        region_name=env.get("AWS_REGION", "eu-central-1"),
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def open_session(env, login_id, partners):
    token = secrets.token_urlsafe(32)
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    aws(env, "dynamodb").put_item(
        TableName=env["TABLE_SESSIONS"],
        Item={
            "tokenHash": {"S": hashlib.sha256(token.encode()).hexdigest()},
            "loginId": {"S": login_id},
            "partnerNumbers": {"L": [{"S": p} for p in partners]},
            "mustChangePassword": {"BOOL": False},
            "createdAt": {"S": stamp},
            "lastSeenAt": {"S": stamp},
            "expiresAt": {"N": str(int(now.timestamp()) + 7200)},
        },
    )
    return token


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.reading = {m[2]: m[4] for m in METERS}
        self.latencies = defaultdict(list)
        self.statuses = Counter()
        self.accepted = set()
        self.retries = []  # (first request id, retried request id)
        self.unexpected = []

    def next_value(self, meter):
        with self.lock:
            self.reading[meter] += random.randint(1, 5)
            return self.reading[meter]


def call(base, method, path, body, token=None, key=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    if key:
        req.add_header("idempotency-key", key)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            status, text = res.status, res.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        status, text = 0, b""
    elapsed = time.perf_counter() - started
    try:
        answer = json.loads(text) if text else {}
    except ValueError:
        answer = {"raw": text[:200].decode(errors="replace")}
    return status, answer, elapsed


def answered(base, method, path, body, token, key, stop_at, counters, kind):
    """One request as a real client makes it: an answer that does not come, or a 5xx, is
    retried under the same key until it is answered."""
    status, answer, elapsed = call(base, method, path, body, token, key)
    attempts = 0
    while (status >= 500 or status == 0) and attempts < 60 and time.time() < stop_at + 300:
        attempts += 1
        with counters.lock:
            counters.statuses[(kind, f"{status} (retried)")] += 1
        time.sleep(1)
        status, answer, elapsed = call(base, method, path, body, token, key)
    return status, answer, elapsed


def client(n, base, tokens, stop_at, counters):
    rng = random.Random(n)
    today = datetime.date.today().isoformat()
    while time.time() < stop_at:
        kind = rng.choice(["reading", "reading", "contact", "bank", "message"])
        if kind == "reading":
            _, session, meter, registers, _ = rng.choice(METERS)
            values = [{"register": r, "value": str(counters.next_value(meter))} for r in registers]
            request = ("POST", f"/v1/meters/{meter}/readings", {"readingDate": today, "values": values},
                       tokens[session])
        elif kind == "contact":
            request = ("PATCH", "/v1/customers/1000003/contact",
                       {"phone": f"+49 7472 {rng.randint(100000, 999999)}"}, tokens["bakery"])
        elif kind == "bank":
            iban = rng.choice(["DE89370400440532013000", "DE64850503003120123456"])
            request = ("PUT", "/v1/contract-accounts/800000002/bank-details",
                       {"paymentMethod": "BANK_TRANSFER", "payoutAccount": {"holder": "J. Müller", "iban": iban}},
                       tokens["jmueller"])
        else:
            request = ("POST", "/v1/messages",
                       {"reason": "BILLING", "subject": f"Last {n}", "text": "Bitte prüfen."}, tokens["jmueller"])
        method, path, body, token = request
        key = secrets.token_hex(8)
        status, answer, elapsed = answered(base, method, path, body, token, key, stop_at, counters, kind)
        label = f"{method} {path.split('/')[2]}" if path.count("/") > 2 else f"{method} {path}"
        with counters.lock:
            counters.latencies[kind].append(elapsed)
            counters.statuses[(kind, status)] += 1
        if 200 <= status < 300:
            with counters.lock:
                counters.accepted.add(answer["requestId"])
            if rng.random() < 0.2:
                again, repeated, _ = answered(base, method, path, body, token, key, stop_at, counters, kind)
                with counters.lock:
                    counters.retries.append((answer["requestId"], repeated.get("requestId"), again))
        elif status not in ALLOWED_REFUSALS:
            with counters.lock:
                counters.unexpected.append((label, status, answer))


def scan_ids(env, table):
    ids = set()
    paginator = aws(env, "dynamodb").get_paginator("scan")
    for page in paginator.paginate(TableName=table, ProjectionExpression="requestId"):
        ids.update(item["requestId"]["S"] for item in page["Items"])
    return ids


def drain(env, queue_url):
    sqs = aws(env, "sqs")
    ids = []
    empty = 0
    while empty < 3:
        out = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        messages = out.get("Messages", [])
        if not messages:
            empty += 1
            continue
        empty = 0
        for m in messages:
            ids.append(json.loads(m["Body"])["requestId"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return ids


def percentile(values, p):
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("env_file")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--outage", type=int, default=0,
                        help="seconds the AWS endpoint is down in the middle of the run (needs the "
                             "functions to reach the emulator through --proxy-port)")
    parser.add_argument("--proxy-port", type=int, default=0)
    args = parser.parse_args()
    proxy = Proxy(args.proxy_port, 4566) if args.proxy_port else None
    env = read_env(args.env_file)
    tokens = {
        "erika": open_session(env, "L-LOAD1", ["1000001"]),
        "bakery": open_session(env, "L-LOAD3", ["1000003"]),
        "jmueller": open_session(env, "L-LOAD2", ["1000002"]),
    }
    counters = Counters()
    stop_at = time.time() + args.seconds
    started = time.time()
    threads = [threading.Thread(target=client, args=(n, args.base_url, tokens, stop_at, counters))
               for n in range(args.clients)]
    for t in threads:
        t.start()
    if proxy and args.outage:
        time.sleep(max(0, args.seconds / 2 - args.outage / 2))
        print(f"AWS endpoint down for {args.outage} s", flush=True)
        proxy.down()
        time.sleep(args.outage)
        proxy.restore()
        print("AWS endpoint back", flush=True)
    for t in threads:
        t.join()
    wall = time.time() - started

    # Whatever did not go out with its request goes out now.
    relay = subprocess.run([str(ROOT / "target/debug/relay"), "--once"],
                           env={**env, "PATH": "/usr/bin:/bin", "RUST_LOG": "warn"},
                           capture_output=True, text=True)
    print("relay:", relay.stdout.strip() or relay.stderr.strip()[-300:])

    tables = [v for k, v in env.items() if k in {
        "TABLE_METER_READING_SUBMISSIONS", "TABLE_CONTACT_DATA_CHANGES", "TABLE_BANK_DETAILS_CHANGES",
        "TABLE_MESSAGES", "TABLE_PORTAL_LOGIN_REQUESTS", "TABLE_BILLING_ADDRESS_CHANGES",
        "TABLE_INSTALLMENT_CHANGES", "TABLE_TERMINATIONS", "TABLE_DOCUMENT_UPLOADS"}]
    committed = set().union(*(scan_ids(env, t) for t in tables))
    delivered = drain(env, env["REQUESTS_QUEUE_URL"]) + drain(env, env["REQUESTS_DLQ_URL"])
    pending = aws(env, "dynamodb").scan(TableName=env["TABLE_OUTBOX"], IndexName="pending-by-customer",
                                         Select="COUNT")["Count"]

    total = sum(counters.statuses.values())
    print(f"\n{args.clients} clients, {wall:.0f} s: {total} requests, {total / wall:.1f} per second")
    for kind, values in sorted(counters.latencies.items()):
        print(f"  {kind:8} n={len(values):5}  p50 {percentile(values, 50) * 1000:7.1f} ms  "
              f"p95 {percentile(values, 95) * 1000:7.1f} ms  p99 {percentile(values, 99) * 1000:7.1f} ms")
    print("  statuses:", dict(sorted((f"{k} {s}", n) for (k, s), n in counters.statuses.items())))

    checks = {
        "no final answer other than 2xx, 409, 422, 429": not counters.unexpected,
        "every accepted request is committed": counters.accepted <= committed,
        "committed == delivered (C == S)": committed == set(delivered),
        "each request delivered once": len(delivered) == len(set(delivered)),
        "nothing pending in the outbox": pending == 0,
        "a retried key answers the same request": all(a == b and s in (200, 201, 202)
                                                     for a, b, s in counters.retries),
    }
    print(f"\n  C = {len(committed)} committed, S = {len(set(delivered))} delivered "
          f"({len(delivered)} messages), {len(counters.accepted)} accepted, {len(counters.retries)} retried")
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    for label, status, answer in counters.unexpected[:5]:
        print(f"  unexpected: {label} {status} {json.dumps(answer)[:200]}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
