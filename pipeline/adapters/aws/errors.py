"""AWS failures translated into the pipeline's errors.

Throttling, timeouts and 5xx answers become `TransientError`, so the retry policy of
`pipeline.definition` applies (the local runner retries it; the state machine retries its name).
Anything else is re-raised as it is: retrying a missing bucket or a denied call only delays the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from pipeline.errors import TransientError

TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "RequestLimitExceeded", "RequestThrottled",
    "SlowDown", "ServiceUnavailable", "ServiceUnavailableException", "InternalServerError",
    "InternalServerException", "InternalFailure", "ModelNotReadyException", "ModelTimeoutException",
    "RequestTimeout", "RequestTimeoutException", "TransactionInProgressException",
})
NETWORK_ERRORS = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, NETWORK_ERRORS):
        return True
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in TRANSIENT_CODES or status in (429, 500, 502, 503, 504)
    return False


@contextmanager
def aws_call(what: str) -> Iterator[None]:
    """Wrap one AWS call: `what` names it in the reason a person reads."""
    try:
        yield
    except Exception as error:
        if is_transient(error):
            raise TransientError(f"{what} failed, worth retrying: {error}") from error
        raise
