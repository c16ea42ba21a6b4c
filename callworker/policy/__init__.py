"""The operator's policy: limits, permissions, rates, cost and quality (CONTRACT section 8).

Pure rules (``limits``, ``cost``) and the loader of the policy file (``loader``,
``book``); the counts the limits compare come from ``store/``. Imports neither
``esl/`` nor ``bus/``.
"""

from callworker.policy.book import InForce, PolicyBook
from callworker.policy.loader import PolicyFileError, parse_policy, read_policy_file
from callworker.policy.model import PolicyFile, TenantPolicy, UserPolicy

__all__ = [
    "InForce",
    "PolicyBook",
    "PolicyFile",
    "PolicyFileError",
    "TenantPolicy",
    "UserPolicy",
    "parse_policy",
    "read_policy_file",
]
