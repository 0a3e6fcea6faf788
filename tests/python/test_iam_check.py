"""The IAM check itself (scripts/iam_check.py): its matching rules, and that it catches a
grant missing from the template, on recorded calls shaped as the emulator records them."""

import copy
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import iam_check  # noqa: E402

REGION = "eu-central-1"
STACK = "evi-portal-test"
ACCOUNT = iam_check.DEFAULT_ACCOUNT


@pytest.fixture(scope="module")
def template():
    return iam_check.load_template()


def names(template):
    return iam_check.Template(template, REGION, STACK)


def call(function, service, method="POST", url="http://127.0.0.1:4566/", target=None, body=None, account=None):
    headers = {
        "Authorization": f"AWS4-HMAC-SHA256 Credential=test/20261204/{REGION}/{service}/aws4_request, "
        "SignedHeaders=host, Signature=0",
    }
    if function:
        headers["User-Agent"] = f"aws-sdk-rust/1.3 os/linux lang/rust/1.95 app/{function}"
    if target:
        headers["X-Amz-Target"] = target
    if account:
        headers["x-moto-account-id"] = account
    return {"headers": headers, "method": method, "url": url, "body": json.dumps(body or {}), "body_encoded": False}


def dynamo(function, op, body, account=None):
    return call(function, "dynamodb", target=f"DynamoDB_20120810.{op}", body=body, account=account)


def s3(function, method, bucket, key=""):
    return call(function, "s3", method=method, url=f"http://127.0.0.1:4566/{bucket}/{key}")


def violations(template, entries):
    return dict(iam_check.check(template, entries, REGION, STACK)[0])


def without(template, function_logical_id, sid=None, resource_logical_id=None):
    """The template with one statement (by Sid) or one table (by logical id) taken out of
    one function's policy: the shape of a missing grant."""
    t = copy.deepcopy(template)
    props = t["Resources"][function_logical_id]["Properties"]
    for policy in props["Policies"]:
        kept = []
        for s in policy["Statement"]:
            if sid and s.get("Sid") == sid:
                continue
            if resource_logical_id:
                resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
                s["Resource"] = [r for r in resources if resource_logical_id not in json.dumps(r)]
                if not s["Resource"]:
                    continue
            kept.append(s)
        policy["Statement"] = kept
    return t


def test_an_installment_change_reads_the_contract_account(template):
    """The installment change reads the plan's contract account: granted, and caught when
    the grant is missing (as it once was)."""
    table = names(template).ref("ContractAccountsTable", ACCOUNT)
    entries = [dynamo("installments", "GetItem", {"TableName": table, "Key": {}})]
    assert violations(template, entries) == {}
    missing = without(template, "InstallmentsFunction", resource_logical_id="ContractAccountsTable")
    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
    assert violations(missing, entries) == {("installments", "dynamodb:GetItem", arn): 1}


def test_reading_a_missing_document_needs_list_bucket(template):
    """Without s3:ListBucket, S3 answers a missing key with 403, not 404: a login with two
    customer numbers looks its document up under each of them."""
    bucket = names(template).ref("DocumentsBucket", ACCOUNT)
    put = s3("sync", "PUT", bucket, "documents/1000002/D-1.pdf")
    found = s3("documents", "GET", bucket, "documents/1000002/D-1.pdf")
    missing = s3("documents", "GET", bucket, "documents/1000003/D-1.pdf")
    assert violations(template, [put, found, missing]) == {}
    no_list = without(template, "DocumentsFunction", sid="FindFiles")
    assert violations(no_list, [put, found]) == {}, "an existing key needs no ListBucket"
    assert violations(no_list, [put, missing]) == {("documents", "s3:ListBucket", f"arn:aws:s3:::{bucket}"): 1}


def test_an_index_is_its_own_resource(template):
    table = names(template).ref("SessionsTable", ACCOUNT)
    query = {"TableName": table, "IndexName": "by-login"}
    assert violations(template, [dynamo("account", "Query", query)]) == {}
    # The catalog may read products and code lists, nothing else.
    got = violations(template, [dynamo("catalog", "Query", query)])
    assert list(got) == [("catalog", "dynamodb:Query", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/index/by-login")]


def test_a_transaction_is_authorized_item_by_item(template):
    t = names(template)
    outbox, records = t.ref("OutboxTable", ACCOUNT), t.ref("MeterReadingSubmissionsTable", ACCOUNT)
    logins = t.ref("PortalLoginsTable", ACCOUNT)
    items = [{"Put": {"TableName": records}}, {"Put": {"TableName": outbox}}, {"Delete": {"TableName": logins}}]
    got = violations(template, [dynamo("meter-readings", "TransactWriteItems", {"TransactItems": items})])
    assert got == {("meter-readings", "dynamodb:DeleteItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{logins}"): 1}


def test_each_account_resolves_its_own_arns(template):
    """Tests run in emulator accounts of their own: ARNs carry the call's account."""
    table = names(template).ref("ProductsTable", "210987654321")
    assert violations(template, [dynamo("catalog", "Scan", {"TableName": table}, account="210987654321")]) == {}


def test_matching_follows_iam():
    grant = iam_check.Grant("s", "Allow", ["DynamoDB:Get*"], ["arn:aws:dynamodb:r:1:table/t?"])
    assert grant.matches("dynamodb:GetItem", "arn:aws:dynamodb:r:1:table/t1")
    assert not grant.matches("dynamodb:PutItem", "arn:aws:dynamodb:r:1:table/t1")
    assert not grant.matches("dynamodb:GetItem", "arn:aws:dynamodb:r:1:table/T1"), "resources are case-sensitive"
    assert not grant.matches("dynamodb:GetItem", "arn:aws:dynamodb:r:1:table/t1/index/i")
    deny = iam_check.Grant("d", "Deny", ["*"], ["*"])
    assert iam_check.decide([grant, deny], "dynamodb:GetItem", "arn:aws:dynamodb:r:1:table/t1")[0] is False
    conditional = iam_check.Grant("c", "Allow", ["*"], ["*"], {"NumericLessThan": {"aws:x": "1"}})
    assert iam_check.decide([conditional], "dynamodb:GetItem", "x")[0] is False, "an operator not evaluated"
    sender = iam_check.Grant("m", "Allow", ["ses:SendEmail"], ["*"], {"StringEquals": {"ses:FromAddress": "a@b.de"}})
    assert iam_check.decide([sender], "ses:SendEmail", "x", {"ses:fromaddress": "a@b.de"})[0] is True
    assert iam_check.decide([sender], "ses:SendEmail", "x", {"ses:fromaddress": "x@b.de"})[0] is False
    assert iam_check.decide([sender], "ses:SendEmail", "x")[0] is False, "a key the call lacks"
    unresolved = iam_check.Grant("u", "Allow", ["*"], [iam_check.Unresolved("X.Arn")])
    assert iam_check.decide([unresolved], "dynamodb:GetItem", "x")[0] is False


def test_harness_calls_are_not_checked_and_unknown_functions_are(template):
    table = names(template).ref("ProductsTable", ACCOUNT)
    _, _, _, checked, skipped, _ = iam_check.check(template, [dynamo(None, "DeleteTable", {"TableName": table})], REGION, STACK)
    assert (checked, skipped) == (0, 1)
    got = violations(template, [dynamo("no-such-function", "Scan", {"TableName": table})])
    assert list(got)[0][0] == "no-such-function"


def test_the_sync_polls_its_queue_with_the_grants_sam_adds(template):
    queue = names(template).ref("InboundQueue", ACCOUNT)
    receive = call("sync", "sqs", target="AmazonSQS.ReceiveMessage", body={"QueueUrl": queue})
    assert violations(template, [receive]) == {}
    requests = names(template).ref("RequestsQueue", ACCOUNT)
    other = call("sync", "sqs", target="AmazonSQS.ReceiveMessage", body={"QueueUrl": requests})
    assert len(violations(template, [other])) == 1


def test_unused_grants_are_listed(template):
    t = names(template)
    products, code_lists = t.arn("ProductsTable", ACCOUNT), t.arn("CodeListsTable", ACCOUNT)
    scan = dynamo("catalog", "Scan", {"TableName": t.ref("ProductsTable", ACCOUNT)})
    _, used, functions, _, _, resolved = iam_check.check(template, [scan], REGION, STACK)
    unused = {(u[2], u[3]) for u in iam_check.unused_grants(functions, used, resolved) if u[0] == "catalog"}
    assert ("dynamodb:Scan", products) not in unused, "the grant the call used"
    assert any(resource == code_lists for _, resource in unused), "the code-list grant no call used"


def test_mail_goes_out_only_from_the_portal_sender(template):
    mail_from = names(template).parameters["MailFrom"]
    def send(sender):
        return call("password-resets", "ses", url="http://127.0.0.1:4566/v2/email/outbound-emails",
                    body={"FromEmailAddress": sender, "Destination": {"ToAddresses": ["x@example.org"]}})
    assert violations(template, [send(mail_from)]) == {}
    assert violations(template, [send(f"Portal <{mail_from}>")]) == {}
    assert len(violations(template, [send("ceo@example.org")])) == 1
    assert len(violations(template, [call("catalog", "ses", url="http://127.0.0.1:4566/v2/email/outbound-emails",
                                          body={"FromEmailAddress": mail_from})])) == 1
