"""template.yaml is the source of truth: it parses, its handlers exist, its policies are
least-privilege, and the local stack's resources are exactly what it declares."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from typing import Any

from infra.local.template import REPO_ROOT, Template
from tests.integration.conftest import Deployed

TEMPLATE = Template.load()


def test_every_function_handler_exists() -> None:
    functions = TEMPLATE.functions()
    assert set(functions) == {
        "WebhookReceiverFunction",
        "EventProcessorFunction",
        "PublicApiFunction",
        "CarrierPollerFunction",
        "SilenceCheckerFunction",
        "MerchantApiFunction",
        "AuthorizerFunction",
    }
    for spec in functions.values():
        assert spec.runtime == "python3.12"
        tree = ast.parse(spec.module_path.read_text())
        defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert spec.handler_attr in defined, f"{spec.logical_id}: {spec.handler} is not defined"


def test_the_webhook_receiver_imports_only_the_standard_library_and_botocore() -> None:
    # Given a fresh interpreter, as a Lambda cold start
    probe = (
        "import sys, runpy; runpy.run_path(sys.argv[1]);print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    path = TEMPLATE.functions()["WebhookReceiverFunction"].module_path
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=True, cwd=REPO_ROOT
        ).stdout.split()
    )
    # Then nothing heavier than botocore was imported
    assert loaded.isdisjoint({"pydantic", "pydantic_core", "aws_lambda_powertools", "boto3", "s3transfer"})
    assert "botocore" in loaded


def describe(resource: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: resource[key] for key in keys if key in resource}


def test_local_tables_match_the_template(deployed: Deployed) -> None:
    declared = TEMPLATE.properties("ShipmentsTable")
    table = deployed.client("dynamodb").describe_table(TableName=deployed.stack.ref("ShipmentsTable"))["Table"]
    assert table["KeySchema"] == declared["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(declared["AttributeDefinitions"], key=str)
    assert table["BillingModeSummary"]["BillingMode"] == declared["BillingMode"] == "PAY_PER_REQUEST"
    assert table["StreamSpecification"]["StreamViewType"] == declared["StreamSpecification"]["StreamViewType"]
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    for index in declared["GlobalSecondaryIndexes"]:
        local = indexes[index["IndexName"]]
        assert local["KeySchema"] == index["KeySchema"]
        assert local["Projection"]["ProjectionType"] == index["Projection"]["ProjectionType"]
        assert sorted(local["Projection"].get("NonKeyAttributes", [])) == sorted(
            index["Projection"].get("NonKeyAttributes", [])
        )


def test_public_token_index_projects_no_private_attribute() -> None:
    indexes = {i["IndexName"]: i for i in TEMPLATE.properties("ShipmentsTable")["GlobalSecondaryIndexes"]}
    projected = set(indexes["ByToken"]["Projection"]["NonKeyAttributes"])
    assert projected.isdisjoint(
        {"order_id", "customer", "email", "phone", "address", "origin", "destination", "source", "raw_code", "version"}
    )


def test_ingest_queue_retries_then_dead_letters(deployed: Deployed) -> None:
    sqs = deployed.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=deployed.stack.ref("IngestQueue"), AttributeNames=["All"])[
        "Attributes"
    ]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == deployed.stack.att("IngestDeadLetterQueue", "Arn")
    assert int(redrive["maxReceiveCount"]) == 5
    processor = TEMPLATE.functions()["EventProcessorFunction"]
    assert int(attributes["VisibilityTimeout"]) >= 6 * processor.timeout
    (source,) = TEMPLATE.queue_sources()
    assert source.report_batch_item_failures
    assert source.function == "EventProcessorFunction"


def test_archive_bucket_is_encrypted_private_and_tiered(deployed: Deployed) -> None:
    s3 = deployed.client("s3")
    bucket = deployed.stack.ref("RawArchiveBucket")
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    classes = [t["StorageClass"] for r in lifecycle for t in r.get("Transitions", [])]
    assert classes == ["STANDARD_IA", "GLACIER_IR"]


def statements(policies: list[Any]) -> list[dict[str, Any]]:
    found = []
    for policy in policies:
        if isinstance(policy, dict) and "Statement" in policy:
            found.extend(policy["Statement"])
    return found


def test_policies_are_least_privilege() -> None:
    for name, spec in TEMPLATE.functions().items():
        for statement in statements(spec.policies):
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert "*" not in resources, f"{name}: {statement}"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not any(action.endswith(":*") or action == "dynamodb:Scan" for action in actions), (
                f"{name}: {actions}"
            )
    public = statements(TEMPLATE.functions()["PublicApiFunction"].policies)
    assert [s["Action"] for s in public] == ["dynamodb:Query"]
    assert public[0]["Resource"] == {"Fn::Sub": "${ShipmentsTable.Arn}/index/ByToken"}


def test_no_secret_travels_in_an_environment_variable(deployed: Deployed) -> None:
    for function in deployed.stack.functions.values():
        for key, value in function.environment.items():
            assert "secret" not in value.lower() or key.endswith("_ARN"), (key, value)


def test_local_stack_reports_what_it_does_not_emulate(deployed: Deployed) -> None:
    created_types = set(deployed.stack.created.values())
    assert {
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::S3::Bucket",
        "AWS::Events::EventBus",
        "AWS::SecretsManager::Secret",
        "AWS::Serverless::Function",
    } <= created_types
    every = {lid for lid, r in TEMPLATE.resources.items() if TEMPLATE.condition_holds(r)}
    reported = set(deployed.stack.created) | {lid.split(" ")[0] for lid in deployed.stack.not_emulated}
    assert every == reported
