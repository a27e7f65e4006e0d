"""Just enough raw AMQP 1.0 framing to misbehave on purpose and read the reply.

Proton refuses to send malformed input, so the bad-input tests talk to the
socket directly: a handful of encoders for the frames they need and a small
decoder for the type system, enough to pull the error condition out of a
`close` frame.
"""

import socket
import struct
import time

AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
SASL_HEADER = b"AMQP\x03\x01\x00\x00"

FRAME_AMQP, FRAME_SASL = 0, 1
OPEN, BEGIN, ATTACH, CLOSE = 0x10, 0x11, 0x12, 0x18
SASL_MECHANISMS, SASL_INIT, SASL_OUTCOME = 0x40, 0x41, 0x44


# -- encoding ---------------------------------------------------------------
def sym(s):
    b = s.encode()
    return b"\xa3" + bytes([len(b)]) + b


def string(s):
    b = s.encode()
    return b"\xa1" + bytes([len(b)]) + b


def uint(n):
    return b"\x70" + struct.pack(">I", n)


NULL, FALSE = b"\x40", b"\x42"


def performative(descriptor, *fields):
    body = b"".join(fields)
    assert len(body) < 250
    return b"\x00\x53" + bytes([descriptor]) + b"\xc0" + bytes([len(body) + 1, len(fields)]) + body


def frame(body, ftype=FRAME_AMQP, channel=0):
    return struct.pack(">IBBH", 8 + len(body), 2, ftype, channel) + body


# -- decoding ---------------------------------------------------------------
class Described:
    def __init__(self, descriptor, value):
        self.descriptor, self.value = descriptor, value

    def __repr__(self):
        return f"Described({self.descriptor!r}, {self.value!r})"


_FIXED = {
    0x50: ">B", 0x51: ">b", 0x52: ">B", 0x53: ">B", 0x54: ">b", 0x55: ">b", 0x56: ">B",
    0x60: ">H", 0x61: ">h", 0x70: ">I", 0x71: ">i", 0x72: ">f", 0x73: ">I",
    0x80: ">Q", 0x81: ">q", 0x82: ">d", 0x83: ">q",
}


def _constructor(buf, pos):
    code = buf[pos]
    pos += 1
    if code == 0x00:
        descriptor, pos = decode(buf, pos)
        inner, pos = _constructor(buf, pos)
        return ("described", descriptor, inner), pos
    return code, pos


def _payload(ctor, buf, pos):
    if isinstance(ctor, tuple):
        _, descriptor, inner = ctor
        value, pos = _payload(inner, buf, pos)
        return Described(descriptor, value), pos
    code = ctor
    if code == 0x40:
        return None, pos
    if code in (0x41, 0x42):
        return code == 0x41, pos
    if code in (0x43, 0x44):
        return 0, pos
    if code == 0x45:
        return [], pos
    if code in _FIXED:
        fmt = _FIXED[code]
        (v,) = struct.unpack_from(fmt, buf, pos)
        return (bool(v) if code == 0x56 else v), pos + struct.calcsize(fmt)
    if code == 0x98:
        return bytes(buf[pos:pos + 16]), pos + 16
    if code in (0xa0, 0xa1, 0xa3, 0xb0, 0xb1, 0xb3):
        if code & 0x10:
            (n,) = struct.unpack_from(">I", buf, pos)
            pos += 4
        else:
            n, pos = buf[pos], pos + 1
        raw = bytes(buf[pos:pos + n])
        return (raw if code in (0xa0, 0xb0) else raw.decode()), pos + n
    if code in (0xc0, 0xc1, 0xd0, 0xd1, 0xe0, 0xf0):
        if code in (0xc0, 0xc1, 0xe0):
            size, count = buf[pos], buf[pos + 1]
            pos += 2
        else:
            size, count = struct.unpack_from(">II", buf, pos)
            pos += 8
        if code in (0xe0, 0xf0):
            elem, pos = _constructor(buf, pos)
            items = []
            for _ in range(count):
                v, pos = _payload(elem, buf, pos)
                items.append(v)
            return items, pos
        items = []
        for _ in range(count):
            v, pos = decode(buf, pos)
            items.append(v)
        if code in (0xc1, 0xd1):
            return dict(zip(items[::2], items[1::2])), pos
        return items, pos
    raise ValueError(f"unsupported AMQP type code 0x{code:02x} at {pos - 1}")


def decode(buf, pos=0):
    ctor, pos = _constructor(buf, pos)
    return _payload(ctor, buf, pos)


# -- a raw connection ------------------------------------------------------
class RawConnection:
    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        if self.eof:
            return False
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_exact(self, n):
        deadline = time.monotonic() + self.timeout
        while len(self.buf) < n:
            if not self._fill(deadline) and (self.eof or time.monotonic() >= deadline):
                raise EOFError(f"wanted {n} bytes, have {self.buf!r} (eof={self.eof})")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until_eof(self):
        """Everything the server sends until it closes the socket (or the timeout)."""
        deadline = time.monotonic() + self.timeout
        while not self.eof and time.monotonic() < deadline:
            self._fill(deadline)
        out, self.buf = self.buf, b""
        return out

    def read_frame(self):
        """(frame type, channel, decoded performative or None for an empty frame)."""
        (size,) = struct.unpack(">I", self.read_exact(4))
        rest = self.read_exact(size - 4)
        doff, ftype, channel = struct.unpack_from(">BBH", rest, 0)
        body = rest[doff * 4 - 4:]
        if not body:
            return ftype, channel, None
        value, _ = decode(body)
        return ftype, channel, value

    def read_performative(self, descriptor):
        """Skip frames (e.g. empty heartbeats) until one with `descriptor`."""
        while True:
            _, _, value = self.read_frame()
            if isinstance(value, Described) and value.descriptor == descriptor:
                return value.value

    def handshake(self):
        """SASL ANONYMOUS (if offered) then AMQP open; returns the server's open fields."""
        self.send(SASL_HEADER)
        header = self.read_exact(8)
        if header == SASL_HEADER:
            self.read_performative(SASL_MECHANISMS)
            self.send(frame(performative(SASL_INIT, sym("ANONYMOUS")), FRAME_SASL))
            outcome = self.read_performative(SASL_OUTCOME)
            assert outcome[0] == 0, f"SASL ANONYMOUS refused: {outcome}"
            self.send(AMQP_HEADER)
            header = self.read_exact(8)
        assert header == AMQP_HEADER, f"unexpected protocol header {header!r}"
        self.send(frame(performative(OPEN, string("raw-client"))))
        return self.read_performative(OPEN)

    def close(self):
        self.sock.close()


def close_condition(close_fields):
    """The error condition symbol of a decoded `close` performative, or None."""
    if not close_fields or close_fields[0] is None:
        return None
    error = close_fields[0]
    fields = error.value if isinstance(error, Described) else error
    return fields[0] if fields else None
