"""Creating the template's resources in moto: the local twin of ``sam deploy``.

Every table, queue, bucket, bus, archive, secret and topic is created from its own
``Properties`` in ``template.yaml`` (key schemas, indexes, redrive policies, lifecycle
rules…), in dependency order, and every function's environment is resolved from the
template's ``!Ref``/``!GetAtt``/``!Sub`` against what was created. Resource types moto
cannot run (alarms, e-mail subscriptions) are listed as not emulated, never silently
dropped.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

import boto3

from infra.local.template import ACCOUNT_ID, REGION, FunctionSpec, Resolver, Template, TemplateError, references

DEFAULT_STACK = "shiplight-local"


def aws_client(service: str, endpoint_url: str | None = None) -> Any:
    """A boto3 client for the local stack (``endpoint_url=None`` inside ``moto.mock_aws``)."""
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's fixed dummy credentials
    )


@dataclass
class DeployedFunction:
    spec: FunctionSpec
    name: str
    environment: dict[str, str]


@dataclass
class LocalStack:
    """What the local deployment created, and how the template names it."""

    template: Template
    stack_name: str
    resolver: Resolver
    created: dict[str, str] = field(default_factory=dict)  # logical id -> type
    not_emulated: dict[str, str] = field(default_factory=dict)  # logical id -> why
    functions: dict[str, DeployedFunction] = field(default_factory=dict)

    def ref(self, logical_id: str) -> Any:
        return self.resolver.ref(logical_id)

    def att(self, logical_id: str, attribute: str) -> Any:
        return self.resolver.get_att(logical_id, attribute)

    def serve_http_apis_at(self, base_url: str) -> None:
        """Say where the local gateway answers the template's HTTP APIs (``http://127.0.0.1:<port>``),
        so their invoke URLs (the ``ApiUrl`` output, ``!GetAtt <Api>.ApiEndpoint``) resolve to it."""
        for logical_id, _ in self.template.of_type("AWS::Serverless::HttpApi"):
            self.resolver.api_endpoints[logical_id] = base_url
            self.resolver.attributes[(logical_id, "ApiEndpoint")] = base_url

    def outputs(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for name, output in self.template.document.get("Outputs", {}).items():
            try:
                values[name] = str(self.resolver.resolve(output["Value"]))
            except TemplateError:
                continue
        return values


def deploy(
    template: Template,
    *,
    endpoint_url: str | None = None,
    stack_name: str = DEFAULT_STACK,
    secret_values: dict[str, str] | None = None,
) -> LocalStack:
    """Create the template's resources in moto and resolve every function's environment.

    ``secret_values`` maps a secret's logical id to the string to store instead of the
    template's generated value (``shiplight serve --secrets``).
    """
    stack = LocalStack(template=template, stack_name=stack_name, resolver=Resolver(template, stack_name))
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = aws_client(service, endpoint_url)
        return clients[service]

    creators: dict[str, Callable[[str, dict[str, Any], LocalStack, Callable[[str], Any]], None]] = {
        "AWS::DynamoDB::Table": _create_table,
        "AWS::SQS::Queue": _create_queue,
        "AWS::S3::Bucket": _create_bucket,
        "AWS::S3::BucketPolicy": _create_bucket_policy,
        "AWS::Events::EventBus": _create_event_bus,
        "AWS::Events::Archive": _create_archive,
        "AWS::SecretsManager::Secret": lambda lid, props, st, cl: _create_secret(
            lid, props, st, cl, (secret_values or {}).get(lid)
        ),
        "AWS::SNS::Topic": _create_topic,
        "AWS::Logs::LogGroup": _create_log_group,
        "AWS::Serverless::LayerVersion": _create_layer,
        "AWS::Serverless::HttpApi": _create_http_api,
        "AWS::Serverless::Function": _create_function,
    }
    not_emulated = {
        "AWS::CloudWatch::Alarm": "moto stores alarms but never evaluates them; watch the logs and metrics",
        "AWS::SNS::Subscription": "e-mail subscriptions need a real inbox",
    }

    graph: dict[str, set[str]] = {}
    for logical_id, resource in template.resources.items():
        if not template.condition_holds(resource):
            continue
        graph[logical_id] = {name for name in references(resource.get("Properties", {})) if name in template.resources}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        raise TemplateError(f"resources refer to each other in a cycle: {error.args[1]}") from None

    for logical_id in order:
        resource = template.resources[logical_id]
        resource_type = resource["Type"]
        if resource_type in creators:
            properties = resource.get("Properties", {})
            creators[resource_type](logical_id, properties, stack, client)
            stack.created[logical_id] = resource_type
        else:
            stack.not_emulated[logical_id] = not_emulated.get(resource_type, f"{resource_type} is not emulated locally")

    for logical_id, spec in template.functions().items():
        stack.functions[logical_id] = DeployedFunction(
            spec=spec,
            name=stack.ref(logical_id),
            environment={key: str(stack.resolver.resolve(value)) for key, value in spec.environment.items()},
        )
    return stack


def _physical_name(stack: LocalStack, logical_id: str, explicit: Any = None, lower: bool = False) -> str:
    name = str(stack.resolver.resolve(explicit)) if explicit else f"{stack.stack_name}-{logical_id}"
    return name.lower() if lower else name


# ---------------------------------------------------------------------------- creators


def _create_table(logical_id: str, props: dict[str, Any], stack: LocalStack, client: Callable[[str], Any]) -> None:
    resolve = stack.resolver.resolve
    name = _physical_name(stack, logical_id, props.get("TableName"))
    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": resolve(props["KeySchema"]),
        "AttributeDefinitions": resolve(props["AttributeDefinitions"]),
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if request["BillingMode"] == "PROVISIONED":
        request["ProvisionedThroughput"] = resolve(props["ProvisionedThroughput"])
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if key in props:
            request[key] = resolve(props[key])
    if "StreamSpecification" in props:
        request["StreamSpecification"] = {"StreamEnabled": True, **resolve(props["StreamSpecification"])}
    if "SSESpecification" in props:
        request["SSESpecification"] = {"Enabled": bool(resolve(props["SSESpecification"]).get("SSEEnabled"))}
    if "DeletionProtectionEnabled" in props:
        request["DeletionProtectionEnabled"] = str(resolve(props["DeletionProtectionEnabled"])).lower() == "true"
    description = client("dynamodb").create_table(**request)["TableDescription"]
    ttl = resolve(props.get("TimeToLiveSpecification"))
    if ttl and ttl.get("Enabled"):
        client("dynamodb").update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )
    stack.resolver.refs[logical_id] = name
    stack.resolver.attributes[(logical_id, "Arn")] = description["TableArn"]
    if description.get("LatestStreamArn"):
        stack.resolver.attributes[(logical_id, "StreamArn")] = description["LatestStreamArn"]


_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
)


def _attribute_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _create_queue(logical_id: str, props: dict[str, Any], stack: LocalStack, client: Callable[[str], Any]) -> None:
    resolve = stack.resolver.resolve
    name = _physical_name(stack, logical_id, props.get("QueueName"))
    attributes = {key: _attribute_text(resolve(props[key])) for key in _QUEUE_ATTRIBUTES if key in props}
    for key in ("RedrivePolicy", "RedriveAllowPolicy"):
        if key in props:
            attributes[key] = json.dumps(resolve(props[key]))
    url = client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"
    stack.resolver.refs[logical_id] = url
    stack.resolver.attributes.update(
        {(logical_id, "Arn"): arn, (logical_id, "QueueName"): name, (logical_id, "QueueUrl"): url}
    )


def _create_bucket(logical_id: str, props: dict[str, Any], stack: LocalStack, client: Callable[[str], Any]) -> None:
    resolve = stack.resolver.resolve
    name = _physical_name(stack, logical_id, props.get("BucketName"), lower=True)
    s3 = client("s3")
    s3.create_bucket(Bucket=name)
    if "BucketEncryption" in props:
        rules = [
            {
                "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                "BucketKeyEnabled": bool(rule.get("BucketKeyEnabled", False)),
            }
            for rule in resolve(props["BucketEncryption"])["ServerSideEncryptionConfiguration"]
        ]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=resolve(props["PublicAccessBlockConfiguration"])
        )
    if "LifecycleConfiguration" in props:
        rules = [_lifecycle_rule(rule) for rule in resolve(props["LifecycleConfiguration"])["Rules"]]
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
    stack.resolver.refs[logical_id] = name
    stack.resolver.attributes[(logical_id, "Arn")] = f"arn:aws:s3:::{name}"


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the S3 API's shape."""
    converted: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule["Status"]}
    converted["Filter"] = {"Prefix": rule.get("Prefix", "")}
    if "Transitions" in rule:
        converted["Transitions"] = [
            {"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]} for t in rule["Transitions"]
        ]
    if "ExpirationInDays" in rule:
        converted["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        converted["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        }
    return converted


def _create_bucket_policy(
    logical_id: str, props: dict[str, Any], stack: LocalStack, client: Callable[[str], Any]
) -> None:
    resolve = stack.resolver.resolve
    document = resolve(props["PolicyDocument"])
    # The local moto endpoint is plain HTTP on loopback: a TLS-only statement would deny
    # every request. It is left out here, and said so; everything else is applied.
    kept = [s for s in document["Statement"] if "aws:SecureTransport" not in json.dumps(s.get("Condition", {}))]
    if len(kept) < len(document["Statement"]):
        stack.not_emulated[f"{logical_id} (TLS-only statement)"] = "the local endpoint is plain HTTP on loopback"
    if kept:
        client("s3").put_bucket_policy(
            Bucket=resolve(props["Bucket"]), Policy=json.dumps({**document, "Statement": kept})
        )
    stack.resolver.refs[logical_id] = resolve(props["Bucket"])


def _create_event_bus(logical_id: str, props: dict[str, Any], stack: LocalStack, client: Callable[[str], Any]) -> None:
    name = str(stack.resolver.resolve(props["Name"]))
    arn = client("events").create_event_bus(Name=name)["EventBusArn"]
    stack.resolver.refs[logical_id] = name
    stack.resolver.attributes.update({(logical_id, "Arn"): arn, (logical_id, "Name"): name})


def _create_archive(logical_id: str, props: dict[str, Any], stack: LocalStack, client: Callable[[str], Any]) -> None:
    resolve = stack.resolver.resolve
    name = _physical_name(stack, logical_id, props.get("ArchiveName"))[:48]
    request: dict[str, Any] = {"ArchiveName": name, "EventSourceArn": resolve(props["SourceArn"])}
    if "EventPattern" in props:
        request["EventPattern"] = json.dumps(resolve(props["EventPattern"]))
    if "RetentionDays" in props:
        request["RetentionDays"] = int(resolve(props["RetentionDays"]))
    arn = client("events").create_archive(**request)["ArchiveArn"]
    stack.resolver.refs[logical_id] = name
    stack.resolver.attributes[(logical_id, "Arn")] = arn


def _generated_secret(props: dict[str, Any]) -> str:
    spec = props.get("GenerateSecretString")
    if not spec:
        return str(props.get("SecretString", ""))
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
    value = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    if "SecretStringTemplate" in spec:
        document = json.loads(spec["SecretStringTemplate"])
        document[spec["GenerateStringKey"]] = value
        return json.dumps(document)
    return value


def _create_secret(
    logical_id: str,
    props: dict[str, Any],
    stack: LocalStack,
    client: Callable[[str], Any],
    override: str | None,
) -> None:
    name = _physical_name(stack, logical_id, props.get("Name"))
    value = override if override is not None else _generated_secret(props)
    arn = client("secretsmanager").create_secret(Name=name, SecretString=value)["ARN"]
    stack.resolver.refs[logical_id] = arn


def _create_topic(logical_id: str, props: dict[str, Any], stack: LocalStack, client: Callable[[str], Any]) -> None:
    name = _physical_name(stack, logical_id, props.get("TopicName"))
    arn = client("sns").create_topic(Name=name)["TopicArn"]
    stack.resolver.refs[logical_id] = arn
    stack.resolver.attributes[(logical_id, "TopicName")] = name


def _create_log_group(logical_id: str, props: dict[str, Any], stack: LocalStack, client: Callable[[str], Any]) -> None:
    # Function logs are written to files by the local runtime; the name is what matters here.
    name = _physical_name(stack, logical_id, props.get("LogGroupName"))
    stack.resolver.refs[logical_id] = name
    stack.resolver.attributes[(logical_id, "Arn")] = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}:*"


def _create_layer(logical_id: str, props: dict[str, Any], stack: LocalStack, client: Callable[[str], Any]) -> None:
    # Locally the layer's package (shared/) is imported from the working tree.
    stack.resolver.refs[logical_id] = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:{stack.stack_name}-{logical_id}:1"


def _create_http_api(logical_id: str, props: dict[str, Any], stack: LocalStack, client: Callable[[str], Any]) -> None:
    stack.resolver.refs[logical_id] = "local"


def _create_function(logical_id: str, props: dict[str, Any], stack: LocalStack, client: Callable[[str], Any]) -> None:
    name = f"{stack.stack_name}-{logical_id}"
    stack.resolver.refs[logical_id] = name
    stack.resolver.attributes[(logical_id, "Arn")] = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
