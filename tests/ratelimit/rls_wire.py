"""Envoy's RLS v3 messages as raw protobuf bytes, written from the .proto field numbers (an
independent encoder: nothing here comes from the service's Rust code)."""

METHOD = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"
UNITS = {"second": 1, "minute": 2, "hour": 3, "day": 4}
UNIT_NAMES = {v: k for k, v in UNITS.items()}
CODES = {0: "UNKNOWN", 1: "OK", 2: "OVER_LIMIT"}


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len(field, payload):
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _int(field, n):
    return _varint(field << 3) + _varint(n)


def request(domain, descriptors, hits_addend=0):
    """descriptors: dicts with `entries` [(key, value)], optional `limit` (n, "minute"),
    optional `hits` (per-descriptor hits_addend)."""
    out = _len(1, domain.encode())
    for d in descriptors:
        body = b"".join(_len(1, _len(1, k.encode()) + _len(2, v.encode()))
                        for k, v in d["entries"])
        if d.get("limit"):
            n, unit = d["limit"]
            body += _len(2, _int(1, n) + _int(2, UNITS.get(unit, unit) if isinstance(unit, str)
                                              else unit))
        if d.get("hits") is not None:
            body += _len(3, _int(1, d["hits"]) if d["hits"] else b"")
        out += _len(2, body)
    if hits_addend:
        out += _int(3, hits_addend)
    return out


def _fields(buf):
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(buf, i)
        elif wire == 2:
            n, i = _read_varint(buf, i)
            value, i = buf[i:i + n], i + n
        else:
            raise ValueError(f"unexpected wire type {wire}")
        yield field, value


def _read_varint(buf, i):
    shift = n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def _status(buf):
    s = {"code": "UNKNOWN", "limit": None, "remaining": 0, "reset": None}
    for f, v in _fields(buf):
        if f == 1:
            s["code"] = CODES[v]
        elif f == 2:
            lim = dict(_fields(v))
            s["limit"] = (lim.get(1, 0), UNIT_NAMES.get(lim.get(2, 0), "unknown"))
        elif f == 3:
            s["remaining"] = v
        elif f == 4:
            s["reset"] = dict(_fields(v)).get(1, 0)
    return s


def response(buf):
    r = {"overall": "UNKNOWN", "statuses": [], "response_headers": []}
    for f, v in _fields(buf):
        if f == 1:
            r["overall"] = CODES[v]
        elif f == 2:
            r["statuses"].append(_status(v))
        elif f == 3:
            r["response_headers"].append(v)
    return r
