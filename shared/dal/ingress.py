"""Raw-payload archive (S3) and ingest queue (SQS): what a 202 promises is durable."""

from __future__ import annotations

from shared.dal.aws import aws_call, client
from shared.envelope import IngestEnvelope


def archive_raw(envelope: IngestEnvelope, body: bytes) -> None:
    """Store the raw body under its content-addressed key (idempotent on redelivery)."""
    with aws_call("archive raw payload"):
        client("s3").put_object(
            Bucket=envelope.archive_bucket,
            Key=envelope.archive_key,
            Body=body,
            ContentType="application/json",
            Metadata={
                "source": envelope.source,
                "channel": envelope.channel,
                "received-at": envelope.received_at,
                "delivery-id": envelope.delivery_id[:128],
            },
        )


def read_archived(bucket: str, key: str) -> bytes:
    with aws_call("read archived payload"):
        response = client("s3").get_object(Bucket=bucket, Key=key)
        body: bytes = response["Body"].read()
        return body


def enqueue(queue_url: str, envelope: IngestEnvelope) -> str:
    """Put the envelope on the ingest queue; returns the SQS message id."""
    with aws_call("enqueue payload"):
        response = client("sqs").send_message(
            QueueUrl=queue_url,
            MessageBody=envelope.to_json(),
            MessageAttributes={
                "source": {"DataType": "String", "StringValue": envelope.source},
                "channel": {"DataType": "String", "StringValue": envelope.channel},
            },
        )
        message_id: str = response["MessageId"]
        return message_id
