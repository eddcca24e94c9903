"""One egress policy for every outbound call a tenant or a module can steer (see policy.py).

``modyard.common.egress.policy`` is pure Python; ``modyard.common.egress.aiohttp_client`` applies
it to aiohttp (imported separately, so the policy needs no HTTP client).
"""

from modyard.common.egress.policy import (
    PROBLEM_SLUG,
    PROBLEM_TYPE,
    Allowance,
    EgressPolicy,
    EgressRefused,
    PlatformEndpoints,
    parse_cidr,
    parse_host_pattern,
)

__all__ = [
    "PROBLEM_SLUG",
    "PROBLEM_TYPE",
    "Allowance",
    "EgressPolicy",
    "EgressRefused",
    "PlatformEndpoints",
    "parse_cidr",
    "parse_host_pattern",
]
