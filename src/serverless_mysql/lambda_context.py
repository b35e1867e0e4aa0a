"""A stand-in for Lambda's context object, for local runs, tests and simulations.

Its remaining time really counts down from the moment it is created, like Lambda's, so deadline behaviour can
be exercised outside Lambda.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

__all__ = ["LocalLambdaContext"]


class LocalLambdaContext:
    """The attributes of ``awslambdaric``'s ``LambdaContext`` that handlers and Powertools read.

    Parameters
    ----------
    timeout : float
        Seconds the invocation may run (Lambda's function timeout; default 3).
    function_name : str
        Reported as ``function_name`` and in the ARN.
    memory_limit_in_mb : int
        Reported as ``memory_limit_in_mb``.
    clock : callable
        Monotonic clock in seconds (injectable for tests).

    Examples
    --------
    >>> context = LocalLambdaContext(timeout=1.5)
    >>> 0 < context.get_remaining_time_in_millis() <= 1500
    True
    """

    def __init__(
        self,
        timeout: float = 3.0,
        *,
        function_name: str = "local-function",
        memory_limit_in_mb: int = 128,
        region: str = "us-east-1",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._deadline = clock() + timeout
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self.identity = None
        self.client_context = None
        self.tenant_id = None

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the (simulated) timeout; never negative."""
        return max(0, int((self._deadline - self._clock()) * 1000))
