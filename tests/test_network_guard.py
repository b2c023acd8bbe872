"""The guard in conftest.py is what keeps every other test honest about the network."""

import socket
import urllib.request

import pytest
from conftest import NetworkBlocked


def test_outbound_connection_is_refused():
    with socket.socket() as s, pytest.raises(NetworkBlocked):
        s.connect(("93.184.216.34", 80))


def test_name_lookup_is_refused():
    with pytest.raises(Exception) as caught:
        urllib.request.urlopen("https://example.com", timeout=2)
    assert "no name lookups" in str(caught.value) or isinstance(caught.value.__cause__, NetworkBlocked)


def test_loopback_is_allowed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.socket() as client:
            client.connect(server.getsockname())
