"""Creates the SAM template's tables and queues on the local AWS emulator and writes the
environment the functions read, resolved from the template itself (no second list).

    stack.py deploy STACK_NAME ENV_FILE   create the stack unless it exists, write ENV_FILE

The emulator is the one on 127.0.0.1:4566 unless PORTAL_EMULATOR_URL names another.
"""

import os
import sys
import time
from pathlib import Path

import boto3
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
ENDPOINT = os.environ.get("PORTAL_EMULATOR_URL", "http://127.0.0.1:4566")
REGION = "eu-central-1"
ACCOUNT = "123456789012"  # the emulator's default account
LOCAL_ENV = {
    "AWS_ENDPOINT_URL": ENDPOINT,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def client(service):
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def deploy(stack_name):
    cfn = client("cloudformation")
    existing = [s for s in cfn.list_stacks()["StackSummaries"] if s["StackName"] == stack_name]
    if any(s["StackStatus"] == "CREATE_COMPLETE" for s in existing):
        return  # already there (an emulator that was left running); tables are retained
    cfn.create_stack(StackName=stack_name, TemplateBody=TEMPLATE.read_text())
    for _ in range(100):
        status = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"]
        if status.endswith("_COMPLETE") or status.endswith("_FAILED"):
            break
        time.sleep(0.1)
    if status != "CREATE_COMPLETE":
        sys.exit(f"stack {stack_name}: {status}")


def substitute(value, stack_name):
    """Fn::Sub with the pseudo parameters the template's resource names use."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        for k, v in {"AWS::StackName": stack_name, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}.items():
            text = text.replace("${" + k + "}", v)
        if "${" in text:
            raise SystemExit(f"cannot resolve {value!r} locally")
        return text
    return value


def resolve(value, template, stack_name):
    """Resolves the intrinsic functions the template's environment uses: a parameter's
    default, a table's name, a queue's (local) URL. The emulator's stack-resource
    listing is not complete for SAM templates, so names come from the template."""
    if isinstance(value, dict) and "Ref" in value:
        name = value["Ref"]
        if name == "AWS::StackName":
            return stack_name
        if name in template.get("Parameters", {}):
            return str(template["Parameters"][name]["Default"])
        resource = template["Resources"][name]
        props = resource["Properties"]
        if resource["Type"] == "AWS::DynamoDB::Table":
            table = substitute(props["TableName"], stack_name)
            client("dynamodb").describe_table(TableName=table)
            return table
        if resource["Type"] == "AWS::S3::Bucket":
            bucket = substitute(props["BucketName"], stack_name)
            client("s3").head_bucket(Bucket=bucket)
            return bucket
        if resource["Type"] == "AWS::SQS::Queue":
            queue = substitute(props["QueueName"], stack_name)
            return client("sqs").get_queue_url(QueueName=queue)["QueueUrl"]
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, dict) and "Ref" in value:
        raise SystemExit(f"cannot resolve {value!r} locally")
    raise SystemExit(f"cannot resolve {value!r} locally")


def main():
    if len(sys.argv) != 4 or sys.argv[1] != "deploy":
        sys.exit(__doc__)
    stack_name, env_file = sys.argv[2], Path(sys.argv[3])
    template, matches = decode(str(TEMPLATE))
    if matches:
        sys.exit(f"template does not parse: {matches}")
    deploy(stack_name)
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    env = {k: resolve(v, template, stack_name) for k, v in variables.items()}
    # The emulator sends mail only from a created identity (on AWS: a verified one).
    ses = client("sesv2")
    if env["MAIL_FROM"] not in [i["IdentityName"] for i in ses.list_email_identities()["EmailIdentities"]]:
        ses.create_email_identity(EmailIdentity=env["MAIL_FROM"])
    env.update(LOCAL_ENV)
    env["PORTAL_STACK_NAME"] = stack_name
    env_file.parent.mkdir(parents=True, exist_ok=True)
    # Read by bash, cargo lambda and the tests: a value with spaces is double-quoted.
    quoted = {k: f'"{v}"' if any(c.isspace() for c in str(v)) else v for k, v in env.items()}
    env_file.write_text("".join(f"{k}={v}\n" for k, v in sorted(quoted.items())))
    kinds = [r["Type"] for r in template["Resources"].values()]
    print(f"stack {stack_name}: {kinds.count('AWS::DynamoDB::Table')} tables, "
          f"{kinds.count('AWS::SQS::Queue')} queues -> {env_file}")


if __name__ == "__main__":
    main()
