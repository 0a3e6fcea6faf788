"""The cold-start comparison of `scripts/perf`: the handler most teams would write in
Python 3 with boto3 for `GET /v1/products` — the same DynamoDB Scan as the catalog function,
with the client built at import time (outside the handler), as AWS recommends."""

import json
import os

import boto3

dynamodb = boto3.client("dynamodb")
TABLE = os.environ["TABLE_PRODUCTS"]


def handler(event, context):
    items = dynamodb.scan(TableName=TABLE)["Items"]
    products = [{k: next(iter(v.values())) for k, v in item.items()} for item in items]
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"products": products}, default=str),
    }
