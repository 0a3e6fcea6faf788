"""The template's operational parts: every alarm notifies someone and has its runbook section
in docs/operations.md, every function has its own log group with the retention parameter, and
the platform's START/REPORT lines are kept."""

import json
import re
from pathlib import Path

import pytest
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
ALARM_TOPIC = {"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}


@pytest.fixture(scope="module")
def template():
    parsed, matches = decode(str(ROOT / "infra" / "template.yaml"))
    assert not matches, matches
    return parsed


def of_type(template, kind):
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def test_every_alarm_notifies_the_alarm_topic_when_it_fires_and_clears(template):
    alarms = of_type(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 40, sorted(alarms)
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert props.get("AlarmActions") == [ALARM_TOPIC], name
        assert props.get("OKActions") == [ALARM_TOPIC], name
        assert "docs/operations.md" in props.get("AlarmDescription", ""), name
        assert props.get("TreatMissingData") in ("notBreaching", "breaching"), name


def test_the_topic_is_created_unless_one_is_given_and_may_have_an_email_subscriber(template):
    resources = template["Resources"]
    assert resources["AlarmTopic"]["Condition"] == "CreateAlarmTopic"
    assert template["Conditions"]["CreateAlarmTopic"] == {"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}
    subscription = resources["AlarmEmailSubscription"]
    assert subscription["Condition"] == "SubscribeAlarmEmail"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


def test_the_issue_s_alarm_list_is_covered(template):
    alarms = of_type(template, "AWS::CloudWatch::Alarm")
    functions = of_type(template, "AWS::Serverless::Function")
    watched = {}
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        metrics = [props.get("MetricName")] + [
            m.get("MetricStat", {}).get("Metric", {}).get("MetricName") for m in props.get("Metrics", [])
        ]
        for metric in filter(None, metrics):
            watched.setdefault(metric, []).append(name)
    for logical in functions:
        base = logical.removesuffix("Function")
        assert f"{base}ErrorsAlarm" in alarms and f"{base}ThrottlesAlarm" in alarms, logical
    for metric in ["5xx", "Latency", "ApproximateAgeOfOldestMessage", "ApproximateNumberOfMessagesVisible",
                   "OutboxOldestPendingAgeSeconds", "RelaySendFailed", "SyncFailed", "MailsFailed",
                   "Reputation.BounceRate", "Reputation.ComplaintRate"]:
        assert metric in watched, metric
    assert len(watched["ApproximateAgeOfOldestMessage"]) == 2, "requests and inbound queue"
    assert len(watched["ApproximateNumberOfMessagesVisible"]) == 3, "the requests, inbound and password-reset dead-letter queues"
    # Every threshold but the dead-letter queues' "any message" is a parameter.
    for name, alarm in alarms.items():
        threshold = alarm["Properties"]["Threshold"]
        assert isinstance(threshold, dict) and "Ref" in threshold or name.endswith("DeadLetterAlarm"), name


def test_every_function_logs_to_its_own_group_with_the_retention_parameter(template):
    resources = template["Resources"]
    functions = of_type(template, "AWS::Serverless::Function")
    assert len(functions) == 17
    for logical, function in functions.items():
        props = function["Properties"]
        group_ref = props["LoggingConfig"]["LogGroup"]["Ref"]
        group = resources[group_ref]
        assert group["Type"] == "AWS::Logs::LogGroup", logical
        binary = function["Metadata"]["BuildProperties"]["Binary"]
        assert props["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-" + binary}, logical
        assert group["Properties"]["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${AWS::StackName}-" + binary}
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, logical
    assert resources["ApiAccessLogs"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert template["Parameters"]["LogRetentionDays"]["Default"] == 30


def test_platform_report_lines_are_kept_and_the_access_log_has_both_request_ids(template):
    logging = template["Globals"]["Function"]["LoggingConfig"]
    # START/REPORT are INFO-level platform events under the JSON log format: WARN drops them.
    assert (logging["LogFormat"], logging["SystemLogLevel"]) == ("JSON", "INFO")
    access = template["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"]["Format"]
    assert "$context.requestId" in access and "$context.integration.requestId" in access
    assert "$context.routeKey" in access and "$context.path" not in access


def test_every_alarm_has_its_section_in_the_runbook(template):
    alarms = set(of_type(template, "AWS::CloudWatch::Alarm"))
    doc = (ROOT / "docs" / "operations.md").read_text()
    headings = [line for line in doc.splitlines() if line.startswith("#")]
    documented = {name for line in headings for name in re.findall(r"`(\w+Alarm)`", line)}
    assert sorted(alarms - documented) == [], "alarms without a runbook section"
    assert sorted(documented - alarms) == [], "runbook sections of alarms the template does not have"


def test_the_dashboard_is_valid_json_and_shows_the_functions_metrics(template):
    body = template["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    dashboard = json.loads(re.sub(r"\$\{[^}]+\}", "X", body))
    assert len(dashboard["widgets"]) >= 8
    for metric in ["RequestsCommitted", "Refusals", "ServerErrors", "LimitsHit", "OutboxPending",
                   "OutboxOldestPendingAgeSeconds", "RelaySent", "RelaySendFailed", "MailsSent", "MailsFailed",
                   "EntityType"]:
        assert metric in body, metric
