# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Fast encoding and decoding of the qualifying wire messages, compiled twin.

Same contract, same results and the same hand-back rules as
:mod:`omega.protocol._codec_py` (the reference, which documents them): ``None``
means "take betterproto2's path". Tests pin both to each other and to
betterproto2 on random messages and random bytes.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_Copy
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.string cimport memcpy

from omega.protocol._codec_schema import describe


cdef extern from "Python.h":
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)
    const char* PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t *size) except NULL
    bint PyBytes_CheckExact(object o)
    bint PyUnicode_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyList_CheckExact(object o)
    bint PyFloat_CheckExact(object o)
    double PyFloat_AS_DOUBLE(object o)
    # Public since Python 3.11; the very functions struct (and so betterproto2) uses.
    int PyFloat_Pack4(double x, char* p, int le) except -1
    int PyFloat_Pack8(double x, char* p, int le) except -1
    double PyFloat_Unpack4(const char* p, int le) except? -1.0
    double PyFloat_Unpack8(const char* p, int le) except? -1.0


__all__ = ["MAX_NESTING_DEPTH", "decode", "encode"]

MAX_NESTING_DEPTH = 32

cdef enum:
    K_STRING = 1
    K_BYTES = 2
    K_MESSAGE = 3
    K_BOOL = 4
    K_ENUM = 5
    K_INT32 = 6
    K_INT64 = 7
    K_UINT32 = 8
    K_UINT64 = 9
    K_DOUBLE = 10
    K_FIXED64 = 11
    K_SFIXED64 = 12
    K_FLOAT = 13
    K_FIXED32 = 14
    K_SFIXED32 = 15

cdef enum:
    HAND_BACK = 1


cdef class _Field:
    cdef int index, number, kind, group
    cdef bint optional, repeated
    cdef object name
    cdef object child_cls
    cdef dict enum_members


cdef class _Table:
    cdef object cls
    cdef object new
    cdef list fields
    cdef list by_number
    cdef Py_ssize_t max_number
    cdef dict template
    cdef tuple repeated


cdef dict _tables = {}


cdef _Table _table(object cls):
    cdef _Table table
    cdef _Field field
    try:
        return _tables[cls]
    except KeyError:
        pass
    specs = describe(cls)
    if specs is None:
        _tables[cls] = None
        return None
    table = _Table()
    table.cls = cls
    table.new = cls.__new__
    table.fields = []
    table.max_number = max([spec.number for spec in specs] or [0])
    table.by_number = [None] * (table.max_number + 1)
    table.template = {}
    repeated = []
    for spec in specs:
        field = _Field()
        field.index = spec.index
        field.number = spec.number
        field.kind = spec.kind
        field.group = spec.group
        field.optional = spec.optional
        field.repeated = spec.repeated
        field.name = spec.name
        field.child_cls = spec.child
        field.enum_members = spec.enum_members
        table.fields.append(field)
        table.by_number[spec.number] = field
        table.template[spec.name] = spec.default
        if spec.repeated:
            repeated.append(spec.name)
    table.template["_unknown_fields"] = b""
    table.repeated = tuple(repeated)
    _tables[cls] = table
    return table


# --- decoding -----------------------------------------------------------------------------

cdef inline int _varint(const unsigned char* data, Py_ssize_t* pos, Py_ssize_t end,
                        uint64_t* out) noexcept nogil:
    cdef uint64_t result = 0
    cdef unsigned int shift = 0
    cdef unsigned char byte
    cdef Py_ssize_t p = pos[0]
    while True:
        if p >= end:
            return HAND_BACK
        byte = data[p]
        p += 1
        if shift == 63 and byte > 1:
            return HAND_BACK
        result |= (<uint64_t>(byte & 0x7F)) << shift
        if byte < 0x80:
            pos[0] = p
            out[0] = result
            return 0
        shift += 7


cdef inline int _body(const unsigned char* data, Py_ssize_t* pos, Py_ssize_t end,
                      Py_ssize_t* start) noexcept nogil:
    """A length-delimited body at ``pos``: its start in ``start``, ``pos`` moved past it."""
    cdef uint64_t length
    if _varint(data, pos, end, &length) or length > <uint64_t>(end - pos[0]):
        return HAND_BACK
    start[0] = pos[0]
    pos[0] += <Py_ssize_t>length
    return 0


cdef object _convert(_Field field, uint64_t raw):
    cdef int kind = field.kind
    if kind == K_UINT64:
        return raw
    if kind == K_UINT32:
        return <uint32_t>raw
    if kind == K_BOOL:
        return raw > 0
    if kind == K_INT32:
        return <int32_t><uint32_t>raw
    if kind == K_INT64:
        return <int64_t>raw
    return field.enum_members.get(<int64_t>raw)  # None: not a named value


cdef inline uint64_t _load_le(const unsigned char* p, int width) noexcept nogil:
    cdef uint64_t result = 0
    cdef int i
    for i in range(width - 1, -1, -1):
        result = (result << 8) | p[i]
    return result


cdef object _fixed(int kind, const unsigned char* p):
    if kind == K_DOUBLE:
        return PyFloat_Unpack8(<const char*>p, 1)
    if kind == K_FLOAT:
        return PyFloat_Unpack4(<const char*>p, 1)
    if kind == K_FIXED64:
        return _load_le(p, 8)
    if kind == K_SFIXED64:
        return <int64_t>_load_le(p, 8)
    if kind == K_FIXED32:
        return <uint32_t>_load_le(p, 4)
    return <int32_t><uint32_t>_load_le(p, 4)


cdef object _decode(_Table table, const unsigned char* data, Py_ssize_t pos, Py_ssize_t end,
                    int depth):
    cdef dict values
    cdef uint64_t tag, raw, seen = 0, groups_seen = 0, bit
    cdef Py_ssize_t start, number
    cdef _Field field
    cdef _Table child
    cdef int kind, width
    if depth < 0:
        return None
    values = PyDict_Copy(table.template)
    for name in table.repeated:
        values[name] = []
    while pos < end:
        if _varint(data, &pos, end, &tag):
            return None
        if tag >> 3 > <uint64_t>table.max_number:
            return None
        number = <Py_ssize_t>(tag >> 3)
        entry = table.by_number[number]
        if entry is None:
            return None
        field = <_Field>entry
        kind = field.kind
        if field.repeated and K_INT32 <= kind <= K_UINT64:
            # Packed integers: exactly one chunk of whole varints (else betterproto2's rules).
            bit = (<uint64_t>1) << field.index
            if tag & 7 != 2 or seen & bit:
                return None
            seen |= bit
            if _body(data, &pos, end, &start):
                return None
            items = values[field.name]
            while start < pos:
                if _varint(data, &start, pos, &raw):
                    return None
                items.append(_convert(field, raw))
            continue
        if kind <= K_MESSAGE:
            if tag & 7 != 2:
                return None
            if _body(data, &pos, end, &start):
                return None
            if kind == K_BYTES:
                value = PyBytes_FromStringAndSize(<const char*>data + start, pos - start)
            elif kind == K_STRING:
                try:
                    value = PyUnicode_DecodeUTF8(<const char*>data + start, pos - start, NULL)
                except UnicodeDecodeError:
                    return None
            else:
                child = _table(field.child_cls)
                value = _decode(child, data, start, pos, depth - 1)
                if value is None:
                    return None
        elif kind >= K_DOUBLE:
            width = 8 if kind < K_FLOAT else 4
            if tag & 7 != (1 if kind < K_FLOAT else 5):
                return None
            if end - pos < width:
                return None
            value = _fixed(kind, data + pos)
            pos += width
        else:
            if tag & 7 != 0:
                return None
            if _varint(data, &pos, end, &raw):
                return None
            value = _convert(field, raw)
            if value is None:
                return None
        if field.repeated:
            values[field.name].append(value)
            continue
        if field.group:
            bit = (<uint64_t>1) << field.group
            if groups_seen & bit:
                return None
            groups_seen |= bit
        else:
            bit = (<uint64_t>1) << field.index
            if seen & bit:
                return None
            seen |= bit
        values[field.name] = value
    instance = table.new(table.cls)
    instance.__dict__ = values
    return instance


def decode(cls, bytes data, int max_depth=32):
    """Decode ``data`` as ``cls``, or return ``None`` to hand it to the reference path."""
    cdef _Table table = _table(cls)
    if table is None:
        return None
    return _decode(table, <const unsigned char*>PyBytes_AS_STRING(data), 0,
                   PyBytes_GET_SIZE(data), max_depth)


# --- encoding -----------------------------------------------------------------------------

cdef struct _Buffer:
    unsigned char* data
    Py_ssize_t size
    Py_ssize_t capacity


cdef int _reserve(_Buffer* out, Py_ssize_t extra) except -1:
    cdef Py_ssize_t capacity
    cdef unsigned char* grown
    if out.size + extra <= out.capacity:
        return 0
    capacity = max(out.capacity * 2, out.size + extra, 256)
    grown = <unsigned char*>PyMem_Realloc(out.data, capacity)
    if grown == NULL:
        raise MemoryError()
    out.data = grown
    out.capacity = capacity
    return 0


cdef inline int _put_varint(_Buffer* out, uint64_t value) except -1:
    _reserve(out, 10)
    while value > 0x7F:
        out.data[out.size] = <unsigned char>((value & 0x7F) | 0x80)
        out.size += 1
        value >>= 7
    out.data[out.size] = <unsigned char>value
    out.size += 1
    return 0


cdef int _put_len(_Buffer* out, int number, const char* body, Py_ssize_t length) except -1:
    _put_varint(out, (<uint64_t>number) << 3 | 2)
    _put_varint(out, <uint64_t>length)
    _reserve(out, length)
    if length:
        memcpy(out.data + out.size, body, length)
    out.size += length
    return 0


cdef int _put_integer(_Buffer* out, _Field field, object value) except -1:
    cdef uint64_t unsigned_value
    if _integer(field, value, &unsigned_value):
        return HAND_BACK
    _put_varint(out, (<uint64_t>field.number) << 3)
    _put_varint(out, unsigned_value)
    return 0


cdef int _put_packed(_Buffer* out, _Field field, list items) except -1:
    """A repeated integer field as proto3 writes it: one chunk of varints, none if empty."""
    cdef _Buffer body
    cdef uint64_t unsigned_value
    if not items:
        return 0
    body.data = NULL
    body.size = body.capacity = 0
    try:
        for item in items:
            if field.kind == K_ENUM or _integer(field, item, &unsigned_value):
                return HAND_BACK
            _put_varint(&body, unsigned_value)
        _put_len(out, field.number, <const char*>body.data, body.size)
    finally:
        PyMem_Free(body.data)
    return 0


cdef int _integer(_Field field, object value, uint64_t* out) except -1:
    """The varint value of ``value`` for a bool, enum or integer field; HAND_BACK if none."""
    cdef int kind = field.kind
    cdef int64_t signed_value
    cdef uint64_t unsigned_value
    if kind == K_BOOL:
        if value is True:
            unsigned_value = 1
        elif value is False:
            unsigned_value = 0
        else:
            return HAND_BACK
    else:
        if not PyLong_CheckExact(value):
            if kind != K_ENUM or not isinstance(value, int) or isinstance(value, bool):
                return HAND_BACK
            if field.enum_members.get(int(value)) is not value:
                return HAND_BACK  # another enum's member
        try:
            if kind == K_UINT64 or kind == K_UINT32:
                unsigned_value = value
                if kind == K_UINT32 and unsigned_value > 0xFFFFFFFF:
                    return HAND_BACK
            else:
                signed_value = value
                if kind != K_INT64 and not -2147483648 <= signed_value <= 2147483647:
                    return HAND_BACK
                unsigned_value = <uint64_t>signed_value
        except OverflowError:
            return HAND_BACK
    out[0] = unsigned_value
    return 0


cdef int _put_fixed(_Buffer* out, _Field field, object value) except -1:
    cdef int kind = field.kind
    cdef int width = 8 if kind < K_FLOAT else 4
    cdef int i
    cdef int64_t signed_value
    cdef uint64_t unsigned_value = 0
    cdef unsigned char packed[8]
    if kind == K_DOUBLE or kind == K_FLOAT:
        if not PyFloat_CheckExact(value):
            return HAND_BACK
        try:
            if kind == K_DOUBLE:
                PyFloat_Pack8(PyFloat_AS_DOUBLE(value), <char*>packed, 1)
            else:
                PyFloat_Pack4(PyFloat_AS_DOUBLE(value), <char*>packed, 1)
        except OverflowError:  # beyond float32's range
            return HAND_BACK
    else:
        if not PyLong_CheckExact(value):
            return HAND_BACK
        try:
            if kind == K_FIXED64 or kind == K_FIXED32:
                unsigned_value = value
                if kind == K_FIXED32 and unsigned_value > 0xFFFFFFFF:
                    return HAND_BACK
            else:
                signed_value = value
                if kind == K_SFIXED32 and not -2147483648 <= signed_value <= 2147483647:
                    return HAND_BACK
                unsigned_value = <uint64_t>signed_value
        except OverflowError:
            return HAND_BACK
        for i in range(width):
            packed[i] = <unsigned char>(unsigned_value >> (8 * i))
    _put_varint(out, (<uint64_t>field.number) << 3 | (1 if kind < K_FLOAT else 5))
    _reserve(out, width)
    memcpy(out.data + out.size, packed, width)
    out.size += width
    return 0


cdef int _put_item(_Buffer* out, _Field field, object value) except -1:
    cdef const char* text
    cdef Py_ssize_t length
    cdef _Buffer child
    cdef int result
    if field.kind == K_BYTES:
        if not PyBytes_CheckExact(value):
            return HAND_BACK
        return _put_len(out, field.number, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))
    if field.kind == K_STRING:
        if not PyUnicode_CheckExact(value):
            return HAND_BACK
        try:
            text = PyUnicode_AsUTF8AndSize(value, &length)
        except UnicodeEncodeError:
            return HAND_BACK
        return _put_len(out, field.number, text, length)
    if field.kind == K_MESSAGE:
        if type(value) is not field.child_cls:
            return HAND_BACK
        child.data = NULL
        child.size = child.capacity = 0
        try:
            result = _encode_into(&child, value)
            if result == 0:
                _put_len(out, field.number, <const char*>child.data, child.size)
        finally:
            PyMem_Free(child.data)
        return result
    if field.kind >= K_DOUBLE:
        return _put_fixed(out, field, value)
    return _put_integer(out, field, value)


cdef bint _is_default(int kind, object value):
    if kind == K_STRING:
        return PyUnicode_CheckExact(value) and not value
    if kind == K_BYTES:
        return PyBytes_CheckExact(value) and not value
    if kind == K_BOOL:
        return value is False
    if kind == K_DOUBLE or kind == K_FLOAT:
        return PyFloat_CheckExact(value) and PyFloat_AS_DOUBLE(value) == 0.0
    return isinstance(value, int) and not isinstance(value, bool) and value == 0


cdef int _encode_into(_Buffer* out, object message) except -1:
    cdef _Table table = _table(type(message))
    cdef _Field field
    cdef dict values
    cdef int result
    if table is None:
        return HAND_BACK
    values = message.__dict__
    unknown = values.get("_unknown_fields", None)
    if unknown is None or unknown:
        return HAND_BACK
    for field in table.fields:
        value = values.get(field.name, values)
        if value is values:
            return HAND_BACK
        if value is None:
            continue
        if field.repeated:
            if not PyList_CheckExact(value):
                return HAND_BACK
            if K_INT32 <= field.kind <= K_UINT64:
                result = _put_packed(out, field, value)
                if result:
                    return result
                continue
            for item in value:
                result = _put_item(out, field, item)
                if result:
                    return result
            continue
        if not field.optional and _is_default(field.kind, value):
            continue
        result = _put_item(out, field, value)
        if result:
            return result
    return 0


def encode(message):
    """Encode ``message``, or return ``None`` to hand it to betterproto2."""
    cdef _Buffer out
    out.data = NULL
    out.size = out.capacity = 0
    try:
        if _encode_into(&out, message):
            return None
        return PyBytes_FromStringAndSize(<const char*>out.data, out.size)
    finally:
        PyMem_Free(out.data)
