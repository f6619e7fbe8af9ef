# cython: language_level=3, boundscheck=False, wraparound=False
"""Length-prefixed framing of a byte stream: the compiled twin of ``_framing_py``.

Same API, results and errors (type, message, point of raising) as
:mod:`omega.protocol._framing_py`, which documents the wire format and is
the reference; a differential hypothesis test pins the two together.

Speed comes from parsing prefixes with C integers straight from the caller's
buffer and cutting each frame that lies whole inside a chunk out of that
buffer with one ``PyBytes_FromStringAndSize``. Only the one incomplete frame
at the end of a chunk is copied into the decoder: a frame of up to
``_EAGER_LIMIT`` bytes straight into the ``bytes`` object that will be
returned (allocated when its prefix completes, and not shared until then),
a larger one into a C buffer that grows with the bytes received, so an
announced size alone never makes the decoder allocate more than
``_EAGER_LIMIT`` bytes.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.string cimport memcpy

from omega.errors import ConfigurationError, FrameTooLargeError, MalformedFrameError

__all__ = ["DEFAULT_MAX_FRAME_SIZE", "MAX_FRAME_SIZE_LIMIT", "FrameDecoder", "encode_frame"]

DEFAULT_MAX_FRAME_SIZE = 1 << 20
MAX_FRAME_SIZE_LIMIT = 2**31 - 1

cdef enum:
    _MAX_PREFIX_LENGTH = 5
    # Incomplete frames up to this size are assembled in their final bytes object.
    _EAGER_LIMIT = 64 * 1024

# Outcomes of _scan_prefix.
cdef enum:
    _PREFIX_COMPLETE = 0
    _PREFIX_INCOMPLETE = 1
    _PREFIX_NON_MINIMAL = 2
    _PREFIX_TOO_LONG = 3


def encode_frame(payload, *, max_frame_size=DEFAULT_MAX_FRAME_SIZE):
    """Return ``payload`` as one frame: its minimal varint length prefix, then the payload.

    ``payload`` may be any C-contiguous bytes-like object; its raw bytes are
    framed. Raises :class:`~omega.errors.FrameTooLargeError` when the payload
    is longer than ``max_frame_size`` (so a peer with the same limit would
    accept it), and :class:`~omega.errors.ConfigurationError` when
    ``max_frame_size`` is not an int in ``1..MAX_FRAME_SIZE_LIMIT``.
    """
    cdef Py_ssize_t limit = _checked_max_frame_size(max_frame_size)
    cdef Py_buffer view
    cdef unsigned char prefix[_MAX_PREFIX_LENGTH]
    cdef Py_ssize_t prefix_length
    cdef bytes frame
    cdef char* out
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        if view.len > limit:
            raise FrameTooLargeError(view.len, limit)
        prefix_length = _write_varint(prefix, <unsigned long long>view.len)
        frame = PyBytes_FromStringAndSize(NULL, prefix_length + view.len)
        out = PyBytes_AS_STRING(frame)
        memcpy(out, prefix, prefix_length)
        memcpy(out + prefix_length, view.buf, view.len)
        return frame
    finally:
        PyBuffer_Release(&view)


@cython.final
cdef class FrameDecoder:
    """Split a byte stream into the frames described in ``_framing_py``'s docstring.

    Sans-I/O: feed it whatever bytes arrived, in any chunking, and it returns
    the frames they complete. ``max_frame_size`` is the largest payload
    accepted (``1..MAX_FRAME_SIZE_LIMIT``, else
    :class:`~omega.errors.ConfigurationError`).
    """

    cdef Py_ssize_t _max_frame_size
    # The frame in progress: prefix bytes read so far and their value, then, once the prefix
    # is complete, the payload size (-1 until then) and the payload bytes held.
    cdef unsigned long long _prefix_value
    cdef int _prefix_length
    cdef Py_ssize_t _payload_size
    cdef Py_ssize_t _payload_length
    # Where the held payload bytes go: a frame of at most _EAGER_LIMIT bytes into
    # _payload_frame, the bytes object that will be returned; a larger one into _payload.
    cdef bytes _payload_frame
    cdef unsigned char* _payload
    cdef Py_ssize_t _payload_capacity
    cdef object _error

    def __cinit__(self, max_frame_size=DEFAULT_MAX_FRAME_SIZE):
        self._max_frame_size = _checked_max_frame_size(max_frame_size)
        self._prefix_value = 0
        self._prefix_length = 0
        self._payload_size = -1
        self._payload_length = 0
        self._payload_frame = None
        self._payload = NULL
        self._payload_capacity = 0
        self._error = None

    def __dealloc__(self):
        PyMem_Free(self._payload)

    @property
    def max_frame_size(self):
        """The largest payload, in bytes, this decoder accepts."""
        return self._max_frame_size

    @property
    def buffered(self):
        """Bytes held that do not yet form a complete frame (0 between frames and once failed)."""
        return self._prefix_length + self._payload_length

    @property
    def failed(self):
        """True once the stream broke the framing rules; every later :meth:`feed` raises."""
        return self._error is not None

    def feed(self, data):
        """Take the next bytes of the stream and return the frames they complete, in order.

        ``data`` may be any C-contiguous bytes-like object, including an empty
        one. Returns the payloads as ``bytes``; an incomplete frame at the end
        is held until later calls complete it.

        Raises :class:`~omega.errors.FrameTooLargeError` when a prefix
        announces more than ``max_frame_size`` bytes and
        :class:`~omega.errors.MalformedFrameError` for a non-minimal or too
        long prefix. If frames were completed earlier in the same call, they
        are returned and the error is raised by the next call instead; once
        failed, every call raises the same error again.
        """
        cdef Py_buffer view
        cdef list frames = []
        if self._error is not None:
            raise _replay(self._error)
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            error = self._decode(<const unsigned char*>view.buf, view.len, frames)
        finally:
            PyBuffer_Release(&view)
        if error is not None:
            self._fail(error)
            if not frames:
                raise error
        return frames

    cdef object _decode(self, const unsigned char* data, Py_ssize_t end, list frames):
        """Append to ``frames`` every frame ``data`` completes and keep the incomplete rest.

        Returns the framing error met (after the frames before it), or None.
        """
        cdef Py_ssize_t position = 0
        cdef Py_ssize_t missing
        cdef Py_ssize_t size
        cdef unsigned long long value
        cdef int length
        cdef int outcome
        cdef unsigned char first
        cdef Py_ssize_t limit = self._max_frame_size
        if self._payload_size >= 0:
            missing = self._payload_size - self._payload_length
            if end < missing:
                self._hold(data, end)
                return None
            self._hold(data, missing)
            frames.append(self._held_frame())
            self._start_next_frame()
            position = missing
        while position < end:
            first = data[position]
            if first < 0x80 and self._prefix_length == 0:
                # Fast path: a one-byte prefix, the whole prefix of every payload under 128 bytes.
                value = first
                length = 1
                position += 1
            else:
                value = self._prefix_value
                length = self._prefix_length
                outcome = _scan_prefix(data, &position, end, &value, &length)
                if outcome == _PREFIX_INCOMPLETE:
                    self._prefix_value = value
                    self._prefix_length = length
                    return None
                if outcome == _PREFIX_NON_MINIMAL:
                    return _non_minimal_error(value, length)
                if outcome == _PREFIX_TOO_LONG:
                    return _too_long_error(value)
            if value > <unsigned long long>limit:
                return FrameTooLargeError(value, limit)
            size = <Py_ssize_t>value
            if end - position >= size:
                frames.append(PyBytes_FromStringAndSize(<const char*>data + position, size))
                position += size
                self._prefix_value = 0
                self._prefix_length = 0
            else:
                self._prefix_value = value
                self._prefix_length = length
                self._payload_size = size
                if size <= _EAGER_LIMIT:
                    self._payload_frame = PyBytes_FromStringAndSize(NULL, size)
                self._hold(data + position, end - position)
                return None
        return None

    cdef void _hold(self, const unsigned char* data, Py_ssize_t count) except *:
        """Append ``count`` bytes to the held payload of the frame in progress."""
        cdef Py_ssize_t needed = self._payload_length + count
        cdef Py_ssize_t capacity
        cdef unsigned char* grown
        if count == 0:
            return
        if self._payload_frame is not None:
            memcpy(PyBytes_AS_STRING(self._payload_frame) + self._payload_length, data, count)
            self._payload_length = needed
            return
        if needed > self._payload_capacity:
            # Double, but never beyond the announced size: the buffer is bounded by the frame.
            capacity = max(needed, min(self._payload_size, 2 * self._payload_capacity))
            grown = <unsigned char*>PyMem_Realloc(self._payload, capacity)
            if grown == NULL:
                raise MemoryError()
            self._payload = grown
            self._payload_capacity = capacity
        memcpy(self._payload + self._payload_length, data, count)
        self._payload_length = needed

    cdef bytes _held_frame(self):
        """The completed frame in progress, as bytes."""
        if self._payload_frame is not None:
            return self._payload_frame
        return PyBytes_FromStringAndSize(<char*>self._payload, self._payload_size)

    cdef void _start_next_frame(self):
        self._prefix_value = 0
        self._prefix_length = 0
        self._payload_size = -1
        self._payload_length = 0
        self._payload_frame = None
        # Only frames over _EAGER_LIMIT use this buffer: free it rather than pin its memory.
        PyMem_Free(self._payload)
        self._payload = NULL
        self._payload_capacity = 0

    cdef void _fail(self, error) except *:
        self._error = error
        self._start_next_frame()


cdef inline int _scan_prefix(
    const unsigned char* data,
    Py_ssize_t* position,
    Py_ssize_t end,
    unsigned long long* value,
    int* length,
) noexcept nogil:
    """Continue a varint prefix from ``data[position[0]:end]``; report how it stands."""
    cdef unsigned char byte
    while position[0] < end:
        byte = data[position[0]]
        position[0] += 1
        value[0] |= (<unsigned long long>(byte & 0x7F)) << (7 * length[0])
        length[0] += 1
        if byte < 0x80:
            if byte == 0 and length[0] > 1:
                return _PREFIX_NON_MINIMAL
            return _PREFIX_COMPLETE
        if length[0] == _MAX_PREFIX_LENGTH:
            return _PREFIX_TOO_LONG
    return _PREFIX_INCOMPLETE


cdef Py_ssize_t _write_varint(unsigned char* out, unsigned long long value) noexcept nogil:
    """Write the minimal unsigned LEB128 encoding of ``value``; return its length."""
    cdef Py_ssize_t length = 0
    while value >= 0x80:
        out[length] = <unsigned char>((value & 0x7F) | 0x80)
        value >>= 7
        length += 1
    out[length] = <unsigned char>value
    return length + 1


cdef Py_ssize_t _checked_max_frame_size(object value) except -1:
    """Return ``value`` if it is a valid ``max_frame_size``, else raise ConfigurationError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(
            f"max_frame_size must be an int, not {type(value).__name__}",
            details={"max_frame_size": value},
        )
    if not 1 <= value <= MAX_FRAME_SIZE_LIMIT:
        raise ConfigurationError(
            f"max_frame_size must be between 1 and {MAX_FRAME_SIZE_LIMIT}, got {value}",
            details={"max_frame_size": value},
        )
    return value


cdef bytes _prefix_bytes(unsigned long long value, int length, bint last_continues):
    """Rebuild the ``length`` prefix bytes read so far from their accumulated ``value``."""
    cdef unsigned char out[_MAX_PREFIX_LENGTH]
    cdef int index
    for index in range(length):
        out[index] = <unsigned char>(((value >> (7 * index)) & 0x7F) | 0x80)
    if not last_continues:
        out[length - 1] &= 0x7F
    return PyBytes_FromStringAndSize(<char*>out, length)


cdef object _non_minimal_error(unsigned long long value, int length):
    prefix = _prefix_bytes(value, length, False)
    return MalformedFrameError(
        f"length prefix {prefix.hex(' ')} is not a minimal varint: "
        "it ends in a 0x00 byte after a continuation byte",
        details={"prefix": prefix},
    )


cdef object _too_long_error(unsigned long long value):
    prefix = _prefix_bytes(value, _MAX_PREFIX_LENGTH, True)
    return MalformedFrameError(
        f"length prefix {prefix.hex(' ')} ... is longer than {_MAX_PREFIX_LENGTH} bytes",
        details={"prefix": prefix},
    )


cdef object _replay(error):
    """A fresh copy of a stored error, so repeated raises do not grow one traceback."""
    if isinstance(error, FrameTooLargeError):
        return FrameTooLargeError(error.size, error.limit)
    return MalformedFrameError(error.message, details=error.details)
