"""Speed and size of every function, side by side with two references (docs/performance.md).

    perf.py ENV_FILE [--runs N] [--warm N] [--out FILE] [--only NAME,...]

For every release binary in target/release (and the Python + boto3 reference):
- cold start: from process start to the first answered invocation, served by the small
  Lambda Runtime API below (loopback, TCP_NODELAY), the event being the function's real
  request, whose AWS calls reach the emulator; median of --runs processes;
- the AWS calls of that request, counted by the proxy below between the function and the
  emulator, with the sequential depth (the longest chain of calls each of which starts after
  the one before has answered) and the time spent inside the emulator;
- peak RSS (VmHWM) after --warm warm invocations of the same request, and their latency;
- size of the stripped binary and of its deployment zip.
Ratios are taken within one run, since the machine's speed drifts between runs.
"""

import argparse
import asyncio
import io
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from load import read_env

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
EMULATOR = ("127.0.0.1", 4566)
LOGS = ROOT / ".local" / "perf-logs"

# Demo data (fixtures/crm-demo.json): jmueller is customer 1000002 with account 800000003,
# contract 5000003 and gas meter 7ELS8135012345.
LOGIN = {"username": "jmueller", "password": "Demo-Passwort-2026"}
SYNC_MESSAGE = {
    "messageType": "crm.entity-changed",
    "messageId": "perf-0001",
    "occurredAt": "2026-12-01T10:00:00Z",
    "entityType": "businessPartner",
    "version": 2,
    "entity": None,  # filled from the demo export
}


def http_event(method, path, body=None, token=None, query=""):
    headers = {"content-type": "application/json", "user-agent": "perf", "x-forwarded-for": "127.0.0.1"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "perf",
            "domainName": "perf.local",
            "domainPrefix": "perf",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "perf"},
            "requestId": "perf",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Dec/2026:09:00:00 +0000",
            "timeEpoch": 1796115600000,
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def events(token):
    """Per function: the request of its cold start and warm invocations, and the status it
    must answer (every request reaches DynamoDB)."""
    partner = next(p for p in json.loads((ROOT / "fixtures" / "crm-demo.json").read_text())["businessPartners"]
                   if p["partnerNumber"] == "1000004")
    sync = dict(SYNC_MESSAGE, entity=partner)
    return {
        "account": (http_event("GET", "/v1/me", token=token), 200),
        "bank-details": (http_event("GET", "/v1/contract-accounts/800000003/bank-details", token=token), 200),
        "catalog": (http_event("GET", "/v1/products"), 200),
        "contracts": (http_event("GET", "/v1/contract-accounts/800000003/contracts", token=token), 200),
        "customer": (http_event("GET", "/v1/customers/1000002", token=token), 200),
        "dashboard": (http_event("GET", "/v1/me/dashboard", token=token), 200),
        "documents": (http_event("GET", "/v1/me/documents", token=token), 200),
        "installments": (http_event("GET", "/v1/contract-accounts/800000003/installment-plan", token=token), 200),
        "messages": (http_event("POST", "/v1/messages", token=token,
                                body={"reason": "OTHER", "subject": "Messung", "text": "Eine Nachricht."}), 202),
        "meter-readings": (http_event("GET", "/v1/meters/7ELS8135012345/readings", token=token), 200),
        # Another customer's contract: the session check and the contract's lookup, then 404.
        "termination": (http_event("POST", "/v1/contracts/5000001/terminations", token=token,
                                   body={"reason": "MOVE_OUT", "moveOutDate": "2027-03-31", "endDate": "2027-03-31",
                                         "newAddress": {"street": "Weg", "houseNumber": "1", "postalCode": "50667",
                                                        "city": "Köln", "country": "DE"}}), None),
        "registration": (http_event("POST", "/v1/registrations/verify",
                                    body={"customerNumber": "1000005", "lastName": "Schulz"}), None),
        "requests": (http_event("GET", "/v1/me/requests", token=token), 200),
        "sessions": (http_event("POST", "/v1/sessions", body=LOGIN), 201),
        "sync": ({"Records": [{"messageId": "perf-0001", "body": json.dumps(sync), "eventSource": "aws:sqs"}]}, None),
        "relay": ({"version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}, None),
        "hello-world": ({"hello": "world"}, 200),
        "python-boto3": (http_event("GET", "/v1/products"), 200),
    }


def endpoint_cases(token):
    """Every read endpoint and a write of each kind, for the count of AWS calls per request
    (after one warm-up request of the same process). Each is (function, label, event, status)."""
    me = "jmueller's"
    address = {"street": "Rheinufer", "houseNumber": "3a", "postalCode": "50668", "city": "Köln", "country": "DE"}
    gets = [
        ("account", "GET /v1/me", "/v1/me"),
        ("dashboard", "GET /v1/me/dashboard", "/v1/me/dashboard"),
        ("customer", "GET /v1/customers/{n}", "/v1/customers/1000002"),
        ("contracts", "GET /v1/contract-accounts/{a}/contracts", "/v1/contract-accounts/800000003/contracts"),
        ("contracts", "GET /v1/contracts/{c}", "/v1/contracts/5000003"),
        ("installments", "GET /v1/contract-accounts/{a}/installment-plan",
         "/v1/contract-accounts/800000003/installment-plan"),
        ("bank-details", "GET /v1/contract-accounts/{a}/bank-details", "/v1/contract-accounts/800000003/bank-details"),
        ("meter-readings", "GET /v1/meters/{m}/readings", "/v1/meters/7ELS8135012345/readings"),
        ("meter-readings", "GET /v1/meters/{m}/consumption", "/v1/meters/7ELS8135012345/consumption"),
        ("documents", "GET /v1/me/documents", "/v1/me/documents"),
        ("requests", "GET /v1/me/requests", "/v1/me/requests"),
    ]
    cases = [(f, label, http_event("GET", path, token=token), 200) for f, label, path in gets]
    cases += [
        ("catalog", "GET /v1/products", http_event("GET", "/v1/products"), 200),
        ("catalog", "GET /v1/code-lists/{name}", http_event("GET", "/v1/code-lists/messageReasons"), 200),
        ("meter-readings", "POST /v1/anonymous/meter-readings/lookup",
         http_event("POST", "/v1/anonymous/meter-readings/lookup",
                    body={"customerNumber": "1000001", "lastName": "Mustermann"}), 200),
        ("meter-readings", "POST /v1/anonymous/meter-readings",
         http_event("POST", "/v1/anonymous/meter-readings", body={
             "customerNumber": "1000001", "lastName": "Mustermann", "meterNumber": "1EMH0012345678",
             "readingDate": time.strftime("%Y-%m-%d"),
             "values": [{"register": "HT", "value": "29800"}, {"register": "NT", "value": "19650"}]}), 202),
        ("messages", "POST /v1/messages", http_event("POST", "/v1/messages", token=token, body={
            "reason": "OTHER", "subject": "Frage", "text": f"A question of {me}."}), 202),
        ("customer", "PATCH /v1/customers/{n}/contact", http_event("PATCH", "/v1/customers/1000002/contact",
                                                                   token=token, body={"phone": "+49 221 123456"}), 202),
        ("contracts", "PUT /v1/contract-accounts/{a}/billing-address",
         http_event("PUT", "/v1/contract-accounts/800000003/billing-address", token=token,
                    body={"billingAddress": address, "billRecipient": None}), 202),
        ("bank-details", "PUT /v1/contract-accounts/{a}/bank-details",
         http_event("PUT", "/v1/contract-accounts/800000003/bank-details", token=token, body={
             "paymentMethod": "SEPA_DIRECT_DEBIT",
             "bankAccount": {"holder": "Jürgen Müller-Lüdenscheidt", "iban": "DE89370400440532013000",
                             "bic": "COBADEFFXXX"},
             "payoutAccount": None, "currentPassword": LOGIN["password"],
             "sepaMandateAccepted": True, "sepaMandateTextVersion": "2026-01"}), 202),
    ]
    return cases


class RuntimeApi:
    """The Lambda Runtime API (2018-06-01) for one function process at a time."""

    def __init__(self):
        self.pending = asyncio.Queue()
        self.answers = {}
        self.counter = 0
        self.first_next = None  # when the current process first asked for an event (its init done)

    async def start(self):
        self.server = await asyncio.start_server(self.connection, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def invoke(self, event):
        self.counter += 1
        request_id = f"perf-{self.counter:08d}"
        done = asyncio.get_running_loop().create_future()
        self.answers[request_id] = done
        self.pending.put_nowait((request_id, json.dumps(event).encode()))
        return done

    async def connection(self, reader, writer):
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                request = await read_message(reader, request=True)
                if request is None:
                    return
                method, target, _, body = request
                if method == "GET" and target.endswith("/invocation/next"):
                    if self.first_next is None:
                        self.first_next = time.perf_counter()
                    request_id, payload = await self.pending.get()
                    deadline = int(time.time() * 1000) + 30_000
                    write_message(writer, "HTTP/1.1 200 OK", [
                        ("Lambda-Runtime-Aws-Request-Id", request_id),
                        ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                        ("Lambda-Runtime-Invoked-Function-Arn",
                         "arn:aws:lambda:eu-central-1:123456789012:function:perf"),
                        ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0"),
                        ("Content-Type", "application/json"),
                    ], payload)
                else:
                    match = re.search(r"/invocation/([^/]+)/(response|error)$", target)
                    if match and match.group(1) in self.answers:
                        future = self.answers.pop(match.group(1))
                        if not future.done():
                            future.set_result((time.perf_counter(), match.group(2), body))
                    elif target.endswith("/init/error"):
                        for future in self.answers.values():
                            if not future.done():
                                future.set_result((time.perf_counter(), "init-error", body))
                    write_message(writer, "HTTP/1.1 202 Accepted", [("Content-Type", "application/json")], b"{}")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            writer.close()


async def read_message(reader, request):
    """One HTTP/1.1 message: (start line parts..., headers, body); None at a clean close."""
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                break
            body += (await reader.readexactly(size + 2))[:-2]
    elif request:
        body = b""
    else:
        body = await reader.read()
    if request:
        method, target, _ = lines[0].split(" ", 2)
        return method, target, headers, body
    return lines[0], headers, body


def write_message(writer, start, headers, body):
    head = start + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    writer.write(head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


class CountingProxy:
    """Forwards the functions' AWS calls to the emulator and records each one: the
    operation, and when it was sent and answered."""

    def __init__(self):
        self.calls = []

    async def start(self):
        self.server = await asyncio.start_server(self.connection, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def connection(self, reader, writer):
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        up_reader = up_writer = None
        try:
            while True:
                request = await read_message(reader, request=True)
                if request is None:
                    return
                if up_reader is None or up_reader.at_eof():
                    if up_writer is not None:
                        up_writer.close()
                    up_reader, up_writer = await asyncio.open_connection(*EMULATOR)
                    up_writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                method, target, headers, body = request
                sent = time.perf_counter()
                forwarded = [(k, v) for k, v in headers.items() if k not in ("content-length", "transfer-encoding")]
                write_message(up_writer, f"{method} {target} HTTP/1.1", forwarded, body)
                await up_writer.drain()
                status, up_headers, up_body = await read_message(up_reader, request=False)
                answered = time.perf_counter()
                if up_headers.get("connection", "").lower() == "close":
                    up_writer.close()
                    up_reader = up_writer = None  # the emulator closes after each answer
                self.calls.append((operation(method, target, headers), sent, answered))
                back = [(k, v) for k, v in up_headers.items()
                        if k not in ("content-length", "transfer-encoding", "connection")]
                write_message(writer, status, back, up_body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except Exception as e:  # noqa: BLE001 - a proxy bug must show, not hang the run
            print(f"proxy: {e!r}", file=sys.stderr)
            raise
        finally:
            writer.close()
            if up_writer is not None:
                up_writer.close()


def operation(method, target, headers):
    if "x-amz-target" in headers:
        return headers["x-amz-target"].split(".")[-1]
    scope = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", headers.get("authorization", ""))
    service = scope.group(1) if scope else "?"
    if service == "ses":
        return "SendEmail" if "outbound-emails" in target else f"SES {method}"
    if service == "s3":
        return {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject"}.get(method, f"S3 {method}")
    return f"{service} {method}"


def depth(calls):
    """The longest chain of calls each of which was sent after the one before answered."""
    calls = sorted(calls, key=lambda c: c[2])
    best = []
    for i, (_, sent, _) in enumerate(calls):
        best.append(1 + max([best[j] for j in range(i) if calls[j][2] <= sent], default=0))
    return max(best, default=0)


def busy(calls):
    """Time with at least one call open in the emulator."""
    total, end = 0.0, float("-inf")
    for _, sent, answered in sorted(calls, key=lambda c: c[1]):
        if answered > end:
            total += answered - max(sent, end)
            end = answered
    return total


def rss_peak_kib(pid):
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", text).group(1))


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


class Harness:
    def __init__(self, env, warm):
        self.env = env
        self.warm = warm

    async def start(self):
        self.proxy = CountingProxy()
        await self.proxy.start()

    def command(self, name):
        if name == "python-boto3":
            return [sys.executable, "-m", "awslambdaric", "handler.handler"], ROOT / "perf" / "python"
        return [str(RELEASE / name)], ROOT

    async def fresh_runtime(self):
        """A Runtime API of its own for each process: a killed process's open request for
        the next event must not take the next process's event."""
        if getattr(self, "runtime", None) is not None:
            self.runtime.server.close()
        self.runtime = RuntimeApi()
        await self.runtime.start()

    def environment(self, name):
        # As on Lambda: no instance-metadata switch, no home directory (no profile files).
        env = {k: v for k, v in self.env.items() if k != "AWS_EC2_METADATA_DISABLED"}
        env.update({
            "PATH": os.environ["PATH"],
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.proxy.port}",
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.runtime.port}",
            "AWS_DEFAULT_REGION": self.env["AWS_REGION"],  # set on Lambda too; boto3 reads it
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "AWS_LAMBDA_LOG_LEVEL": "INFO",
            "LAMBDA_TASK_ROOT": str(ROOT / "perf" / "python"),
        })
        return env

    async def run(self, name, event, expect, warm=0):
        """One process: its cold start, then `warm` warm invocations. Returns the measures."""
        argv, cwd = self.command(name)
        await self.fresh_runtime()
        LOGS.mkdir(parents=True, exist_ok=True)
        log = open(LOGS / f"{name}.log", "ab")
        self.proxy.calls.clear()
        answer = self.runtime.invoke(event)
        self.runtime.first_next = None
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, env=self.environment(name), stdout=log, stderr=log,
                                   start_new_session=True)
        try:
            answered, kind, body = await asyncio.wait_for(answer, 30)
            check(name, kind, body, expect)
            cold_calls = list(self.proxy.calls)
            measures = {"cold_ms": (answered - started) * 1000, "init_ms": (self.runtime.first_next - started) * 1000,
                        "calls": cold_calls, "body": body}
            latencies = []
            for _ in range(warm):
                self.proxy.calls.clear()
                sent = time.perf_counter()
                answered, kind, body = await asyncio.wait_for(self.runtime.invoke(event), 30)
                check(name, kind, body, expect)
                latencies.append((answered - sent) * 1000)
            if warm:
                measures["warm_calls"] = list(self.proxy.calls)
                measures["warm_ms"] = latencies
                measures["rss_kib"] = rss_peak_kib(process.pid)
            return measures
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            log.close()


    async def endpoints(self, name, cases):
        """One warm process: a warm-up request, then each case once; the calls of each."""
        argv, cwd = self.command(name)
        await self.fresh_runtime()
        log = open(LOGS / f"{name}.log", "ab")
        process = subprocess.Popen(argv, cwd=cwd, env=self.environment(name), stdout=log, stderr=log,
                                   start_new_session=True)
        rows = []
        try:
            await asyncio.wait_for(self.runtime.invoke(cases[0][2]), 30)
            for _, label, event, expect in cases:
                self.proxy.calls.clear()
                _, kind, body = await asyncio.wait_for(self.runtime.invoke(event), 30)
                check(f"{name} {label}", kind, body, expect)
                calls = list(self.proxy.calls)
                rows.append({"function": name, "endpoint": label, "sequential": depth(calls),
                             "calls": [c[0] for c in sorted(calls, key=lambda c: c[1])],
                             "rounds": rounds(calls)})
            return rows
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            log.close()


def rounds(calls):
    """The calls grouped into rounds: a call joins the open round if it was sent before any
    call of that round answered."""
    groups = []
    for op, sent, answered in sorted(calls, key=lambda c: c[1]):
        if groups and sent < groups[-1]["first_answer"]:
            groups[-1]["ops"].append(op)
            groups[-1]["first_answer"] = min(groups[-1]["first_answer"], answered)
        else:
            groups.append({"ops": [op], "first_answer": answered})
    return [sorted(g["ops"]) for g in groups]


def check(name, kind, body, expect):
    if kind != "response":
        raise SystemExit(f"{name}: {kind}: {body[:500]!r}")
    if expect is not None:
        status = json.loads(body).get("statusCode")
        if status != expect:
            raise SystemExit(f"{name}: answered {status}, expected {expect}: {body[:500]!r} (see {LOGS})")


def sizes(name):
    binary = RELEASE / name
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, binary.read_bytes())
    return binary.stat().st_size, len(buffer.getvalue())


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("env_file")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warm", type=int, default=1000)
    parser.add_argument("--out", default=str(ROOT / ".local" / "perf.json"))
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    harness = Harness(read_env(args.env_file), args.warm)
    await harness.start()

    functions = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "Cargo.toml").exists())
    if args.only:
        functions = [f for f in functions if f in args.only.split(",")]
    # A session for the secured requests, from the sessions function itself.
    login = await harness.run("sessions", http_event("POST", "/v1/sessions", body=LOGIN), 201)
    token = json.loads(json.loads(login["body"])["body"])["token"]
    requests = events(token)

    # The runs of all subjects interleave, so that drift in the machine's speed is shared.
    subjects = ["hello-world", "python-boto3"] + functions
    cold = {s: [] for s in subjects}
    init = {s: [] for s in subjects}
    first = {}
    for i in range(args.runs):
        for subject in subjects:
            event, expect = requests[subject]
            measures = await harness.run(subject, event, expect)
            cold[subject].append(measures["cold_ms"])
            init[subject].append(measures["init_ms"])
            first.setdefault(subject, []).append(
                (measures["cold_ms"], busy(measures["calls"]) * 1000, measures["calls"]))
        print(f"round {i + 1}/{args.runs} done", file=sys.stderr)

    results = {}
    # Writers last: the thousand messages would otherwise lengthen the customer's request list.
    for subject in sorted(subjects, key=lambda s: s == "messages"):
        event, expect = requests[subject]
        warm = await harness.run(subject, event, expect, warm=args.warm)
        calls = warm["calls"]
        emulator_ms = statistics.median(b for _, b, _ in first[subject])
        results[subject] = {
            "cold_ms": statistics.median(cold[subject]),
            "cold_runs_ms": [round(v, 2) for v in cold[subject]],
            "init_ms": statistics.median(init[subject]),
            "cold_in_emulator_ms": emulator_ms,
            "calls": [c[0] for c in sorted(calls, key=lambda c: c[1])],
            "sequential": depth(calls),
            "warm_calls": [c[0] for c in sorted(warm["warm_calls"], key=lambda c: c[1])],
            "warm_sequential": depth(warm["warm_calls"]),
            "rss_mib": warm["rss_kib"] / 1024,
            "warm_p50_ms": percentile(warm["warm_ms"], 50),
            "warm_p99_ms": percentile(warm["warm_ms"], 99),
        }
        if subject != "python-boto3":
            size, zipped = sizes(subject)
            results[subject].update({"binary_bytes": size, "zip_bytes": zipped})
        print(f"{subject}: {json.dumps(results[subject])}", file=sys.stderr)

    results = {s: results[s] for s in subjects}
    hello = results["hello-world"]["cold_ms"]
    python = results["python-boto3"]["cold_ms"]
    for subject, r in results.items():
        r["vs_hello"] = r["cold_ms"] / hello
        r["python_vs"] = python / r["cold_ms"]
    rows = []
    cases = endpoint_cases(token)
    for name in dict.fromkeys(f for f, *_ in cases):
        if name in functions:
            rows += await harness.endpoints(name, [c for c in cases if c[0] == name])
    reference = {}
    if (RELEASE / "sdk-getitem").exists():
        size, zipped = sizes("sdk-getitem")
        reference = {"binary_bytes": size, "zip_bytes": zipped}
    Path(args.out).write_text(json.dumps({"functions": results, "endpoints": rows, "sdk_getitem": reference},
                                         indent=2))
    print_table(results)
    if reference:
        print(f"\nSize reference sdk-getitem (SDK configuration, one DynamoDB client, one GetItem): "
              f"binary {reference['binary_bytes'] / 2**20:.2f} MiB, zip {reference['zip_bytes'] / 2**20:.2f} MiB")
    print()
    print("| endpoint | rounds of AWS calls (calls in one round run concurrently) | sequential |")
    print("|---|---|---|")
    for row in rows:
        shown = " → ".join(" + ".join(r) for r in row["rounds"]) or "none"
        print(f"| `{row['endpoint']}` | {shown} | {row['sequential']} |")


def print_table(results):
    print("| function | cold start ms (median) | of it init | of it in the emulator | × hello-world | Python ÷ this "
          "| binary MiB | zip MiB | peak RSS MiB | warm p50 / p99 ms | AWS calls (warm request) | sequential |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for subject, r in results.items():
        binary = f"{r['binary_bytes'] / 2**20:.2f}" if "binary_bytes" in r else "–"
        zipped = f"{r['zip_bytes'] / 2**20:.2f}" if "zip_bytes" in r else "–"
        calls = " + ".join(r["warm_calls"]) or "none"
        print(f"| {subject} | {r['cold_ms']:.1f} | {r['init_ms']:.1f} | {r['cold_in_emulator_ms']:.1f} | {r['vs_hello']:.1f} "
              f"| {r['python_vs']:.0f} | {binary} | {zipped} | {r['rss_mib']:.1f} "
              f"| {r['warm_p50_ms']:.2f} / {r['warm_p99_ms']:.2f} | {calls} | {r['warm_sequential']} |")


if __name__ == "__main__":
    asyncio.run(main())
