"""Raw local receivers for the outbound HTTP tests: asyncio servers on 127.0.0.1 that answer
with scripted bytes, so a test can play a broken or hostile endpoint (an endless header, two
responses in one write, a 101, a server that never answers), and a generated TLS certificate.

These speak bytes on purpose: they are the attacker, not code under test.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

__all__ = [
    "FqdnResolver",
    "RawReceiver",
    "Script",
    "raw_receiver",
    "read_request",
    "replying",
    "self_signed",
]

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "RawReceiver"], Awaitable[None]]


@dataclass
class RawReceiver:
    """What a raw receiver saw: request heads, how many connections, how many closed by the
    client (EOF seen), and bytes it wrote."""

    url: URL
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0
    closed_by_client: int = 0
    written: int = 0
    client_closed: asyncio.Event = field(default_factory=asyncio.Event)

    def write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        """Write ``data`` and count it."""
        writer.write(data)
        self.written += len(data)


async def read_request(reader: asyncio.StreamReader, rcv: RawReceiver) -> bytes:
    """Read one request (head and Content-Length body); returns the body."""
    head = await reader.readuntil(b"\r\n\r\n")
    rcv.heads.append(head)
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return await reader.readexactly(length)


async def wait_client_close(reader: asyncio.StreamReader, rcv: RawReceiver) -> None:
    """Read until the client closes the connection, and record that it did (a reset counts:
    a socket closed with unread data in it sends RST instead of FIN)."""
    try:
        while await reader.read(65536):
            pass
    except ConnectionError:
        pass
    rcv.closed_by_client += 1
    rcv.client_closed.set()


def replying(reply: bytes, *, keep_open: bool = True) -> Script:
    """Answer each request on a connection with the raw bytes ``reply``; with ``keep_open``
    wait for the next request (or the client's close), else close after the first."""

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, rcv: RawReceiver) -> None:
        while True:
            await read_request(r, rcv)
            rcv.write(w, reply)
            await w.drain()
            if not keep_open:
                return

    return script


@asynccontextmanager
async def raw_receiver(
    script: Script, *, ssl_context: ssl.SSLContext | None = None, path: str = "/hook"
) -> AsyncIterator[RawReceiver]:
    """A server on 127.0.0.1 that runs ``script`` per connection."""
    rcv = RawReceiver(URL("http://127.0.0.1/"))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rcv.connections += 1
        try:
            await script(reader, writer, rcv)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if ssl_context is not None else "http"
    rcv.url = URL(f"{scheme}://127.0.0.1:{port}{path}")
    try:
        yield rcv
    finally:
        server.close()
        await server.wait_closed()


class FqdnResolver(AbstractResolver):
    """A resolver over a fixed table that, like DNS, treats ``name.`` (a fully qualified name)
    as ``name``. No test depends on the machine's DNS."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.queries: list[str] = []
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.queries.append(host)
        addresses = self.table.get(host.removesuffix("."))
        if addresses is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        self.closed = True


def self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (and 127.0.0.1) and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
