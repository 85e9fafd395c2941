"""Provider tests talk to a mocked upstream installed at the shared transport."""

import httpx
import pytest

from gateway import transport
from tests.gateway.providers.helpers import Upstream


@pytest.fixture
def upstream():
    mock = Upstream()
    transport.set_transport_for_tests(httpx.MockTransport(mock))
    yield mock
    transport.set_transport_for_tests(None)
