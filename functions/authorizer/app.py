"""Lambda authorizer of the merchant routes (HTTP API, payload 2.0, simple responses).

Authenticates the ``Authorization: Bearer <key>`` header against the hashed keys of the
ApiKeys table and hands the verdict to the route (``shared.logic.api.auth`` explains why the
route, not this function, answers 401 and 403). Imports only the standard library and
botocore. Never logs the header: only the verdict and the key id, which is not secret.
"""

from typing import Any

from shared.dal.apikeys import DynamoApiKeyStore
from shared.logic.api.auth import authenticate, authorizer_response, identity_source
from shared.observability import MetricsBatch, get_logger
from shared.settings import AuthorizerSettings, load

logger = get_logger("authorizer")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    metrics = MetricsBatch()
    try:
        store = DynamoApiKeyStore(load(AuthorizerSettings).api_keys_table)
        verdict = authenticate(identity_source(event), store)
        metrics.dimension("verdict", verdict.outcome)
        metrics.add("ApiKeyChecks")
        logger.info("api key checked", extra={"verdict": verdict.outcome, "key_id": verdict.key_id})
        return authorizer_response(verdict)
    finally:
        metrics.flush()
