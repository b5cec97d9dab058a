"""The vpcd bridge against a stand-in vpcd (a local TCP server speaking the vpcd framing)."""

from __future__ import annotations

import socket

import pytest

from cardio.errors import TransportError
from cardio.softcard import SOFTCARD_ATR, SoftCard
from cardio.vpcd import VpcdBridge, parse_host_port, serve_in_thread


class FakeVpcd:
    """The reader side: listens, accepts the card, sends framed messages, reads framed replies."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> None:
        self.server.settimeout(5)
        self.conn, _ = self.server.accept()
        self.conn.settimeout(5)

    def send(self, payload: bytes) -> None:
        assert self.conn is not None
        # Length and payload in two sends, as Debian's vpcd does.
        self.conn.sendall(len(payload).to_bytes(2, "big"))
        self.conn.sendall(payload)

    def recv(self) -> bytes:
        assert self.conn is not None
        header = self._exact(2)
        return self._exact(int.from_bytes(header, "big"))

    def _exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.conn.recv(n - len(out))
            assert chunk, "the card closed the connection"
            out += chunk
        return out

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


@pytest.fixture
def vpcd() -> FakeVpcd:
    fake = FakeVpcd()
    yield fake
    fake.close()


def test_atr_apdus_power_cycle_and_close(vpcd: FakeVpcd, soft_card: SoftCard) -> None:
    changes = []
    bridge = VpcdBridge(soft_card, "127.0.0.1", vpcd.port, on_change=lambda: changes.append(1))
    thread = serve_in_thread(bridge)
    vpcd.accept()
    assert bridge.connected
    sock_opts = bridge._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    assert sock_opts != 0
    vpcd.send(b"\x04")
    assert vpcd.recv() == SOFTCARD_ATR
    vpcd.send(b"\x01")  # power on: no reply
    vpcd.send(bytes.fromhex("00A4040008A00000063201010500"))
    assert vpcd.recv()[-2:] == b"\x90\x00"
    vpcd.send(bytes.fromhex("805C000204"))
    assert vpcd.recv() == (5000).to_bytes(4, "big") + b"\x90\x00"
    vpcd.send(b"\x00")  # power off ends the session: the purse must be selected again
    vpcd.send(bytes.fromhex("805C000204"))
    assert vpcd.recv() == bytes.fromhex("6A82")
    assert bridge.apdus_served == 3
    assert changes == []  # nothing persistent changed
    vpcd.conn.close()
    vpcd.conn = None
    thread.join(5)
    assert not thread.is_alive()
    assert not bridge.connected


def test_pull_ends_serving(vpcd: FakeVpcd, soft_card: SoftCard) -> None:
    bridge = VpcdBridge(soft_card, "127.0.0.1", vpcd.port)
    thread = serve_in_thread(bridge)
    vpcd.accept()
    bridge.pull()
    thread.join(5)
    assert not thread.is_alive()
    assert vpcd.conn.recv(1) == b""  # the reader sees the card go


def test_a_message_cut_short_by_the_reader_processes_nothing(
    vpcd: FakeVpcd, soft_card: SoftCard
) -> None:
    bridge = VpcdBridge(soft_card, "127.0.0.1", vpcd.port)
    thread = serve_in_thread(bridge)
    vpcd.accept()
    vpcd.conn.sendall(b"\x00\x05\x80\x5c")  # 5 bytes announced, 2 sent, then the reader goes
    vpcd.conn.close()
    vpcd.conn = None
    thread.join(5)
    assert not thread.is_alive()
    assert bridge.apdus_served == 0


def test_connect_to_nothing_is_a_transport_error(soft_card: SoftCard) -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(TransportError, match="pcsc.sh start"):
        VpcdBridge(soft_card, "127.0.0.1", port).connect()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:35963", ("127.0.0.1", 35963)),
        (":35964", ("127.0.0.1", 35964)),
        ("35963", ("127.0.0.1", 35963)),
    ],
)
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["host:port", "h:0", "h:70000"])
def test_parse_host_port_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        parse_host_port(text)
