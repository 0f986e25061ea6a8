"""What the event processor must import whatever its own code does: the bench's floor.

The processor is built on what its issue requires of it: Powertools' ``Logger``, ``Metrics``
and ``BatchProcessor`` (partial batch responses), botocore to reach DynamoDB and EventBridge,
and the canonical model in pydantic v2. This module imports exactly those, in the handler's
order (the batch module before pydantic, see ``shared.logic.ingest.batch``), and builds one small
model, so that ``make bench`` can print ``import_ratio.event_processor_floor``: how much of
the processor's cold import is the libraries' and how much is Shiplight's own code.
"""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from botocore.session import get_session
from pydantic import BaseModel, ConfigDict


class Probe(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    count: int = 0


LIBRARIES = (Logger, Metrics, MetricUnit, BatchProcessor, EventType, process_partial_response, get_session)
