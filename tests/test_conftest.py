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
    # every attempt was recorded (the fixture fails a test that swallowed one); these were
    # provoked on purpose
    assert len(no_network) >= 3 and all("127.0.0.1" in a for a in no_network)
    no_network.clear()


def test_without_the_fixture_a_local_connection_works():
    # the control: the same connection succeeds when nothing is blocked
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        socket.create_connection(server.getsockname(), timeout=1).close()


def test_no_network_records_an_attempt_the_code_swallowed(no_network):
    try:  # what an "am I online?" check does
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    except Exception:
        pass
    assert len(no_network) == 1  # the fixture would fail this test at its end
    no_network.clear()
