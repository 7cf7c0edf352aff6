"""The shared fixtures do what the tests that use them rely on."""

from __future__ import annotations

import socket
import urllib.request

import pytest


def test_no_network_blocks_every_way_out(no_network):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        with pytest.raises(AssertionError, match="network access attempted"):
            socket.create_connection(server.getsockname(), timeout=1)
        with socket.socket() as s, pytest.raises(AssertionError, match="network access attempted"):
            s.connect(server.getsockname())
        with socket.socket() as s, pytest.raises(AssertionError, match="network access attempted"):
            s.connect_ex(server.getsockname())
        with pytest.raises((AssertionError, OSError)):
            urllib.request.urlopen(f"http://127.0.0.1:{server.getsockname()[1]}/", timeout=1)
    finally:
        server.close()


def test_without_the_fixture_a_local_connection_works():
    # the control: the same connection succeeds when nothing is blocked
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        socket.create_connection(server.getsockname(), timeout=1).close()
