"""The integration fixtures (simulator, worker, tenant, probe) for the security tier."""

from tests.integration.conftest import probe, simulator, tenant, worker  # noqa: F401
