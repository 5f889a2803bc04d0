#!/usr/bin/env python3
"""Mock vendor server for sales_api's tests.

One HTTPS server on 127.0.0.1 that plays every vendor sales_api talks to,
with in-memory state, strict request validation and a control interface:

  /connect/token                                    Mapal identity (OAuth2 password / refresh_token grants)
  /mapal-sales/api/v1/business-unit/{id}/real-time-sales   Mapal Real-time Sales (POST, PUT, GET with body)
  /cashrec/api/v1/cashSheet                         Mapal Cashrec
  /connecteam/oauth/v1/token                        Connecteam OAuth2 (client credentials, HTTP Basic)
  /connecteam/sales/v1/...                          Connecteam Sales Data API (OpenAPI in shared/contracts)
  /_mock/...                                        control interface for the tests (JSON, no auth, not logged);
                                                    /_mock/tokens/issued lists every token value issued since start

Contract: shared/api-contracts.md and shared/contracts/connecteam-sales-openapi.json.
Python 3.11 standard library only.  Run with --help for the command line.

Everything here is deliberately STRICTER than the real vendors where the
contract leaves room, so that the C client is held to the documented request
shapes.  In particular the Connecteam endpoints reject unknown body fields and
unknown query parameters with a FastAPI-style 422 (type "extra_forbidden"),
although the real FastAPI service would silently ignore them, and they do not
coerce types (a float or bool is not an integer, a string is not a number).
"""

import argparse
import base64
import binascii
import datetime as dt
import decimal
import hashlib
import http.server
import json
import math
import re
import secrets
import select
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from decimal import Decimal

try:
    import zoneinfo
except ImportError:  # pragma: no cover
    zoneinfo = None

MAX_REQUEST_BODY = 32 * 1024 * 1024
LOG_BODY_MAX = 1024 * 1024
DEC_CTX = decimal.Context(prec=200)

# --------------------------------------------------------------------------
# JSON helpers: exact decimals in and out
# --------------------------------------------------------------------------


class JSONError(ValueError):
    pass


def _reject_constant(name):
    raise JSONError("invalid JSON constant %s" % name)


def _no_dup_pairs(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise JSONError("duplicate key %r" % k)
        d[k] = v
    return d


def jloads(data):
    """Parse JSON keeping every fraction exact (Decimal); NaN/Infinity and
    duplicate object keys are errors."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise JSONError("body is not UTF-8: %s" % e)
    if data.startswith("\ufeff"):
        raise JSONError("byte order mark not allowed")
    try:
        return json.loads(data, parse_float=Decimal, parse_constant=_reject_constant,
                          object_pairs_hook=_no_dup_pairs)
    except JSONError:
        raise
    except (json.JSONDecodeError, RecursionError) as e:
        raise JSONError(str(e))
    except ValueError as e:
        raise JSONError(str(e))


def dec_str(d):
    """Decimal -> plain decimal text, value-exact ('12.30', '-2.30', '100')."""
    if not d.is_finite():
        raise ValueError("non-finite decimal")
    return format(d, "f")


class _SlowPath(Exception):
    pass


_DEC_MARK = "\x00dec:"
_RE_DEC_MARK = re.compile(r'"\\u0000dec:([-0-9.]*)\\u0000"')


def _mark_decimals(o):
    """A copy of o for json's C encoder: every Decimal becomes a marked string
    that jdumps then unquotes.  Raises _SlowPath for anything the marks could
    make ambiguous (a string holding NUL, a key that is not a string, a
    subclass of a JSON type)."""
    t = type(o)
    if t is str:
        if "\x00" in o:
            raise _SlowPath()
        return o
    if t is dict:
        d = {}
        for k, v in o.items():
            if type(k) is not str or "\x00" in k:
                raise _SlowPath()
            d[k] = _mark_decimals(v)
        return d
    if t is list or t is tuple:
        return [_mark_decimals(v) for v in o]
    if t is Decimal:
        return _DEC_MARK + dec_str(o) + "\x00"
    if t is float:
        if not math.isfinite(o):
            raise ValueError("non-finite float")
        return o
    if o is None or o is True or o is False or t is int:
        return o
    raise _SlowPath()


def jdumps(o, indent=None, sort_keys=False):
    """JSON encoder that writes Decimal exactly (never through float).
    Compact output goes through json's C encoder, the same text as the
    Python walk below at a fraction of its time (a 100-transaction answer
    took the mock 1 ms of the GIL, which its concurrent requests wait for)."""
    if indent is None:
        try:
            marked = _mark_decimals(o)
        except _SlowPath:
            pass
        else:
            text = json.dumps(marked, separators=(",", ":"), sort_keys=sort_keys)
            return _RE_DEC_MARK.sub(r"\1", text)
    out = []

    def enc(o, level):
        if o is None:
            out.append("null")
        elif o is True:
            out.append("true")
        elif o is False:
            out.append("false")
        elif isinstance(o, Decimal):
            out.append(dec_str(o))
        elif isinstance(o, int):
            out.append(str(int(o)))
        elif isinstance(o, float):
            if not math.isfinite(o):
                raise ValueError("non-finite float")
            out.append(repr(o))
        elif isinstance(o, str):
            out.append(json.dumps(o))
        elif isinstance(o, dict):
            if not o:
                out.append("{}")
                return
            items = sorted(o.items()) if sort_keys else o.items()
            out.append("{")
            first = True
            for k, v in items:
                if not first:
                    out.append(",")
                first = False
                if indent is not None:
                    out.append("\n" + " " * (indent * (level + 1)))
                out.append(json.dumps(str(k)))
                out.append(": " if indent is not None else ":")
                enc(v, level + 1)
            if indent is not None:
                out.append("\n" + " " * (indent * level))
            out.append("}")
        elif isinstance(o, (list, tuple)):
            if not o:
                out.append("[]")
                return
            out.append("[")
            first = True
            for v in o:
                if not first:
                    out.append(",")
                first = False
                if indent is not None:
                    out.append("\n" + " " * (indent * (level + 1)))
                enc(v, level + 1)
            if indent is not None:
                out.append("\n" + " " * (indent * level))
            out.append("]")
        else:
            raise TypeError("cannot encode %r" % type(o))

    enc(o, 0)
    return "".join(out)


def money_strings(o):
    """Deep copy with every Decimal turned into its exact decimal string."""
    if isinstance(o, Decimal):
        return dec_str(o)
    if isinstance(o, dict):
        return {k: money_strings(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [money_strings(v) for v in o]
    return o


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v):
    return (is_int(v) or isinstance(v, Decimal)) and not isinstance(v, bool) and \
        (not isinstance(v, Decimal) or v.is_finite())


def to_dec(v):
    return v if isinstance(v, Decimal) else Decimal(v)


RE_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
RE_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
RE_JSON_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$")
RE_QUERY_INT = re.compile(r"^-?\d+$")


def parse_date(s):
    if not isinstance(s, str) or not RE_DATE.match(s):
        return None
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        return None


def parse_datetime(s):
    if not isinstance(s, str) or not RE_DATETIME.match(s):
        return None
    try:
        return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def make_jwt_like(claims):
    """An opaque token that looks like a JWT (header.payload.signature)."""
    header = b64url(b'{"alg":"RS256","typ":"JWT"}')
    payload = b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    sig = b64url(secrets.token_bytes(32))
    return "%s.%s.%s" % (header, payload, sig)


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------

DEFAULT_CONFIG = {
    "mapal_token_ttl": 3600,
    "mapal_users": {"pos-user": "pos-pass"},
    "mapal_clients": {"wf_wap_tp": "mapal-secret"},
    "mapal_invalid_client_status": 400,
    "mapal_scope": "openid offline_access sales cashrec",
    "mapal_slot_minutes": 15,
    "mapal_units": {
        "1001": {"currencies": ["EUR"], "salesTypes": ["EAT_IN", "TAKE", "DELIVERY"]},
        "1002": {"currencies": ["EUR"], "salesTypes": ["EAT_IN", "TAKE", "DELIVERY"]},
        "1003": {"currencies": ["EUR"], "salesTypes": ["EAT_IN", "TAKE", "DELIVERY"]},
    },
    "mapal_sales_empty_204": False,
    "mapal_accept_string_numbers": False,
    "cashrec_centers": [101, 102, 103, 104, 105],
    "connecteam_api_keys": ["ct-key-123"],
    "connecteam_clients": {"ct-client": "ct-secret"},
    "connecteam_client_scopes": ["sales_data.read", "sales_data.write", "sales_data.delete"],
    "connecteam_token_ttl": 3600,
    "connecteam_minute_limit": 100000,
    "connecteam_day_limit": 1000000,
    "connecteam_window_seconds": 60,
    "connecteam_timezone": "UTC",
    "connecteam_unique_location_names": False,
    "latency_ms": 0,
    "answer_ms": 0,
    "never_end_max_seconds": 120,
}


def _check_str_list(v):
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _check_str_map(v):
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())


def _check_units(v):
    if not isinstance(v, dict):
        return False
    for k, u in v.items():
        if not re.fullmatch(r"-?\d+", str(k)) or not isinstance(u, dict):
            return False
        if set(u) - {"currencies", "salesTypes"}:
            return False
        if not _check_str_list(u.get("currencies", [])) or not _check_str_list(u.get("salesTypes", [])):
            return False
    return True


def _check_tz(v):
    return isinstance(v, str) and get_tz(v) is not None


def _int_check(lo, hi=None):
    return lambda v: is_int(v) and v >= lo and (hi is None or v <= hi)


CONFIG_CHECKS = {
    "mapal_token_ttl": _int_check(0),
    "mapal_users": _check_str_map,
    "mapal_clients": _check_str_map,
    "mapal_invalid_client_status": lambda v: v in (400, 401),
    "mapal_scope": lambda v: isinstance(v, str),
    "mapal_slot_minutes": _int_check(1, 1440),
    "mapal_units": _check_units,
    "mapal_sales_empty_204": lambda v: isinstance(v, bool),
    "mapal_accept_string_numbers": lambda v: isinstance(v, bool),
    "cashrec_centers": lambda v: isinstance(v, list) and all(is_int(x) for x in v),
    "connecteam_api_keys": _check_str_list,
    "connecteam_clients": _check_str_map,
    "connecteam_client_scopes": _check_str_list,
    "connecteam_token_ttl": _int_check(0),
    "connecteam_minute_limit": _int_check(0),
    "connecteam_day_limit": _int_check(0),
    "connecteam_window_seconds": _int_check(1),
    "connecteam_timezone": _check_tz,
    "connecteam_unique_location_names": lambda v: isinstance(v, bool),
    "latency_ms": _int_check(0, 600000),
    "answer_ms": _int_check(0, 600000),
    "never_end_max_seconds": _int_check(1, 3600),
}


def get_tz(name):
    if name.upper() in ("UTC", "Z", "GMT"):
        return dt.timezone.utc
    m = re.fullmatch(r"([+-])(\d{2}):(\d{2})", name)
    if m:
        off = dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        return dt.timezone(off if m.group(1) == "+" else -off)
    if zoneinfo is None:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except Exception:
        return None


# --------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------

class Resp:
    """A response to send; handlers build these instead of writing to the
    socket so that faults can replace, delay or swallow them."""

    def __init__(self, status, body=b"", ctype="application/json", headers=None,
                 stream=None, length=None, close=False):
        self.status = status
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.body = body
        self.ctype = ctype
        self.headers = list(headers or [])
        self.stream = stream      # iterable of bytes chunks (then length is required)
        self.length = length
        self.close = close


def jresp(status, obj, headers=None):
    return Resp(status, jdumps(obj), "application/json; charset=utf-8", headers)


def problem(status, title, errors=None, type_=None):
    types = {
        400: "https://tools.ietf.org/html/rfc7231#section-6.5.1",
        401: "https://tools.ietf.org/html/rfc7235#section-3.1",
        404: "https://tools.ietf.org/html/rfc7231#section-6.5.4",
        405: "https://tools.ietf.org/html/rfc7231#section-6.5.5",
        415: "https://tools.ietf.org/html/rfc7231#section-6.5.13",
        500: "https://tools.ietf.org/html/rfc7231#section-6.6.1",
    }
    body = {"type": type_ or types.get(status, "about:blank"), "title": title, "status": status}
    if errors is not None:
        body["errors"] = errors
    body["traceId"] = "00-%s-%s-00" % (secrets.token_hex(16), secrets.token_hex(8))
    return Resp(status, jdumps(body), "application/problem+json; charset=utf-8")


REASONS = http.server.BaseHTTPRequestHandler.responses


def reason(status):
    r = REASONS.get(status)
    return r[0] if r else "Error"


# --------------------------------------------------------------------------
# Request wrapper
# --------------------------------------------------------------------------

class Req:
    def __init__(self, method, path, query, headers, body, scheme, port):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers          # email.message.Message (case-insensitive get)
        self.body = body
        self.scheme = scheme
        self.port = port
        self.request_id = str(uuid.uuid4())
        self.log_entry = None           # its entry in the request log (vendor requests)

    def header(self, name):
        return self.headers.get(name)

    def ctype(self):
        v = self.headers.get("Content-Type") or ""
        return v.split(";")[0].strip().lower()

    def query_pairs(self):
        return urllib.parse.parse_qsl(self.query, keep_blank_values=True)


# --------------------------------------------------------------------------
# Application state
# --------------------------------------------------------------------------

FAULT_ACTIONS = ("status", "status_after", "delay", "hold", "hang", "drop_before", "drop_after", "malformed",
                 "wrong_shape", "html", "empty", "oversized", "redirect", "never_end")

# A held request waits for /_mock/release (or a reset) before it is processed;
# this long at most (a test that forgets to release it does not hang the mock).
# A hanging request ("hang": a vendor that never answers) waits, unprocessed,
# until its client gives up and closes the connection (its request timeout),
# or a release or reset, or this long at most; then its connection is dropped
# and nothing is stored.
HOLD_MAX_SECONDS = 300

SALE_TYPES = ["SALE", "VOID", "RECALL", "REFUND", "SPLIT", "UPDATE", "TRANSFER", "FLOAT",
              "TRANSITORY", "CROSS_BL", "CANCEL", "MANUAL"]

CT_SCOPE_FOR = {"GET": "sales_data.read", "POST": "sales_data.write",
                "PUT": "sales_data.write", "DELETE": "sales_data.delete"}

CT_ERR_UNAUTHORIZED = 1000
CT_ERR_INVALID_PARAMS = 1001
CT_ERR_DUPLICATE_DATES = 1002
CT_ERR_SCOPE = 1003
CT_ERR_LOCATION_NOT_FOUND = 1004
CT_ERR_TRANSACTION_NOT_FOUND = 1005
CT_ERR_LOCATION_EXISTS = 1006
CT_ERR_RATE_LIMIT = 1029


class App:
    def __init__(self):
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.seq = 0            # log sequence; NOT reset by /_mock/reset so marks stay valid
        self.issued = []        # every token value ever issued; NOT reset (the secrets check greps for them)
        self.inflight = 0       # vendor requests being answered now (a delayed one outlives a reset)
        self.held = 0           # requests a "hold" fault keeps waiting now
        self.hanging = 0        # requests a "hang" fault keeps waiting now (until their client gives up)
        self.release_gen = 0    # bumped by /_mock/release and /_mock/reset: held requests go on
        self.hold_cv = threading.Condition(self.lock)
        self.reset()

    # ---- state -----------------------------------------------------------
    def reset(self):
        with self.lock:
            if hasattr(self, "hold_cv"):
                self.release_held()
            self.config = json.loads(json.dumps(DEFAULT_CONFIG))
            self.tokens = {}            # token -> info dict
            self.mapal_sales = {}       # (unit, day, cur, st, slot) -> dict
            self.ct_locations = {}      # id -> {"id","name","isActive"}
            self.ct_next_location = 1
            self.ct_transactions = {}   # transactionId -> dict (insertion ordered)
            self.ct_projected = {}      # (locationId, date) -> Decimal
            self.ct_buckets = {}        # account -> rate-limit counters
            self.cashrec_seeded = {}    # (centerId, businessDay) -> [records]
            self.faults = []
            self.fault_next_id = 1
            self.log = []

    def release_held(self):
        """Let every request a "hold" fault keeps waiting go on (processed as usual);
        end every request a "hang" fault keeps waiting (dropped, not processed)."""
        with self.lock:
            n = self.held + self.hanging
            self.release_gen += 1
            self.hold_cv.notify_all()
            return n

    def hold(self):
        """Called by a request with a "hold" fault: wait for the next release."""
        deadline = time.monotonic() + HOLD_MAX_SECONDS
        with self.lock:
            gen = self.release_gen
            self.held += 1
            try:
                while self.release_gen == gen and not self.stopping.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self.hold_cv.wait(min(left, 1.0))
            finally:
                self.held -= 1

    def hang(self, sock):
        """Called by a request with a "hang" fault: answer nothing until the client
        closes the connection (it has given up: its timeout), a release or reset,
        HOLD_MAX_SECONDS, or the mock stops.  -> why it ended: "gone", "released",
        "expired" or "stopping".  A client waiting for its answer sends nothing
        more (no pipelining), so a readable socket means it closed (FIN, or TLS
        close_notify)."""
        deadline = time.monotonic() + HOLD_MAX_SECONDS
        with self.lock:
            gen = self.release_gen
            self.hanging += 1
        try:
            while True:
                if self.stopping.is_set():
                    return "stopping"
                with self.lock:
                    if self.release_gen != gen:
                        return "released"
                left = deadline - time.monotonic()
                if left <= 0:
                    return "expired"
                try:
                    r, _, _ = select.select([sock], [], [], min(left, 0.1))
                except (OSError, ValueError):
                    return "gone"
                if r:
                    return "gone"
        finally:
            with self.lock:
                self.hanging -= 1

    def cfg(self, key):
        with self.lock:
            return self.config[key]

    # ---- logging ---------------------------------------------------------
    def log_start(self, req, client):
        hdrs = {}
        for k, v in req.headers.items():
            lk = k.lower()
            if lk in ("authorization", "proxy-authorization", "x-api-key", "cookie"):
                v = "<redacted:%d chars>" % len(v)
            hdrs[lk] = v if lk not in hdrs else hdrs[lk] + ", " + v
        body = req.body[:LOG_BODY_MAX].decode("utf-8", "replace")
        if len(req.body) > LOG_BODY_MAX:
            body += "...<truncated %d bytes>" % (len(req.body) - LOG_BODY_MAX)
        if req.ctype() == "application/x-www-form-urlencoded" or req.path.endswith("/token"):
            body = redact_form(body)
        with self.lock:
            self.seq += 1
            entry = {"seq": self.seq, "ts": round(time.time(), 6), "method": req.method,
                     "path": req.path, "query": req.query, "headers": hdrs,
                     "auth": auth_kind(req), "body": body, "status": None,
                     "dropped": False, "fault": None, "scheme": req.scheme, "ms": None,
                     # when the request was done (wall clock): "ts" is taken
                     # once its body was read, "ms" counts from before that,
                     # so "end" - "ms" is when it came
                     "end": None,
                     # Connecteam: the rate-limit account charged (never the key
                     # itself: "key#N" is its index in connecteam_api_keys) and
                     # the start of the window the request fell in, and that
                     # window's count of requests let through after it
                     "rl_account": None, "rl_window": None, "rl_count": None,
                     # the client's source port: the same port on two requests
                     # means the client reused (kept alive) the connection
                     "conn": client[1] if client and len(client) > 1 else None}
            self.log.append(entry)
            return entry

    def log_finish(self, entry, status, t0, dropped=False):
        with self.lock:
            entry["status"] = status
            entry["dropped"] = dropped
            entry["ms"] = round((time.monotonic() - t0) * 1000.0, 1)
            entry["end"] = round(time.time(), 6)

    # ---- faults ----------------------------------------------------------
    def take_fault(self, method, path):
        with self.lock:
            for rule in self.faults:
                if rule["method"] and rule["method"] != method:
                    continue
                if not rule["_re"].search(path):
                    continue
                rule["remaining"] -= 1
                if rule["remaining"] <= 0:
                    self.faults.remove(rule)
                return dict(rule)
        return None

    # ---- tokens ----------------------------------------------------------
    def issue_token(self, vendor, kind, ttl, **info):
        now = time.time()
        claims = {"iss": "mock-%s" % vendor, "typ": kind, "jti": secrets.token_hex(16),
                  "iat": int(now), "exp": int(now + ttl) if ttl is not None else 0}
        if info.get("client"):
            claims["client_id"] = info["client"]
        tok = make_jwt_like(claims)
        with self.lock:
            self.issued.append(tok)
            self.tokens[tok] = dict(info, vendor=vendor, kind=kind, issued=now,
                                    exp=(now + ttl) if ttl is not None else None,
                                    expired=False, revoked=False, used=False)
        return tok

    def check_access_token(self, vendor, tok):
        """-> (info, None) or (None, reason)"""
        with self.lock:
            info = self.tokens.get(tok)
            if info is None or info["vendor"] != vendor or info["kind"] != "access":
                return None, "invalid_token"
            if info["revoked"]:
                return None, "token_revoked"
            if info["expired"] or (info["exp"] is not None and time.time() >= info["exp"]):
                return None, "token_expired"
            return info, None


def redact_form(body):
    def sub(m):
        val = urllib.parse.unquote_plus(m.group(3))
        return "%s%s=<redacted:%d chars>" % (m.group(1), m.group(2), len(val))
    body = re.sub(r"(^|&)(password|client_secret|refresh_token|access_token|assertion|code)=([^&]*)",
                  sub, body)

    def jsub(m):            # the same names in a JSON body
        return '%s"<redacted:%d chars>"' % (m.group(1), len(m.group(2)))
    return re.sub(r'("(?:password|client_secret|refresh_token|access_token)"\s*:\s*)"((?:[^"\\]|\\.)*)"',
                  jsub, body)


def auth_kind(req):
    if req.header("X-API-KEY") is not None:
        return "api_key"
    a = (req.header("Authorization") or "").strip()
    if a[:7].lower() == "bearer ":
        return "bearer"
    if a[:6].lower() == "basic ":
        return "basic"
    if a:
        return "other"
    return "none"


# --------------------------------------------------------------------------
# Mapal identity: POST /connect/token
# --------------------------------------------------------------------------

def oauth_error(status, error, description=None, headers=None):
    body = {"error": error}
    if description:
        body["error_description"] = description
    h = [("Cache-Control", "no-store"), ("Pragma", "no-cache")] + list(headers or [])
    return jresp(status, body, h)


def parse_form(req):
    """-> (dict, None) or (None, message).  Duplicate names are an error."""
    try:
        text = req.body.decode("utf-8")
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                                       errors="strict")
    except (UnicodeDecodeError, ValueError) as e:
        return None, "malformed form body: %s" % e
    d = {}
    for k, v in pairs:
        if k in d:
            return None, "parameter %s given more than once" % k
        d[k] = v
    return d, None


def mapal_token(app, req):
    if req.method != "POST":
        return Resp(405, b"", headers=[("Allow", "POST")])
    if req.ctype() != "application/x-www-form-urlencoded":
        return oauth_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
    form, err = parse_form(req)
    if err:
        return oauth_error(400, "invalid_request", err)
    cfg = app.config
    with app.lock:
        clients = dict(cfg["mapal_clients"])
        users = dict(cfg["mapal_users"])
        ttl = cfg["mapal_token_ttl"]
        bad_client_status = cfg["mapal_invalid_client_status"]
        scope = cfg["mapal_scope"]
    cid, csecret = form.get("client_id"), form.get("client_secret")
    if not cid or cid not in clients or clients[cid] != csecret:
        return oauth_error(bad_client_status, "invalid_client")
    gt = form.get("grant_type")
    if gt == "password":
        known = {"grant_type", "username", "password", "client_id", "client_secret", "scope"}
        extra = sorted(set(form) - known)
        if extra:
            return oauth_error(400, "invalid_request", "unexpected parameter(s): %s" % ", ".join(extra))
        user, pw = form.get("username"), form.get("password")
        if not user or pw is None:
            return oauth_error(400, "invalid_request", "username and password are required")
        if users.get(user) != pw:
            return oauth_error(400, "invalid_grant", "invalid_username_or_password")
    elif gt == "refresh_token":
        known = {"grant_type", "refresh_token", "client_id", "client_secret", "scope"}
        extra = sorted(set(form) - known)
        if extra:
            return oauth_error(400, "invalid_request", "unexpected parameter(s): %s" % ", ".join(extra))
        rt = form.get("refresh_token")
        if not rt:
            return oauth_error(400, "invalid_request", "refresh_token is required")
        with app.lock:
            info = app.tokens.get(rt)
            if (info is None or info["vendor"] != "mapal" or info["kind"] != "refresh"
                    or info["revoked"] or info["used"] or info.get("client") != cid):
                return oauth_error(400, "invalid_grant", "invalid_refresh_token")
            info["used"] = True             # single use: rotates
            user = info.get("user")
    elif not gt:
        return oauth_error(400, "unsupported_grant_type", "grant_type is missing")
    else:
        return oauth_error(400, "unsupported_grant_type")
    access = app.issue_token("mapal", "access", ttl, client=cid, user=user)
    refresh = app.issue_token("mapal", "refresh", None, client=cid, user=user)
    return jresp(200, {"access_token": access, "expires_in": ttl, "token_type": "Bearer",
                       "refresh_token": refresh, "scope": scope},
                 [("Cache-Control", "no-store"), ("Pragma", "no-cache")])


def mapal_bearer(app, req):
    """-> None if authorised, else the 401 response."""
    a = (req.header("Authorization") or "").strip()
    if a[:7].lower() != "bearer " or not a[7:].strip():
        r = problem(401, "Unauthorized")
        r.headers.append(("WWW-Authenticate", "Bearer"))
        return r
    info, why = app.check_access_token("mapal", a[7:].strip())
    if info is None:
        desc = {"token_expired": "The token expired", "token_revoked": "The token was revoked"}.get(
            why, "The token is invalid")
        r = problem(401, "Unauthorized")
        r.headers.append(("WWW-Authenticate",
                          'Bearer error="invalid_token", error_description="%s"' % desc))
        return r
    return None


# --------------------------------------------------------------------------
# Mapal Real-time Sales
# --------------------------------------------------------------------------

SLOT_FIELDS = ("currencyId", "salesTypeId", "timeSlotStart", "netSales", "grossSales",
               "numChecks", "numGuests")


def mapal_sales(app, req, unit_raw):
    if req.method not in ("POST", "PUT", "GET"):
        return Resp(405, b"", headers=[("Allow", "GET, POST, PUT")])
    deny = mapal_bearer(app, req)
    if deny:
        return deny
    ct = req.ctype()
    if not (ct == "application/json" or (ct.startswith("application/") and ct.endswith("+json"))):
        return problem(415, "Unsupported Media Type")
    errors = {}

    def err(key, msg):
        errors.setdefault(key, []).append(msg)

    if not req.body.strip():
        return problem(400, "One or more validation errors occurred.",
                       {"": ["A non-empty request body is required."]})
    try:
        doc = jloads(req.body)
    except JSONError as e:
        return problem(400, "One or more validation errors occurred.", {"$": [str(e)]})
    with app.lock:
        units = json.loads(json.dumps(app.config["mapal_units"]))
        slot_minutes = app.config["mapal_slot_minutes"]
        accept_strings = app.config["mapal_accept_string_numbers"]
        empty_204 = app.config["mapal_sales_empty_204"]

    unit = None
    if re.fullmatch(r"-?\d{1,18}", unit_raw):
        unit = int(unit_raw)
        unit_cfg = units.get(str(unit))
        if unit_cfg is None:
            err("unitId", "Business unit %d not found." % unit)
    else:
        err("unitId", "The value '%s' is not valid." % unit_raw)
        unit_cfg = None

    if not isinstance(doc, dict):
        err("$", "The JSON value could not be converted to RealTimeSalesRequest.")
        return problem(400, "One or more validation errors occurred.", errors)
    for k in doc:
        if k not in ("businessDay", "realTimeSales"):
            err(k, "Unknown field '%s'." % k)
    bday = None
    if "businessDay" not in doc:
        err("businessDay", "The businessDay field is required.")
    else:
        bday = parse_date(doc["businessDay"])
        if bday is None:
            err("businessDay", "businessDay must be a date in the format yyyy-MM-dd.")
    slots = doc.get("realTimeSales")
    good = []
    if "realTimeSales" not in doc:
        err("realTimeSales", "The realTimeSales field is required.")
    elif not isinstance(slots, list):
        err("realTimeSales", "realTimeSales must be an array.")
    elif not slots:
        err("realTimeSales", "realTimeSales must contain at least one time slot.")
    else:
        seen = {}
        for i, s in enumerate(slots):
            p = "realTimeSales[%d]" % i
            if not isinstance(s, dict):
                err(p, "Each time slot must be an object.")
                continue
            ok = True
            bad = set()             # fields that failed structural validation
            for k in s:
                if k not in SLOT_FIELDS:
                    err("%s.%s" % (p, k), "Unknown field '%s'." % k)
                    ok = False
            for k in SLOT_FIELDS:
                if k not in s:
                    err("%s.%s" % (p, k), "The %s field is required." % k)
                    bad.add(k)
            for k in ("currencyId", "salesTypeId"):
                if k in s and (not isinstance(s[k], str) or not s[k]):
                    err("%s.%s" % (p, k), "%s must be a non-empty string." % k)
                    bad.add(k)
            slot = None
            if "timeSlotStart" in s:
                slot = parse_datetime(s["timeSlotStart"])
                if slot is None:
                    err("%s.timeSlotStart" % p,
                        "timeSlotStart must be a local date-time in the format yyyy-MM-ddTHH:mm:ss.")
                    bad.add("timeSlotStart")
            nums = {}
            json_numbers = True
            for k in ("netSales", "grossSales"):
                if k not in s:
                    continue
                v = s[k]
                if is_number(v):
                    nums[k] = to_dec(v)
                elif accept_strings and isinstance(v, str) and RE_JSON_NUMBER.match(v):
                    nums[k] = Decimal(v)
                    json_numbers = False
                else:
                    err("%s.%s" % (p, k), "%s must be a JSON number." % k)
                    bad.add(k)
            for k in ("numChecks", "numGuests"):
                if k in s:
                    v = s[k]
                    if not is_int(v) or v < 0 or v > 2147483647:
                        err("%s.%s" % (p, k), "%s must be an integer >= 0." % k)
                        bad.add(k)
            if bad:
                ok = False
            # semantic checks on whichever fields are well-formed
            if unit_cfg is not None and "currencyId" not in bad and \
                    s["currencyId"] not in unit_cfg.get("currencies", []):
                err("%s.currencyId" % p, "Currency '%s' is not configured for business unit %d."
                    % (s["currencyId"], unit))
                ok = False
            if unit_cfg is not None and "salesTypeId" not in bad and \
                    s["salesTypeId"] not in unit_cfg.get("salesTypes", []):
                err("%s.salesTypeId" % p, "Sales type '%s' is not configured for business unit %d."
                    % (s["salesTypeId"], unit))
                ok = False
            if slot is not None:
                if bday is not None and slot.date() != bday:
                    err("%s.timeSlotStart" % p, "timeSlotStart %s is outside businessDay %s."
                        % (s["timeSlotStart"], bday.isoformat()))
                    ok = False
                secs = slot.hour * 3600 + slot.minute * 60 + slot.second
                if secs % (slot_minutes * 60) != 0:
                    err("%s.timeSlotStart" % p, "timeSlotStart %s is not aligned to a %d-minute slot."
                        % (s["timeSlotStart"], slot_minutes))
                    ok = False
            if not ({"currencyId", "salesTypeId", "timeSlotStart"} & bad):
                key = (s["currencyId"], s["salesTypeId"], s["timeSlotStart"])
                if key in seen:
                    err("%s.timeSlotStart" % p, "Duplicate time slot (%s, %s, %s), already at realTimeSales[%d]."
                        % (key + (seen[key],)))
                    ok = False
                else:
                    seen[key] = i
            if ok:
                good.append((s, nums, json_numbers))
    if errors:
        return problem(400, "One or more validation errors occurred.", errors)
    with app.lock:
        for s, nums, jn in good:
            k = (unit, bday.isoformat(), s["currencyId"], s["salesTypeId"], s["timeSlotStart"])
            prev = app.mapal_sales.get(k)
            app.mapal_sales[k] = {"netSales": nums["netSales"], "grossSales": nums["grossSales"],
                                  "numChecks": s["numChecks"], "numGuests": s["numGuests"],
                                  "writes": (prev["writes"] + 1) if prev else 1,
                                  "jsonNumbers": jn}
    if empty_204:
        return Resp(204, b"", ctype=None)
    return jresp(200, {})


# --------------------------------------------------------------------------
# Mapal Cashrec
# --------------------------------------------------------------------------

CASHREC_BAD = {"code": 100, "message": "Invalid parameters. You must provide valid StartDate, EndDate and CenterLists."}


def cents(c):
    return Decimal(c).scaleb(-2)


def gen_cash_sheet(center, day, shift):
    h = hashlib.sha256(("%d|%s|%d" % (center, day.isoformat(), shift)).encode()).digest()

    def n(i, mod):
        return int.from_bytes(h[i:i + 4], "big") % mod
    gross = 40000 + n(0, 160000)                 # 400.00 .. 1999.99
    net = (gross * 10 + 5) // 11                 # gross / 1.10, rounded
    checks = 20 + n(4, 100)
    cash = gross * (15 + n(8, 40)) // 100
    card = gross - cash
    diff = (n(12, 1001) - 500) if n(16, 3) else 0
    counted = cash + diff
    opened = dt.datetime.combine(day, dt.time(8 if shift == 1 else 16, 0))
    closed = dt.datetime.combine(day, dt.time(16, 0) if shift == 1 else dt.time(23, 30))
    return {
        "centerId": center,
        "cashSheetId": "CS-%d-%s-%d" % (center, day.strftime("%Y%m%d"), shift),
        "businessDay": day.isoformat(),
        "shiftId": shift,
        "tillId": "T%d" % shift,
        "openedAt": opened.strftime("%Y-%m-%dT%H:%M:%S"),
        "closedAt": closed.strftime("%Y-%m-%dT%H:%M:%S"),
        "currencyId": "EUR",
        "netSales": cents(net),
        "grossSales": cents(gross),
        "numChecks": checks,
        "expectedCash": cents(cash),
        "countedCash": cents(counted),
        "difference": cents(counted - cash),
        "tenders": [{"paymentMethodId": "CASH", "name": "Cash", "amount": cents(cash)},
                    {"paymentMethodId": "CARD", "name": "Card", "amount": cents(card)}],
    }


def cashrec(app, req):
    if req.method != "GET":
        return Resp(405, b"", headers=[("Allow", "GET")])
    deny = mapal_bearer(app, req)
    if deny:
        return deny
    params = {}
    for k, v in req.query_pairs():
        lk = k.lower()
        if lk in params:
            return jresp(400, CASHREC_BAD)
        params[lk] = v
    start = parse_datetime(params.get("startdate"))
    end = parse_datetime(params.get("enddate"))
    centers_raw = params.get("centerslist")
    if start is None or end is None or centers_raw is None or end < start:
        return jresp(400, CASHREC_BAD)
    if not re.fullmatch(r"\d{1,18}(,\d{1,18})*", centers_raw):
        return jresp(400, CASHREC_BAD)
    centers = []
    for c in centers_raw.split(","):
        if int(c) not in centers:
            centers.append(int(c))
    with app.lock:
        known = set(app.config["cashrec_centers"])
        seeded = {k: [dict(r) for r in v] for k, v in app.cashrec_seeded.items()}
    rows = []
    for c in centers:
        for (sc, sday), recs in seeded.items():
            if sc != c:
                continue
            for r in recs:
                o = parse_datetime(r.get("openedAt"))
                if o is not None and start <= o <= end:
                    rows.append(r)
        if c in known:
            day = start.date()
            while day <= end.date():
                if (c, day.isoformat()) not in seeded:
                    for shift in (1, 2):
                        r = gen_cash_sheet(c, day, shift)
                        o = parse_datetime(r["openedAt"])
                        if start <= o <= end:
                            rows.append(r)
                day += dt.timedelta(days=1)
    rows.sort(key=lambda r: (r.get("centerId"), r.get("openedAt"), str(r.get("cashSheetId"))))
    return jresp(200, rows)


# --------------------------------------------------------------------------
# Connecteam
# --------------------------------------------------------------------------

class V:
    """Collects FastAPI/pydantic-v2 style validation errors."""

    def __init__(self):
        self.errors = []

    def add(self, loc, type_, msg):
        self.errors.append({"loc": list(loc), "msg": msg, "type": type_})

    # body (JSON) validators; each returns (ok, value)
    def int_(self, v, loc):
        if is_int(v):
            return True, v
        self.add(loc, "int_type", "Input should be a valid integer")
        return False, None

    def num(self, v, loc):
        if is_number(v):
            return True, to_dec(v)
        self.add(loc, "float_type", "Input should be a valid number")
        return False, None

    def str_(self, v, loc, min_len=0):
        if not isinstance(v, str):
            self.add(loc, "string_type", "Input should be a valid string")
            return False, None
        if len(v) < min_len:
            self.add(loc, "string_too_short", "String should have at least %d character%s"
                     % (min_len, "" if min_len == 1 else "s"))
            return False, None
        return True, v

    def bool_(self, v, loc):
        if isinstance(v, bool):
            return True, v
        self.add(loc, "bool_type", "Input should be a valid boolean")
        return False, None

    def enum(self, v, loc, values):
        if isinstance(v, str) and v in values:
            return True, v
        quoted = ["'%s'" % x for x in values]
        self.add(loc, "enum", "Input should be %s or %s" % (", ".join(quoted[:-1]), quoted[-1]))
        return False, None

    def obj(self, v, loc, fields, required):
        """fields: name -> fn(value, loc) -> (ok, value)"""
        if not isinstance(v, dict):
            self.add(loc, "model_attributes_type",
                     "Input should be a valid dictionary or object to extract fields from")
            return False, None
        ok = True
        out = {}
        for name, fn in fields.items():
            if name not in v:
                if name in required:
                    self.add(loc + [name], "missing", "Field required")
                    ok = False
                continue
            good, val = fn(v[name], loc + [name])
            ok = ok and good
            out[name] = val
        for name in v:
            if name not in fields:
                # stricter than FastAPI, which would ignore unknown fields
                self.add(loc + [name], "extra_forbidden", "Extra inputs are not permitted")
                ok = False
        return ok, out

    def list_(self, v, loc, item_fn, min_items=None, max_items=None):
        if not isinstance(v, list):
            self.add(loc, "list_type", "Input should be a valid list")
            return False, None
        if min_items is not None and len(v) < min_items:
            self.add(loc, "too_short", "List should have at least %d item%s after validation, not %d"
                     % (min_items, "" if min_items == 1 else "s", len(v)))
            return False, None
        if max_items is not None and len(v) > max_items:
            self.add(loc, "too_long", "List should have at most %d item%s after validation, not %d"
                     % (max_items, "" if max_items == 1 else "s", len(v)))
            return False, None
        ok = True
        out = []
        for i, item in enumerate(v):
            good, val = item_fn(item, loc + [i])
            ok = ok and good
            out.append(val)
        return ok, out

    # query/path parameter validators (string input)
    def q_int(self, s, loc, ge=None, le=None):
        if not RE_QUERY_INT.match(s):
            self.add(loc, "int_parsing", "Input should be a valid integer, unable to parse string as an integer")
            return False, None
        n = int(s)
        if ge is not None and n < ge:
            self.add(loc, "greater_than_equal", "Input should be greater than or equal to %d" % ge)
            return False, None
        if le is not None and n > le:
            self.add(loc, "less_than_equal", "Input should be less than or equal to %d" % le)
            return False, None
        return True, n

    def q_bool(self, s, loc):
        t = s.lower()
        if t in ("true", "1", "yes", "on", "t", "y"):
            return True, True
        if t in ("false", "0", "no", "off", "f", "n"):
            return True, False
        self.add(loc, "bool_parsing", "Input should be a valid boolean, unable to interpret input")
        return False, None


def ct_query(v, req, spec):
    """spec: name -> (kind, required, extra) with kind in int/bool/str/int_list/str_list.
    Unknown names and repeated scalar names are rejected (stricter than FastAPI)."""
    got = {}
    for k, val in req.query_pairs():
        got.setdefault(k, []).append(val)
    out = {}
    for name, (kind, required, opts) in spec.items():
        vals = got.get(name)
        loc = ["query", name]
        if vals is None:
            if required:
                v.add(loc, "missing", "Field required")
            continue
        if kind.endswith("_list"):
            res = []
            for i, s in enumerate(vals):
                if kind == "int_list":
                    ok, n = v.q_int(s, loc + [i])
                else:
                    ok, n = True, s
                if ok:
                    res.append(n)
            out[name] = res
            continue
        if len(vals) > 1:
            v.add(loc, "value_error", "Value error, query parameter given more than once")
            continue
        s = vals[0]
        if kind == "int":
            ok, n = v.q_int(s, loc, **opts)
        elif kind == "bool":
            ok, n = v.q_bool(s, loc)
        else:
            ok, n = True, s
        if ok:
            out[name] = n
    for name in got:
        if name not in spec:
            v.add(["query", name], "extra_forbidden", "Extra inputs are not permitted")
    return out


def ct_json_body(v, req):
    """-> parsed JSON or None (errors added)."""
    if not req.body:
        v.add(["body"], "missing", "Field required")
        return None
    ct = req.ctype()
    if ct != "application/json" and not (ct.startswith("application/") and ct.endswith("+json")):
        v.add(["body"], "model_attributes_type",
              "Input should be a valid dictionary or object to extract fields from")
        return None
    try:
        return jloads(req.body)
    except JSONError as e:
        v.add(["body", 0], "json_invalid", "JSON decode error: %s" % e)
        return None


class CT:
    """Connecteam request context."""

    def __init__(self, app, req, vpath):
        self.app = app
        self.req = req
        self.vpath = vpath

    def error(self, status, message, code):
        return jresp(status, {"error": reason(status), "path": self.vpath, "requestId": self.req.request_id,
                              "details": {"error_message": message, "error_code": code}})

    def ok(self, data, extra=None):
        body = {"requestId": self.req.request_id, "data": data}
        if extra:
            body.update(extra)
        return jresp(200, body)

    def v422(self, v):
        return jresp(422, {"detail": v.errors})


def ct_account(app, req):
    """-> (account, scopes or None, None) or (None, None, message)"""
    key = req.header("X-API-KEY")
    with app.lock:
        keys = list(app.config["connecteam_api_keys"])
    if key is not None:
        if key in keys:
            return "key:" + key, None, None
        return None, None, "Invalid API key"
    a = (req.header("Authorization") or "").strip()
    if a[:7].lower() == "bearer " and a[7:].strip():
        info, why = app.check_access_token("connecteam", a[7:].strip())
        if info is None:
            return None, None, {"token_expired": "Token expired", "token_revoked": "Token revoked"}.get(
                why, "Invalid token")
        return "client:" + info["client"], set(info.get("scope", "").split()), None
    return None, None, "Missing API key"


def account_label(app, account):
    """A name for an account that shows no secret: an API key by its index."""
    if account.startswith("key:"):
        keys = app.config["connecteam_api_keys"]
        k = account[4:]
        return "key#%d" % keys.index(k) if k in keys else "key#?"
    return account


def ct_ratelimit(app, account, charge, entry=None):
    """Fixed windows per account.  -> (allowed, headers, which_exceeded)
    A charged request's log entry gets the account, window and count."""
    now = time.time()
    with app.lock:
        cfg = app.config
        win = cfg["connecteam_window_seconds"]
        mlim = cfg["connecteam_minute_limit"]
        dlim = cfg["connecteam_day_limit"]
        b = app.ct_buckets.setdefault(account, {"win_start": None, "win_count": 0, "day": None, "day_count": 0})
        if b["win_start"] is None or now >= b["win_start"] + win:
            b["win_start"] = int(now)
            b["win_count"] = 0
        day = int(now // 86400)
        if b["day"] != day:
            b["day"] = day
            b["day_count"] = 0
        which = None
        if b["win_count"] >= mlim:
            which = "minute"
        elif b["day_count"] >= dlim:
            which = "day"
        if charge:
            if which is None:
                b["win_count"] += 1
                b["day_count"] += 1
            if entry is not None:
                entry["rl_account"] = account_label(app, account)
                entry["rl_window"] = b["win_start"]
                entry["rl_count"] = b["win_count"]
        hdrs = [("x-ratelimit-minute-limit", str(mlim)),
                ("x-ratelimit-minute-remaining", str(max(0, mlim - b["win_count"]))),
                ("x-ratelimit-minute-reset", str(b["win_start"] + win)),
                ("x-ratelimit-day-limit", str(dlim)),
                ("x-ratelimit-day-remaining", str(max(0, dlim - b["day_count"]))),
                ("x-ratelimit-day-reset", str((day + 1) * 86400))]
    return which is None, hdrs, which


def ct_oauth_token(app, req):
    if req.method != "POST":
        return jresp(405, {"detail": "Method Not Allowed"}, [("Allow", "POST")])
    a = (req.header("Authorization") or "").strip()
    www = [("WWW-Authenticate", 'Basic realm="connecteam"')]
    if a[:6].lower() != "basic ":
        return jresp(401, {"detail": "Not authenticated"}, www)
    try:
        raw = base64.b64decode(a[6:].strip(), validate=True).decode("utf-8")
        cid, csecret = raw.split(":", 1)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return jresp(401, {"detail": "Invalid authentication credentials"}, www)
    v = V()
    form = {}
    if req.body:
        if req.ctype() != "application/x-www-form-urlencoded":
            v.add(["body"], "model_attributes_type",
                  "Input should be a valid dictionary or object to extract fields from")
        else:
            form, err = parse_form(req)
            if err:
                v.add(["body"], "value_error", "Value error, %s" % err)
                form = {}
            for k in form:
                if k not in ("grant_type", "scope"):
                    v.add(["body", k], "extra_forbidden", "Extra inputs are not permitted")
    if v.errors:
        return jresp(422, {"detail": v.errors})
    with app.lock:
        clients = dict(app.config["connecteam_clients"])
        allowed = list(app.config["connecteam_client_scopes"])
        ttl = app.config["connecteam_token_ttl"]
    if clients.get(cid) != csecret:
        return oauth_error(401, "invalid_client", "Invalid client credentials", www)
    if form.get("grant_type", "client_credentials") != "client_credentials":
        return oauth_error(400, "unsupported_grant_type", "grant_type must be client_credentials")
    scope = form.get("scope")
    if scope:
        wanted = scope.split()
        bad = [s for s in wanted if s not in allowed]
        if bad:
            return oauth_error(403, "invalid_scope", "Unauthorized scopes requested: %s" % " ".join(bad))
        granted = " ".join(wanted)
    else:
        granted = " ".join(allowed)
    tok = app.issue_token("connecteam", "access", ttl, client=cid, scope=granted)
    return jresp(200, {"access_token": tok, "token_type": "bearer", "expires_in": ttl, "scope": granted},
                 [("Cache-Control", "no-store")])


CT_ROUTES = [
    (re.compile(r"^/sales/v1/locations$"), {"GET": "locations_get", "POST": "locations_post"}),
    (re.compile(r"^/sales/v1/locations/([^/]+)/daily-sales$"), {"PUT": "projected_put"}),
    (re.compile(r"^/sales/v1/transactions$"), {"POST": "transactions_post", "DELETE": "transactions_delete"}),
    (re.compile(r"^/sales/v1/transactions/([^/]+)$"), {"DELETE": "transaction_delete"}),
    (re.compile(r"^/sales/v1/daily-sales$"), {"GET": "daily_sales_get"}),
]


def connecteam(app, req):
    vpath = req.path[len("/connecteam"):]
    if vpath == "/oauth/v1/token":
        return ct_oauth_token(app, req)       # not rate limited, no rate-limit headers
    ctx = CT(app, req, vpath)
    account, scopes, why = ct_account(app, req)
    if account is None:
        _, hdrs, _ = ct_ratelimit(app, "anonymous", charge=False)
        r = ctx.error(401, why, CT_ERR_UNAUTHORIZED)
        r.headers.extend(hdrs)
        return r
    allowed, hdrs, which = ct_ratelimit(app, account, charge=True, entry=req.log_entry)
    if not allowed:
        r = ctx.error(429, "Rate limit exceeded (%s limit)" % which, CT_ERR_RATE_LIMIT)
        r.headers.extend(hdrs)
        return r
    r = ct_route(ctx, scopes)
    r.headers.extend(hdrs)
    return r


def ct_route(ctx, scopes):
    req = ctx.req
    for rx, methods in CT_ROUTES:
        m = rx.match(ctx.vpath)
        if not m:
            continue
        if req.method not in methods:
            return jresp(405, {"detail": "Method Not Allowed"}, [("Allow", ", ".join(sorted(methods)))])
        need = CT_SCOPE_FOR.get(req.method)
        if scopes is not None and need not in scopes:
            return ctx.error(403, "Missing required scope %s" % need, CT_ERR_SCOPE)
        return globals()["ct_" + methods[req.method]](ctx, *[urllib.parse.unquote(g) for g in m.groups()])
    return jresp(404, {"detail": "Not Found"})


def loc_view(l):
    return {"id": l["id"], "name": l["name"], "isActive": l["isActive"]}


def ct_locations_get(ctx):
    v = V()
    q = ct_query(v, ctx.req, {
        "locationIds": ("int_list", False, {}),
        "locationNames": ("str_list", False, {}),
        "isActive": ("bool", False, {}),
        "limit": ("int", False, {"ge": 1, "le": 1000}),
        "offset": ("int", False, {"ge": 0}),
    })
    if v.errors:
        return ctx.v422(v)
    limit = q.get("limit", 100)
    offset = q.get("offset", 0)
    with ctx.app.lock:
        locs = [loc_view(l) for _, l in sorted(ctx.app.ct_locations.items())]
    if "locationIds" in q:
        ids = set(q["locationIds"])
        locs = [l for l in locs if l["id"] in ids]
    if "locationNames" in q:
        names = set(q["locationNames"])
        locs = [l for l in locs if l["name"] in names]
    if "isActive" in q:
        locs = [l for l in locs if l["isActive"] == q["isActive"]]
    page = locs[offset:offset + limit]
    return ctx.ok({"locations": page}, {"paging": {"offset": offset + len(page)}})


def ct_locations_post(ctx):
    v = V()
    doc = ct_json_body(v, ctx.req)
    body = None
    if doc is not None:
        _, body = v.obj(doc, ["body"], {
            "name": lambda x, loc: v.str_(x, loc, min_len=1),
            "isActive": v.bool_,
        }, required={"name"})
    if v.errors:
        return ctx.v422(v)
    app = ctx.app
    with app.lock:
        if app.config["connecteam_unique_location_names"] and any(
                l["name"] == body["name"] for l in app.ct_locations.values()):
            return ctx.error(409, "A location named '%s' already exists" % body["name"], CT_ERR_LOCATION_EXISTS)
        lid = app.ct_next_location
        app.ct_next_location += 1
        loc = {"id": lid, "name": body["name"], "isActive": body.get("isActive", True)}
        app.ct_locations[lid] = loc
        return ctx.ok(loc_view(loc))


def _tx_item(v):
    return lambda x, loc: v.obj(x, loc, {
        "locationId": v.int_,
        "saleType": lambda y, l: v.enum(y, l, SALE_TYPES),
        "createdAt": v.int_,
        "finalSaleAmount": v.num,
        "taxAmount": v.num,
        "currency": v.str_,
    }, required={"locationId", "saleType", "createdAt", "finalSaleAmount"})


def tx_view(t):
    return {"transactionId": t["transactionId"], "locationId": t["locationId"], "saleType": t["saleType"],
            "createdAt": t["createdAt"], "finalSaleAmount": t["finalSaleAmount"],
            "taxAmount": t["taxAmount"], "currency": t["currency"]}


def ct_transactions_post(ctx):
    v = V()
    ct_query(v, ctx.req, {})
    doc = ct_json_body(v, ctx.req)
    body = None
    if doc is not None:
        _, body = v.obj(doc, ["body"], {
            "transactionsCreateRequest": lambda x, loc: v.list_(x, loc, _tx_item(v), 1, 100),
        }, required={"transactionsCreateRequest"})
    if v.errors:
        return ctx.v422(v)
    items = body["transactionsCreateRequest"]
    app = ctx.app
    with app.lock:
        missing = sorted({it["locationId"] for it in items if it["locationId"] not in app.ct_locations})
        if missing:
            return ctx.error(400, "Location(s) not found: %s" % ", ".join(str(m) for m in missing),
                             CT_ERR_LOCATION_NOT_FOUND)
        created = []
        for it in items:
            t = {"transactionId": str(uuid.uuid4()), "locationId": it["locationId"], "saleType": it["saleType"],
                 "createdAt": it["createdAt"], "finalSaleAmount": it["finalSaleAmount"],
                 "taxAmount": it.get("taxAmount"), "currency": it.get("currency")}
            app.ct_transactions[t["transactionId"]] = t
            created.append(tx_view(t))
    return ctx.ok({"transactions": created})


def ct_transactions_delete(ctx):
    v = V()
    q = ct_query(v, ctx.req, {
        "locationId": ("int", True, {}),
        "startTime": ("int", True, {}),
        "endTime": ("int", True, {}),
    })
    if v.errors:
        return ctx.v422(v)
    if q["endTime"] < q["startTime"]:
        return ctx.error(400, "endTime must not be before startTime", CT_ERR_INVALID_PARAMS)
    app = ctx.app
    with app.lock:
        if q["locationId"] not in app.ct_locations:
            return ctx.error(400, "Location %d not found" % q["locationId"], CT_ERR_LOCATION_NOT_FOUND)
        doomed = [tid for tid, t in app.ct_transactions.items()
                  if t["locationId"] == q["locationId"] and q["startTime"] <= t["createdAt"] <= q["endTime"]]
        for tid in doomed:
            del app.ct_transactions[tid]
    return ctx.ok({})


def ct_transaction_delete(ctx, tid):
    v = V()
    ct_query(v, ctx.req, {})
    if v.errors:
        return ctx.v422(v)
    with ctx.app.lock:
        if tid not in ctx.app.ct_transactions:
            return ctx.error(404, "Transaction %s not found" % tid, CT_ERR_TRANSACTION_NOT_FOUND)
        del ctx.app.ct_transactions[tid]
    return ctx.ok({})


def local_date(app, ts):
    tz = get_tz(app.config["connecteam_timezone"]) or dt.timezone.utc
    try:
        return dt.datetime.fromtimestamp(ts, tz).date()
    except (OverflowError, OSError, ValueError):
        return None


def daily_entries(app, loc_ids, start, end, only_dates=None):
    """Under app.lock.  -> {(date, locationId): entry}"""
    out = {}
    totals = {}
    for t in app.ct_transactions.values():
        if t["locationId"] not in loc_ids:
            continue
        d = local_date(app, t["createdAt"])
        if d is None or d < start or d > end:
            continue
        k = (d.isoformat(), t["locationId"])
        totals[k] = DEC_CTX.add(totals.get(k, Decimal(0)), t["finalSaleAmount"])
    for k, total in totals.items():
        out[k] = {"date": k[0], "locationId": k[1], "totalSales": total}
    for (lid, d), p in app.ct_projected.items():
        if lid in loc_ids and start.isoformat() <= d <= end.isoformat():
            out.setdefault((d, lid), {"date": d, "locationId": lid})["projectedSales"] = p
    return out


def ct_daily_sales_get(ctx):
    v = V()
    q = ct_query(v, ctx.req, {
        "startDate": ("str", True, {}),
        "endDate": ("str", True, {}),
        "locationIds": ("int_list", False, {}),
    })
    if v.errors:
        return ctx.v422(v)
    start, end = parse_date(q["startDate"]), parse_date(q["endDate"])
    if start is None or end is None:
        return ctx.error(400, "startDate and endDate must be dates in the format YYYY-MM-DD", CT_ERR_INVALID_PARAMS)
    if end < start:
        return ctx.error(400, "endDate must be on or after startDate", CT_ERR_INVALID_PARAMS)
    app = ctx.app
    with app.lock:
        if "locationIds" in q:
            missing = sorted({l for l in q["locationIds"] if l not in app.ct_locations})
            if missing:
                return ctx.error(400, "Location(s) not found: %s" % ", ".join(str(m) for m in missing),
                                 CT_ERR_LOCATION_NOT_FOUND)
            ids = set(q["locationIds"])
        else:
            ids = set(app.ct_locations)
        entries = daily_entries(app, ids, start, end)
    rows = [entries[k] for k in sorted(entries)]
    return ctx.ok({"dailySales": rows})


def ct_projected_put(ctx, lid_raw):
    v = V()
    ok, lid = v.q_int(lid_raw, ["path", "locationId"])
    ct_query(v, ctx.req, {})
    doc = ct_json_body(v, ctx.req)
    body = None
    if doc is not None:
        item = lambda x, loc: v.obj(x, loc, {"date": v.str_, "projectedSales": v.num},
                                    required={"date", "projectedSales"})
        _, body = v.obj(doc, ["body"], {"updates": lambda x, loc: v.list_(x, loc, item, 1, None)},
                        required={"updates"})
    if v.errors:
        return ctx.v422(v)
    updates = body["updates"]
    dates = []
    for u in updates:
        d = parse_date(u["date"])
        if d is None:
            return ctx.error(400, "Invalid date '%s', expected YYYY-MM-DD" % u["date"], CT_ERR_INVALID_PARAMS)
        dates.append(d)
    if len(set(dates)) != len(dates):
        return ctx.error(400, "Duplicate dates in updates", CT_ERR_DUPLICATE_DATES)
    app = ctx.app
    with app.lock:
        if lid not in app.ct_locations:
            return ctx.error(400, "Location %d not found" % lid, CT_ERR_LOCATION_NOT_FOUND)
        for u, d in zip(updates, dates):
            app.ct_projected[(lid, d.isoformat())] = u["projectedSales"]
        days = []
        for d in dates:
            e = daily_entries(app, {lid}, d, d)
            days.append(e.get((d.isoformat(), lid)) or {"date": d.isoformat(), "locationId": lid})
    return ctx.ok({"daysAffected": len(days), "updatedDays": days})


# --------------------------------------------------------------------------
# Fault responses
# --------------------------------------------------------------------------

def vendor_of(path):
    if path == "/connect/token" or path == "/connecteam/oauth/v1/token":
        return "token"
    if path.startswith("/mapal-sales/"):
        return "mapal"
    if path.startswith("/cashrec/"):
        return "cashrec"
    if path.startswith("/connecteam/"):
        return "connecteam"
    return "other"


def default_error_body(vendor, status, req):
    if vendor == "mapal":
        if status == 404:
            return {"title": "Tenant configuration not found.", "status": 404}
        return {"type": "about:blank", "title": reason(status), "status": status}
    if vendor == "cashrec":
        if status == 404:
            return {"code": 0, "message": "Tenant configuration not found."}
        return {"code": status, "message": reason(status)}
    if vendor == "connecteam":
        return {"error": reason(status), "path": req.path[len("/connecteam"):], "requestId": req.request_id,
                "details": {"error_message": reason(status),
                            "error_code": CT_ERR_RATE_LIMIT if status == 429 else status}}
    if vendor == "token":
        return {"error": "server_error" if status >= 500 else "invalid_request"}
    return {"error": reason(status)}


def fault_response(app, rule, req, port):
    action = rule["action"]
    vendor = vendor_of(req.path)
    hdrs = [(k, v) for k, v in (rule.get("headers") or {}).items()]
    st = rule.get("status")
    # body_b64 gives raw bytes (e.g. invalid UTF-8) that a JSON string cannot carry
    fbody = rule["_raw"] if rule.get("_raw") is not None else rule.get("body")
    if action == "status":
        st = st or 500
        if fbody is not None:
            r = Resp(st, fbody, rule.get("content_type") or "application/json")
        elif st in (204, 304) or st < 200:
            r = Resp(st, b"", None)
        else:
            r = jresp(st, default_error_body(vendor, st, req))
    elif action == "malformed":
        prefix = {"token": '{"access_token":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOi',
                  "mapal": '{"status":20',
                  "cashrec": '[{"centerId":101,"cashSheetId":"CS-101-',
                  "connecteam": '{"requestId":"%s","data":{"transactions":[{"transactionId":"' % req.request_id}
        r = Resp(st or 200, fbody or prefix.get(vendor, '{"data":[{"id":1,"na'), "application/json")
    elif action == "wrong_shape":
        shape = {"token": "[]", "mapal": "[]", "cashrec": '{"data":[]}',
                 "connecteam": '{"requestId":"%s","data":[]}' % req.request_id}
        r = Resp(st or 200, fbody or shape.get(vendor, "[]"), "application/json")
    elif action == "html":
        page = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
                "</body>\r\n</html>\r\n")
        r = Resp(st or 502, fbody or page, "text/html")
    elif action == "empty":
        r = Resp(st or 200, b"", "application/json")
    elif action == "oversized":
        n = max(int(rule.get("size_bytes") or 8 * 1024 * 1024), 14)
        head, tail = b'{"padding":"', b'"}'
        fill = n - len(head) - len(tail)

        def gen():
            yield head
            left = fill
            chunk = b"x" * 65536
            while left > 0:
                k = min(left, len(chunk))
                yield chunk[:k]
                left -= k
            yield tail
        r = Resp(st or 200, b"", "application/json", stream=gen(), length=n)
    elif action == "redirect":
        loc = rule.get("location") or "%s://127.0.0.1:%d/redirected%s" % (
            "http" if req.scheme == "http" else "https", port, req.path)
        r = Resp(st or 302, b"", None, headers=[("Location", loc)])
    else:
        raise ValueError(action)
    if vendor == "connecteam" and not any(k.lower().startswith("x-ratelimit-") for k, _ in hdrs):
        account, _, _ = ct_account(app, req)
        _, rl, _ = ct_ratelimit(app, account or "anonymous", charge=False)
        r.headers.extend(rl)
    r.headers.extend(hdrs)
    return r


# --------------------------------------------------------------------------
# Control interface
# --------------------------------------------------------------------------

def control(app, req):
    p = req.path
    m = req.method

    def body_json(default=None):
        if not req.body.strip():
            return default
        return jloads(req.body)

    try:
        if p == "/_mock/health" and m == "GET":
            return jresp(200, {"ok": True})
        if p == "/_mock/reset" and m == "POST":
            app.reset()
            return jresp(200, {"ok": True})
        if p == "/_mock/config":
            if m == "GET":
                with app.lock:
                    return jresp(200, app.config)
            if m == "POST":
                d = body_json({})
                if not isinstance(d, dict):
                    return jresp(400, {"error": "config body must be an object"})
                for k, val in d.items():
                    if k not in CONFIG_CHECKS:
                        return jresp(400, {"error": "unknown config key %s" % k})
                    val = _plain(val)
                    if not CONFIG_CHECKS[k](val):
                        return jresp(400, {"error": "invalid value for %s: %s" % (k, jdumps(val))})
                    d[k] = val
                with app.lock:
                    if any(k.startswith("connecteam_") and ("limit" in k or "window" in k) for k in d):
                        app.ct_buckets.clear()
                    app.config.update(d)
                    return jresp(200, app.config)
        if p == "/_mock/faults":
            if m == "GET":
                with app.lock:
                    return jresp(200, {"faults": [{k: v for k, v in r.items() if not k.startswith("_")}
                                                  for r in app.faults]})
            if m == "DELETE":
                with app.lock:
                    app.faults.clear()
                return jresp(200, {"ok": True})
            if m == "POST":
                d = body_json({})
                rule, err = make_fault(d)
                if err:
                    return jresp(400, {"error": err})
                with app.lock:
                    rule["id"] = app.fault_next_id
                    app.fault_next_id += 1
                    app.faults.append(rule)
                return jresp(200, {"ok": True, "id": rule["id"]})
        if p in ("/_mock/tokens/expire", "/_mock/tokens/revoke") and m == "POST":
            d = body_json({}) or {}
            vendor = d.get("vendor") if isinstance(d, dict) else None
            if vendor not in (None, "mapal", "connecteam"):
                return jresp(400, {"error": "vendor must be mapal or connecteam"})
            n = 0
            with app.lock:
                for info in app.tokens.values():
                    if vendor and info["vendor"] != vendor:
                        continue
                    if p.endswith("expire"):
                        if info["kind"] == "access":
                            info["expired"] = True
                            n += 1
                    else:
                        info["revoked"] = True
                        n += 1
            return jresp(200, {"ok": True, "tokens": n})
        if p == "/_mock/inflight" and m == "GET":
            with app.lock:
                return jresp(200, {"inflight": app.inflight, "held": app.held, "hanging": app.hanging})
        if p == "/_mock/release" and m == "POST":
            return jresp(200, {"released": app.release_held()})
        if p == "/_mock/tokens/issued" and m == "GET":
            with app.lock:
                return jresp(200, {"tokens": list(app.issued)})
        if p == "/_mock/log" and m == "GET":
            qs = dict(urllib.parse.parse_qsl(req.query))
            since = int(qs.get("since", "0") or 0)
            with app.lock:
                rows = [dict(e, headers=dict(e["headers"])) for e in app.log if e["seq"] > since]
                return jresp(200, {"requests": rows, "last_seq": app.seq})
        if p == "/_mock/state" and m == "GET":
            return jresp(200, state_view(app))
        if p == "/_mock/cashrec/sheets" and m == "POST":
            d = body_json({})
            recs = d.get("records") if isinstance(d, dict) else d
            if not isinstance(recs, list):
                return jresp(400, {"error": "body must be {\"records\": [...]}"})
            groups = {}
            for i, r in enumerate(recs):
                if not isinstance(r, dict) or not is_int(r.get("centerId")) or parse_date(r.get("businessDay")) is None \
                        or parse_datetime(r.get("openedAt")) is None:
                    return jresp(400, {"error": "record %d needs integer centerId, businessDay yyyy-MM-dd and "
                                                "openedAt yyyy-MM-ddTHH:mm:ss" % i})
                groups.setdefault((r["centerId"], r["businessDay"]), []).append(r)
            with app.lock:
                app.cashrec_seeded.update(groups)
            return jresp(200, {"ok": True, "records": len(recs)})
        if p == "/_mock/connecteam/lose" and m == "POST":
            d = body_json({})
            if not isinstance(d, dict):
                return jresp(400, {"error": "body must be an object"})
            with app.lock:
                if "transactionId" in d:
                    lost = [d["transactionId"]] if d["transactionId"] in app.ct_transactions else []
                elif is_int(d.get("locationId")):
                    cnt = d.get("count", 1)
                    if not is_int(cnt) or cnt < 0:
                        return jresp(400, {"error": "count must be an integer >= 0"})
                    lost = [tid for tid, t in app.ct_transactions.items()
                            if t["locationId"] == d["locationId"]][:cnt]
                else:
                    return jresp(400, {"error": "give transactionId or locationId (+count)"})
                for tid in lost:
                    del app.ct_transactions[tid]
            return jresp(200, {"ok": True, "lost": len(lost)})
        if p == "/_mock/connecteam/locations" and m == "POST":
            d = body_json({})
            locs = d.get("locations") if isinstance(d, dict) else None
            if not isinstance(locs, list):
                return jresp(400, {"error": "body must be {\"locations\": [{\"name\":...}]}"})
            out = []
            with app.lock:
                for l in locs:
                    if not isinstance(l, dict) or not isinstance(l.get("name"), str) or not l["name"] \
                            or not isinstance(l.get("isActive", True), bool) \
                            or ("id" in l and not is_int(l["id"])):
                        return jresp(400, {"error": "each location needs a name, optional isActive and id"})
                    lid = l.get("id", app.ct_next_location)
                    app.ct_next_location = max(app.ct_next_location, lid + 1)
                    app.ct_locations[lid] = {"id": lid, "name": l["name"], "isActive": l.get("isActive", True)}
                    out.append(loc_view(app.ct_locations[lid]))
            return jresp(200, {"ok": True, "locations": out})
        return jresp(404, {"error": "no control endpoint %s %s" % (m, p)})
    except JSONError as e:
        return jresp(400, {"error": "invalid JSON: %s" % e})
    except (ValueError, TypeError, KeyError) as e:
        return jresp(400, {"error": "bad request: %s" % e})


def _plain(v):
    """Decimal -> int/float for config values."""
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def make_fault(d):
    if not isinstance(d, dict):
        return None, "fault must be an object"
    d = _plain(d)
    known = {"method", "path", "count", "action", "status", "body", "body_b64", "headers", "delay_ms",
             "size_bytes", "location", "content_type"}
    extra = set(d) - known
    if extra:
        return None, "unknown fault field(s): %s" % ", ".join(sorted(extra))
    action = d.get("action")
    if action not in FAULT_ACTIONS:
        return None, "action must be one of %s" % ", ".join(FAULT_ACTIONS)
    path = d.get("path", "")
    try:
        rx = re.compile(path)
    except (re.error, TypeError) as e:
        return None, "bad path regex: %s" % e
    count = d.get("count", 1)
    if not is_int(count) or count < 1:
        return None, "count must be an integer >= 1"
    status = d.get("status")
    if status is not None and (not is_int(status) or not 100 <= status <= 599):
        return None, "status must be an integer 100..599"
    hdrs = d.get("headers") or {}
    if not isinstance(hdrs, dict) or not all(isinstance(k, str) and isinstance(v, (str, int)) for k, v in hdrs.items()):
        return None, "headers must be an object of strings"
    for k in ("delay_ms", "size_bytes"):
        if d.get(k) is not None and (not is_int(d[k]) or d[k] < 0):
            return None, "%s must be an integer >= 0" % k
    if action == "delay" and not d.get("delay_ms"):
        return None, "delay needs delay_ms"
    method = d.get("method")
    if method is not None and not isinstance(method, str):
        return None, "method must be a string"
    body = d.get("body")
    if body is not None and not isinstance(body, str):
        return None, "body must be a string"
    raw = None
    if d.get("body_b64") is not None:
        if body is not None:
            return None, "give body or body_b64, not both"
        try:
            raw = base64.b64decode(d["body_b64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            return None, "body_b64 must be base64"
    rule = {"method": method.upper() if method else None, "path": path, "count": count, "remaining": count,
            "action": action, "status": status, "body": body, "body_b64": d.get("body_b64"), "_raw": raw,
            "headers": {k: str(v) for k, v in hdrs.items()}, "delay_ms": d.get("delay_ms"),
            "size_bytes": d.get("size_bytes"), "location": d.get("location"),
            "content_type": d.get("content_type"), "_re": rx}
    return rule, None


def state_view(app):
    with app.lock:
        sales = []
        for k in sorted(app.mapal_sales):
            s = app.mapal_sales[k]
            sales.append({"unitId": k[0], "businessDay": k[1], "currencyId": k[2], "salesTypeId": k[3],
                          "timeSlotStart": k[4], "netSales": s["netSales"], "grossSales": s["grossSales"],
                          "numChecks": s["numChecks"], "numGuests": s["numGuests"], "writes": s["writes"],
                          "jsonNumbers": s["jsonNumbers"]})
        st = {
            "mapal_sales": sales,
            "connecteam_locations": [loc_view(l) for _, l in sorted(app.ct_locations.items())],
            "connecteam_transactions": [tx_view(t) for t in app.ct_transactions.values()],
            "projected": [{"locationId": lid, "date": d, "projectedSales": p}
                          for (lid, d), p in sorted(app.ct_projected.items())],
            "cashrec_seeded": [r for k in sorted(app.cashrec_seeded) for r in app.cashrec_seeded[k]],
        }
        return money_strings(st)


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------

def route_vendor(app, req):
    p = req.path
    if p == "/connect/token":
        return mapal_token(app, req)
    m = re.fullmatch(r"/mapal-sales/api/v1/business-unit/([^/]+)/real-time-sales", p)
    if m:
        return mapal_sales(app, req, urllib.parse.unquote(m.group(1)))
    if p == "/cashrec/api/v1/cashSheet":
        return cashrec(app, req)
    if p.startswith("/connecteam/"):
        return connecteam(app, req)
    return jresp(404, {"error": "Not Found", "path": p})


class DropConnection(Exception):
    pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-vendor/1.0"
    sys_version = ""
    timeout = 60            # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):      # only http.server's own parse errors come here
        sys.stderr.write("[mock] %s %s\n" % (self.client_address[0], fmt % args))

    def log_request(self, code="-", size="-"):
        pass

    def version_string(self):
        return self.server_version

    def _dispatch(self):
        app = self.server.app
        t0 = time.monotonic()
        split = urllib.parse.urlsplit(self.path)
        path, query = split.path or "/", split.query
        try:
            body = self._read_body()
        except DropConnection:
            self.close_connection = True
            return
        req = Req(self.command, path, query, self.headers, body, self.server.scheme, self.server.server_address[1])
        if path == "/_mock" or path.startswith("/_mock/"):
            try:
                resp = control(app, req)
            except Exception:
                traceback.print_exc()
                resp = jresp(500, {"error": "internal error in mock control"})
            self._send(resp)
            sys.stderr.write("[mock] %s %s control %s %s -> %d\n" % (
                self.client_address[0], self.server.scheme, self.command, path[:300], resp.status))
            return
        entry = app.log_start(req, self.client_address)
        req.log_entry = entry
        status, dropped, fault = None, False, None
        with app.lock:
            app.inflight += 1
        try:
            lat = app.cfg("latency_ms")
            if lat:
                time.sleep(lat / 1000.0)
            rule = app.take_fault(req.method, path)
            if rule:
                fault = rule["action"]
                with app.lock:
                    entry["fault"] = fault
                if rule.get("delay_ms"):
                    time.sleep(rule["delay_ms"] / 1000.0)
                if fault == "hold":
                    app.hold()
            if fault == "hang":
                # never answered, never processed; "ms" is how long the client waited
                app.hang(self.connection)
                dropped = True
                self._drop()
                return
            if fault == "drop_before":
                dropped = True
                self._drop()
                return
            if fault == "never_end":
                status = rule.get("status") or 200
                self._never_end(rule, status)
                return
            if fault and fault not in ("delay", "hold", "drop_after", "status_after"):
                resp = fault_response(app, rule, req, self.server.server_address[1])
            else:
                try:
                    resp = route_vendor(app, req)
                except Exception:
                    traceback.print_exc()
                    resp = jresp(500, {"error": "internal error in mock"})
                if fault == "status_after":
                    # processed (a post stored), then answered with an error status
                    # (a gateway's 502/504, a 500 after the write): the client cannot
                    # tell it from a failure before the work
                    resp = fault_response(app, dict(rule, action="status"), req, self.server.server_address[1])
            status = resp.status
            # answer_ms: the vendor answers this long after the request came,
            # its own work included (latency_ms waits before that work, so the
            # answer comes latency_ms plus the work after the request); a
            # benchmark's vendor of 20 ms whose requests do not queue behind
            # the mock's interpreter lock as they would with latency_ms
            ans = app.cfg("answer_ms")
            if ans:
                left = t0 + ans / 1000.0 - time.monotonic()
                if left > 0:
                    time.sleep(left)
            if fault == "drop_after":
                dropped = True
                self._drop()
                return
            self._send(resp)
        finally:
            with app.lock:
                app.inflight -= 1
            app.log_finish(entry, status, t0, dropped)
            ms = (time.monotonic() - t0) * 1000.0
            q = ("?" + query[:200]) if query else ""
            sys.stderr.write("[mock] %s %s %s %s%s -> %s %.1fms%s%s\n" % (
                self.client_address[0], self.server.scheme, self.command, path[:300], q,
                status if status is not None else "-", ms,
                (" fault=" + fault) if fault else "", " dropped" if dropped else ""))

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise DropConnection()
                try:
                    n = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    self._send(jresp(400, {"error": "bad chunked encoding"}), close=True)
                    raise DropConnection()
                if n == 0:
                    while True:                 # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    return bytes(out)
                if len(out) + n > MAX_REQUEST_BODY:
                    self._send(jresp(413, {"error": "request body too large"}), close=True)
                    raise DropConnection()
                out += self.rfile.read(n)
                self.rfile.readline(3)
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        try:
            n = int(cl)
            if n < 0:
                raise ValueError
        except ValueError:
            self._send(jresp(400, {"error": "bad Content-Length"}), close=True)
            raise DropConnection()
        if n > MAX_REQUEST_BODY:
            self._send(jresp(413, {"error": "request body too large"}), close=True)
            raise DropConnection()
        data = self.rfile.read(n)
        if len(data) != n:
            raise DropConnection()
        return data

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, resp, close=False):
        try:
            self.send_response(resp.status)
            length = resp.length if resp.stream is not None else len(resp.body)
            if resp.ctype:
                self.send_header("Content-Type", resp.ctype)
            names = {k.lower() for k, _ in resp.headers}
            if "content-length" not in names and not (resp.status < 200 or resp.status in (204, 304)):
                self.send_header("Content-Length", str(length))
            for k, v in resp.headers:
                self.send_header(k, v)
            if close or resp.close:
                self.send_header("Connection", "close")
                self.close_connection = True
            if self.command == "HEAD":
                self.end_headers()
                return
            if resp.stream is None and resp.body:
                # headers and body in one write: no Nagle/delayed-ACK stall
                self._headers_buffer.append(b"\r\n" + resp.body)
                self.flush_headers()
                return
            self.end_headers()
            if resp.stream is not None:
                for chunk in resp.stream:
                    self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout, OSError):
            self.close_connection = True

    def _never_end(self, rule, status):
        declared = max(int(rule.get("size_bytes") or 1000), 2)
        payload = (b'{"data":[' + b" " * declared)[:declared - 1]
        self.close_connection = True
        app = self.server.app
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(declared))
            self.end_headers()
            deadline = time.monotonic() + app.cfg("never_end_max_seconds")
            for i in range(len(payload)):
                self.wfile.write(payload[i:i + 1])
                if app.stopping.wait(1.0) or time.monotonic() > deadline:
                    break
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout, OSError):
            pass
        self._drop()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, port, app, scheme, sslctx):
        self.app = app
        self.scheme = scheme
        self.sslctx = sslctx
        super().__init__(("127.0.0.1", port), Handler)

    def finish_request(self, request, client_address):
        if self.sslctx is None:
            self.RequestHandlerClass(request, client_address, self)
            return
        request.settimeout(15)
        try:
            tls = self.sslctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            sys.stderr.write("[mock] %s %s TLS handshake failed: %s\n" % (client_address[0], self.scheme, e))
            try:
                request.close()
            except OSError:
                pass
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            tls.close()

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout, TimeoutError)):
            sys.stderr.write("[mock] %s %s connection error: %s\n" % (client_address[0], self.scheme, exc))
        else:
            sys.stderr.write("[mock] %s %s unexpected error:\n" % (client_address[0], self.scheme))
            traceback.print_exc()


def make_ctx(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def main(argv=None):
    ap = argparse.ArgumentParser(description="Mock vendor server for sales_api tests (binds 127.0.0.1 only).")
    ap.add_argument("--port", type=int, required=True, help="HTTPS port (0 = pick a free one)")
    ap.add_argument("--cert", required=True, help="server certificate (PEM, chain allowed)")
    ap.add_argument("--key", required=True, help="server private key (PEM)")
    ap.add_argument("--selfsigned-port", type=int, help="second HTTPS listener with another certificate")
    ap.add_argument("--selfsigned-cert")
    ap.add_argument("--selfsigned-key")
    ap.add_argument("--http-port", type=int, help="plain-HTTP listener serving the same app")
    args = ap.parse_args(argv)
    if args.selfsigned_port is not None and not (args.selfsigned_cert and args.selfsigned_key):
        ap.error("--selfsigned-port needs --selfsigned-cert and --selfsigned-key")

    app = App()
    servers = [Server(args.port, app, "https", make_ctx(args.cert, args.key))]
    if args.selfsigned_port is not None:
        servers.append(Server(args.selfsigned_port, app, "https-selfsigned",
                              make_ctx(args.selfsigned_cert, args.selfsigned_key)))
    if args.http_port is not None:
        servers.append(Server(args.http_port, app, "http", None))

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    threads = []
    for s in servers:
        t = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        t.start()
        threads.append(t)
        sys.stderr.write("[mock] listening %s://127.0.0.1:%d\n" % (
            "http" if s.scheme == "http" else "https", s.server_address[1]))
    sys.stderr.flush()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    app.stopping.set()
    for s in servers:
        s.shutdown()
        s.server_close()
    sys.stderr.write("[mock] stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
