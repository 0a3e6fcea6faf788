"""What the local stack did, readable: see scripts/peek.

Messages come from the outbox table, which holds every message of a committed request
with its status (SENT, or PENDING for the relay). Receiving from the FIFO queue instead
would count as a receive: five peeks would move a message to the dead-letter queue.
Mails come from the emulator's state (`/moto-api/data.json`, `ses.Message`).
"""

import argparse
import html
import json
import re
import sys
import urllib.request
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent


def read_env(path):
    if not path.exists():
        sys.exit(f"{path} is missing: start the stack with scripts/dev first")
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def client(env, service):
    return boto3.client(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env.get("AWS_REGION", "eu-central-1"),
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", "test"),
    )


def short(text, width):
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def messages(env, count):
    table = env["TABLE_OUTBOX"]
    items = []
    pages = client(env, "dynamodb").get_paginator("scan").paginate(TableName=table)
    for page in pages:
        items.extend(page["Items"])
    field = lambda item, name: item.get(name, {}).get("S", "")  # noqa: E731
    items.sort(key=lambda i: field(i, "createdAt"), reverse=True)
    print(f"Latest messages for the requests queue ({len(items)} in the outbox {table}, newest first)")
    if not items:
        print("  none yet: a committed request writes one")
    for item in items[:count]:
        try:
            body = json.loads(field(item, "body"))
        except ValueError:
            body = {}
        print(f"  {field(item, 'createdAt')}  {field(item, 'status'):<7}  {body.get('eventType', '?'):<40} "
              f"customer {body.get('customerNumber') or '-':<10} request {field(item, 'requestId')}")
        print(f"      payload {short(json.dumps(body.get('payload', {}), ensure_ascii=False), 150)}")


def queues(env):
    sqs = client(env, "sqs")
    print("Queues (approximate counts: visible / in flight)")
    for name in ["REQUESTS_QUEUE_URL", "REQUESTS_DLQ_URL", "INBOUND_QUEUE_URL", "INBOUND_DLQ_URL"]:
        url = env.get(name)
        if not url:
            continue
        try:
            a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        except Exception as e:  # noqa: BLE001 - a missing queue is reported, not fatal
            print(f"  {url.rsplit('/', 1)[-1]:<45} ? ({e.__class__.__name__})")
            continue
        print(f"  {url.rsplit('/', 1)[-1]:<45} {a.get('ApproximateNumberOfMessages', '?')} / "
              f"{a.get('ApproximateNumberOfMessagesNotVisible', '?')}")


def text_of(body):
    body = re.sub(r"<(br|p|/p|div|/div)[^>]*>", "\n", body or "")
    return html.unescape(re.sub(r"<[^>]+>", "", body))


def mails(env, count):
    url = env["AWS_ENDPOINT_URL"].rstrip("/") + "/moto-api/data.json"
    data = {}
    for _ in range(5):  # the dump can fail while other requests change the state
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                data = json.load(response)
            break
        except (OSError, ValueError):
            continue
    sent = data.get("ses", {}).get("Message", [])
    sent = sent if isinstance(sent, list) else [m for v in sent.values() for m in (v if isinstance(v, list) else [v])]
    sender = env.get("MAIL_FROM")
    ours = [m for m in sent if not sender or m.get("source") == sender] or sent
    print(f"Latest mails sent ({len(ours)} from {sender or 'any sender'}, newest first)")
    if not ours:
        print("  none yet: registration and password reset send one")
    for m in list(reversed(ours))[:count]:
        to = ", ".join(m.get("destinations", {}).get("ToAddresses", [])
                       if isinstance(m.get("destinations"), dict) else m.get("destinations") or [])
        print(f"  to {to}: {m.get('subject', '')}")
        for line in text_of(m.get("body")).strip().splitlines()[:12]:
            print(f"      {line}")


def main():
    parser = argparse.ArgumentParser(description="What the local stack did: messages, queues, mails.")
    parser.add_argument("--env", default=str(ROOT / ".local" / "stack.env"), help="the stack's environment file")
    parser.add_argument("-n", type=int, default=5, help="how many messages and mails (default 5)")
    args = parser.parse_args()
    env = read_env(Path(args.env))
    messages(env, args.n)
    print()
    queues(env)
    print()
    mails(env, args.n)


if __name__ == "__main__":
    main()
