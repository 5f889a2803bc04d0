#!/usr/bin/env python3
"""Self-test for the mock vendor server (mock_vendor.py) and test/mockctl.

Standard library + the `openssl` CLI only.  It makes a throwaway CA, a server
certificate (SAN IP:127.0.0.1, DNS:localhost) and a self-signed certificate
in a temp dir, starts the mock on free ports and exercises every endpoint,
error path, fault action, rate limiting, token expiry/revocation/refresh and
the mockctl commands.  Last line: "N passed, N failed"; exit status 1 on any
failure.  Run: python3 test/mock/selftest.py [-v] [--keep]   (--keep: keep the temp dir on failure)
"""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
MOCK = os.path.join(HERE, "mock_vendor.py")
MOCKCTL = os.path.join(os.path.dirname(HERE), "mockctl")
VERBOSE = "-v" in sys.argv

PASSED = 0
FAILED = 0
FAILURES = []


def check(name, cond, detail=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        if VERBOSE:
            print("ok   %s" % name)
    else:
        FAILED += 1
        FAILURES.append(name)
        print("FAIL %s %s" % (name, detail if isinstance(detail, str) else repr(detail)))


def jl(b):
    return json.loads(b, parse_float=Decimal)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_certs(d):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=sales_api mock test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    openssl("req", "-x509", *ec, "-keyout", "ss.key", "-out", "ss.crt", "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", cwd=d)


class Client:
    def __init__(self, port, ca, ss_port, http_port):
        self.port = port
        self.ss_port = ss_port
        self.http_port = http_port
        self.ctx = ssl.create_default_context(cafile=ca)

    def conn(self, timeout=15, port=None, scheme="https", ctx=None):
        if scheme == "http":
            return http.client.HTTPConnection("127.0.0.1", port or self.http_port, timeout=timeout)
        return http.client.HTTPSConnection("127.0.0.1", port or self.port, timeout=timeout, context=ctx or self.ctx)

    def raw(self, method, path, body=None, headers=None, **kw):
        c = self.conn(**kw)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
                headers = dict({"Content-Type": "application/json"}, **(headers or {}))
            if isinstance(body, str):
                body = body.encode()
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def j(self, method, path, body=None, headers=None, **kw):
        st, h, data = self.raw(method, path, body, headers, **kw)
        try:
            doc = jl(data) if data else None
        except ValueError:
            doc = data
        return st, h, doc

    def ctl(self, method, path, body=None):
        return self.j(method, path, body)


def form(d):
    return urllib.parse.urlencode(d)


FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MAPAL_CREDS = {"grant_type": "password", "username": "pos-user", "password": "pos-pass",
               "client_id": "wf_wap_tp", "client_secret": "mapal-secret"}
CT_KEY = {"X-API-KEY": "ct-key-123"}
SALES = "/mapal-sales/api/v1/business-unit/%s/real-time-sales"
CASH = "/cashrec/api/v1/cashSheet"
CT = "/connecteam/sales/v1"


def slot(ts, net="250.00", gross="270.00", cur="EUR", st="TAKE", checks=2, guests=3):
    return {"currencyId": cur, "salesTypeId": st, "timeSlotStart": ts, "netSales": Decimal(net),
            "grossSales": Decimal(gross), "numChecks": checks, "numGuests": guests}


def dumps(o):
    """json.dumps that writes Decimal exactly."""
    def conv(o):
        if isinstance(o, Decimal):
            return "@@D%s@@" % o
        if isinstance(o, dict):
            return {k: conv(v) for k, v in o.items()}
        if isinstance(o, list):
            return [conv(v) for v in o]
        return o
    return re.sub(r'"@@D([^@]*)@@"', r"\1", json.dumps(conv(o)))


def main():
    tmp = tempfile.mkdtemp(prefix="mocktest-")
    t_start = time.time()
    make_certs(tmp)
    port, ss_port, http_port = free_port(), free_port(), free_port()
    errlog = open(os.path.join(tmp, "mock.stderr"), "w+")
    proc = subprocess.Popen([sys.executable, MOCK, "--port", str(port), "--cert", os.path.join(tmp, "server.crt"),
                             "--key", os.path.join(tmp, "server.key"), "--selfsigned-port", str(ss_port),
                             "--selfsigned-cert", os.path.join(tmp, "ss.crt"), "--selfsigned-key",
                             os.path.join(tmp, "ss.key"), "--http-port", str(http_port)],
                            stdout=subprocess.PIPE, stderr=errlog, text=True)
    try:
        line = proc.stdout.readline()
        check("server prints READY", line.strip() == "READY", line)
        if line.strip() != "READY":
            return
        c = Client(port, os.path.join(tmp, "ca.crt"), ss_port, http_port)
        env = dict(os.environ, MOCK_URL="https://127.0.0.1:%d" % port, MOCK_CA=os.path.join(tmp, "ca.crt"),
                   MOCK_STATE_DIR=tmp)
        run_all(c, env, tmp)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(10)
                check("exits cleanly on SIGTERM", rc == 0, "rc=%r" % rc)
            except subprocess.TimeoutExpired:
                check("exits cleanly on SIGTERM", False, "still running")
                proc.kill()
        errlog.seek(0)
        err = errlog.read()
        leaked = [s for s in ("pos-pass", "mapal-secret", "ct-key-123", "ct-secret", "eyJ") if s in err]
        check("stderr log has no secrets or tokens", not leaked, leaked)
        check("stderr has one line per request", "POST /connect/token -> 200" in err)
        check("no tracebacks in stderr", "Traceback" not in err, err[err.find("Traceback"):][:2000])
        errlog.close()
        elapsed = time.time() - t_start
        check("runtime under 60 s", elapsed < 60, "%.1fs" % elapsed)
        if FAILED and "--keep" in sys.argv:
            print("kept %s (mock.stderr has the server log)" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        print("%d passed, %d failed" % (PASSED, FAILED))


def run_all(c, env, tmp):
    for fn in (t_infra, t_mapal_token, t_mapal_sales, t_cashrec, t_ct_oauth_auth, t_ct_locations,
               t_ct_transactions, t_ct_daily, t_ct_ratelimit, t_faults, t_control, t_mockctl):
        c.ctl("POST", "/_mock/reset")
        try:
            fn(c, env, tmp)
        except Exception as e:  # keep going; count it
            import traceback
            traceback.print_exc()
            check("%s raised no exception" % fn.__name__, False, repr(e))


def mapal_token(c):
    st, h, d = c.j("POST", "/connect/token", form(MAPAL_CREDS), FORM)
    assert st == 200, (st, d)
    return d


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


IDLE = {"inflight": 0, "held": 0, "hanging": 0}


def inflight_settled(c, limit_s=10.0):
    """The mock's in-flight counts once they are all 0 (or the last read after limit_s)."""
    t_end = time.time() + limit_s
    while True:
        now = c.ctl("GET", "/_mock/inflight")[2]
        if now == IDLE or time.time() >= t_end:
            return now
        time.sleep(0.05)


def log_since(c, seq=0):
    return c.ctl("GET", "/_mock/log?since=%d" % seq)[2]["requests"]


# ---------------------------------------------------------------------------

def t_infra(c, env, tmp):
    st, h, d = c.j("GET", "/_mock/health")
    check("infra: control health", st == 200 and d == {"ok": True})
    # self-signed listener: the test CA does not verify it, an unverified context does
    try:
        c.j("GET", "/_mock/health", port=c.ss_port)
        check("infra: self-signed listener fails verification", False)
    except ssl.SSLCertVerificationError:
        check("infra: self-signed listener fails verification", True)
    noverify = ssl.create_default_context()
    noverify.check_hostname = False
    noverify.verify_mode = ssl.CERT_NONE
    st, _, _ = c.j("POST", "/connect/token", form(MAPAL_CREDS), FORM, port=c.ss_port, ctx=noverify)
    check("infra: self-signed listener serves the same app", st == 200)
    st, _, _ = c.j("POST", "/connect/token", form(MAPAL_CREDS), FORM, scheme="http")
    check("infra: plain http listener serves the same app", st == 200)
    log = log_since(c)
    check("infra: log records scheme", [e["scheme"] for e in log] == ["https-selfsigned", "http"], log)
    check("infra: control calls are not logged", all(not e["path"].startswith("/_mock") for e in log))
    # keep-alive: two requests on one connection, Content-Length everywhere
    conn = c.conn()
    conn.request("GET", "/nowhere")
    r1 = conn.getresponse()
    r1.read()
    sock1 = conn.sock
    conn.request("GET", "/_mock/health")
    r2 = conn.getresponse()
    r2.read()
    check("infra: HTTP/1.1 keep-alive", r1.version == 11 and conn.sock is sock1 and sock1 is not None)
    check("infra: Content-Length on responses", r1.getheader("Content-Length") is not None and
          r2.getheader("Content-Length") is not None)
    check("infra: unknown path 404", r1.status == 404)
    conn.close()
    # garbage request line and non-TLS bytes on the TLS port do not kill the server
    s = c.ctx.wrap_socket(socket.create_connection(("127.0.0.1", c.port), timeout=5), server_hostname="127.0.0.1")
    s.sendall(b"GARBAGE\r\n\r\n")
    try:
        s.recv(100)
    except OSError:
        pass
    s.close()
    s = c.ctx.wrap_socket(socket.create_connection(("127.0.0.1", c.port), timeout=5), server_hostname="127.0.0.1")
    s.sendall(b"POST /connect/token HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    resp = s.recv(100)
    s.close()
    check("infra: bad Content-Length gets 400", resp.startswith(b"HTTP/1.1 400 "), resp)
    s = socket.create_connection(("127.0.0.1", c.port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        s.recv(100)
    except OSError:
        pass
    s.close()
    s = c.ctx.wrap_socket(socket.create_connection(("127.0.0.1", c.port), timeout=5), server_hostname="127.0.0.1")
    s.sendall(b"POST /connect/token HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n")
    resp = s.recv(100)
    s.close()
    check("infra: oversized request body gets 413", b" 413 " in resp[:20], resp)
    st, _, _ = c.j("GET", "/_mock/health")
    check("infra: server alive after abuse", st == 200)
    # chunked request body
    conn = c.conn()
    conn.putrequest("POST", "/connect/token")
    conn.putheader("Content-Type", "application/x-www-form-urlencoded")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    b = form(MAPAL_CREDS).encode()
    conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(b), b))
    r = conn.getresponse()
    r.read()
    conn.close()
    check("infra: chunked request body accepted", r.status == 200)
    # concurrency
    results = []

    def worker():
        for _ in range(5):
            results.append(c.j("POST", "/connect/token", form(MAPAL_CREDS), FORM)[0])
    ts = [threading.Thread(target=worker) for _ in range(10)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    check("infra: 50 concurrent requests all succeed", results.count(200) == 50, results)
    # control errors
    st, _, d = c.j("POST", "/_mock/config", "{not json", {"Content-Type": "application/json"})
    check("control: bad JSON is 400", st == 400)
    st, _, d = c.j("POST", "/_mock/config", {"no_such_key": 1})
    check("control: unknown config key is 400", st == 400)
    st, _, d = c.j("POST", "/_mock/config", {"mapal_slot_minutes": "x"})
    check("control: bad config value is 400", st == 400)
    st, _, d = c.j("GET", "/_mock/nothing")
    check("control: unknown control path 404", st == 404)


def t_mapal_token(c, env, tmp):
    st, h, d = c.j("POST", "/connect/token", form(MAPAL_CREDS), FORM)
    check("token: password grant 200", st == 200, d)
    check("token: response fields", set(d) == {"access_token", "expires_in", "token_type", "refresh_token", "scope"}
          and d["token_type"] == "Bearer" and d["expires_in"] == 3600, d)
    check("token: JWT-looking tokens", all(re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", d[k])
                                           for k in ("access_token", "refresh_token")))
    check("token: no-store", h.get("cache-control") == "no-store")
    bad = dict(MAPAL_CREDS, password="nope")
    st, _, d = c.j("POST", "/connect/token", form(bad), FORM)
    check("token: wrong password 400 invalid_grant", st == 400 and d["error"] == "invalid_grant", d)
    st, _, d = c.j("POST", "/connect/token", form(dict(MAPAL_CREDS, username="someone")), FORM)
    check("token: unknown user 400 invalid_grant", st == 400 and d["error"] == "invalid_grant", d)
    st, _, d = c.j("POST", "/connect/token", form(dict(MAPAL_CREDS, client_secret="x")), FORM)
    check("token: wrong client secret 400 invalid_client", st == 400 and d == {"error": "invalid_client"}, d)
    st, _, d = c.j("POST", "/connect/token", form(dict(MAPAL_CREDS, client_id="other")), FORM)
    check("token: unknown client invalid_client", st == 400 and d["error"] == "invalid_client", d)
    c.ctl("POST", "/_mock/config", {"mapal_invalid_client_status": 401})
    st, _, d = c.j("POST", "/connect/token", form(dict(MAPAL_CREDS, client_secret="x")), FORM)
    check("token: invalid_client status configurable to 401", st == 401 and d["error"] == "invalid_client", d)
    st, _, d = c.j("POST", "/connect/token", form(dict(MAPAL_CREDS, grant_type="client_credentials")), FORM)
    check("token: unsupported grant", st == 400 and d["error"] == "unsupported_grant_type", d)
    nogt = dict(MAPAL_CREDS)
    del nogt["grant_type"]
    st, _, d = c.j("POST", "/connect/token", form(nogt), FORM)
    check("token: missing grant_type", st == 400 and d["error"] == "unsupported_grant_type", d)
    st, _, d = c.j("POST", "/connect/token", json.dumps(MAPAL_CREDS), {"Content-Type": "application/json"})
    check("token: JSON body refused", st == 400 and d["error"] == "invalid_request", d)
    st, _, d = c.j("POST", "/connect/token", form(dict(MAPAL_CREDS, extra="1")), FORM)
    check("token: unknown parameter refused", st == 400 and d["error"] == "invalid_request", d)
    st, _, _ = c.j("GET", "/connect/token")
    check("token: GET is 405", st == 405)
    # refresh grant: rotates, single use
    t1 = mapal_token(c)
    rf = {"grant_type": "refresh_token", "refresh_token": t1["refresh_token"], "client_id": "wf_wap_tp",
          "client_secret": "mapal-secret"}
    st, _, t2 = c.j("POST", "/connect/token", form(rf), FORM)
    check("token: refresh grant 200", st == 200 and t2["refresh_token"] != t1["refresh_token"]
          and t2["access_token"] != t1["access_token"], t2)
    st, _, d = c.j("POST", "/connect/token", form(rf), FORM)
    check("token: refresh token single use", st == 400 and d["error"] == "invalid_grant", d)
    st, _, d = c.j("POST", "/connect/token", form(dict(rf, refresh_token=t2["refresh_token"])), FORM)
    check("token: rotated refresh token works", st == 200, d)
    st, _, d = c.j("POST", "/connect/token", form(dict(rf, refresh_token=t1["access_token"])), FORM)
    check("token: access token is not a refresh token", st == 400 and d["error"] == "invalid_grant", d)
    c.ctl("POST", "/_mock/config", {"mapal_token_ttl": 120, "mapal_users": {"u2": "p&ss= wörd"}})
    st, _, d = c.j("POST", "/connect/token", form(dict(MAPAL_CREDS, username="u2", password="p&ss= wörd")), FORM)
    check("token: configured ttl and users (form-encoded password)", st == 200 and d["expires_in"] == 120, d)
    # the control log redacts secrets in form bodies
    log = log_since(c)
    bodies = " ".join(e["body"] for e in log)
    check("token: log redacts password/client_secret/refresh_token",
          "pos-pass" not in bodies and "mapal-secret" not in bodies and "<redacted:8 chars>" in bodies
          and t1["refresh_token"] not in bodies and "grant_type=password" in bodies, bodies[:300])


def sales_post(c, tok, unit, body, method="POST", headers=None):
    h = dict({"Content-Type": "application/json"}, **bearer(tok))
    h.update(headers or {})
    return c.j(method, SALES % unit, dumps(body) if not isinstance(body, (str, bytes)) else body, h)


def state(c):
    return c.ctl("GET", "/_mock/state")[2]


def t_mapal_sales(c, env, tmp):
    tok = mapal_token(c)["access_token"]
    body = {"businessDay": "2026-11-20", "realTimeSales": [slot("2026-11-20T12:00:00")]}
    st, h, d = sales_post(c, tok, 1001, body)
    check("sales: POST 200 {}", st == 200 and d == {}, (st, d))
    s = state(c)["mapal_sales"]
    check("sales: stored exactly", s == [{"unitId": 1001, "businessDay": "2026-11-20", "currencyId": "EUR",
                                          "salesTypeId": "TAKE", "timeSlotStart": "2026-11-20T12:00:00",
                                          "netSales": "250.00", "grossSales": "270.00", "numChecks": 2,
                                          "numGuests": 3, "writes": 1, "jsonNumbers": True}], s)
    body2 = {"businessDay": "2026-11-20", "realTimeSales": [slot("2026-11-20T12:00:00", "300.10", "330.11", checks=4),
                                                            slot("2026-11-20T12:15:00", "0.1", "12345678901234567890.123456789")]}
    st, _, d = sales_post(c, tok, 1001, body2, method="PUT")
    check("sales: PUT 200", st == 200, (st, d))
    s = state(c)["mapal_sales"]
    check("sales: later submission replaces, writes counted",
          s[0]["netSales"] == "300.10" and s[0]["numChecks"] == 4 and s[0]["writes"] == 2, s)
    check("sales: big/precise decimals kept exact", s[1]["grossSales"] == "12345678901234567890.123456789"
          and s[1]["netSales"] == "0.1", s[1])
    st, _, d = sales_post(c, tok, 1002, body, method="GET")
    check("sales: GET with body accepted", st == 200, (st, d))
    st, _, d = sales_post(c, tok, 1001, body, method="DELETE")
    check("sales: DELETE 405", st == 405)
    c.ctl("POST", "/_mock/config", {"mapal_sales_empty_204": True})
    st, h, d = sales_post(c, tok, 1001, body)
    check("sales: 204 empty selectable", st == 204 and d is None and "content-length" not in h, (st, h))
    c.ctl("POST", "/_mock/config", {"mapal_sales_empty_204": False})
    # auth
    st, h, d = c.j("POST", SALES % 1001, dumps(body), {"Content-Type": "application/json"})
    check("sales: no token 401 ProblemDetails", st == 401 and d["status"] == 401 and d["title"] == "Unauthorized"
          and h.get("www-authenticate", "").startswith("Bearer"), (st, d))
    st, _, d = sales_post(c, "eyJ.bogus.token", 1001, body)
    check("sales: bad token 401", st == 401)
    # validation
    bad_cases = [
        ("unknown unit", 9999, body, "unitId"),
        ("non-numeric unit", "abc", body, "unitId"),
        ("slot outside businessDay", 1001, {"businessDay": "2026-11-20", "realTimeSales": [slot("2026-11-21T00:00:00")]},
         "realTimeSales[0].timeSlotStart"),
        ("currency not configured", 1001, {"businessDay": "2026-11-20", "realTimeSales": [slot("2026-11-20T12:00:00", cur="USD")]},
         "realTimeSales[0].currencyId"),
        ("sales type not configured", 1001, {"businessDay": "2026-11-20", "realTimeSales": [slot("2026-11-20T12:00:00", st="BAR")]},
         "realTimeSales[0].salesTypeId"),
        ("misaligned slot", 1001, {"businessDay": "2026-11-20", "realTimeSales": [slot("2026-11-20T12:07:00")]},
         "realTimeSales[0].timeSlotStart"),
        ("seconds misaligned", 1001, {"businessDay": "2026-11-20", "realTimeSales": [slot("2026-11-20T12:00:01")]},
         "realTimeSales[0].timeSlotStart"),
        ("duplicated slot at index 3", 1001, {"businessDay": "2026-11-20", "realTimeSales": [
            slot("2026-11-20T12:00:00"), slot("2026-11-20T12:00:00", st="EAT_IN"), slot("2026-11-20T12:15:00"),
            slot("2026-11-20T12:00:00")]}, "realTimeSales[3].timeSlotStart"),
        ("offset in timeSlotStart", 1001, {"businessDay": "2026-11-20", "realTimeSales": [slot("2026-11-20T12:00:00Z")]},
         "realTimeSales[0].timeSlotStart"),
        ("bad businessDay", 1001, {"businessDay": "20/11/2026", "realTimeSales": [slot("2026-11-20T12:00:00")]},
         "businessDay"),
        ("missing businessDay", 1001, {"realTimeSales": [slot("2026-11-20T12:00:00")]}, "businessDay"),
        ("missing realTimeSales", 1001, {"businessDay": "2026-11-20"}, "realTimeSales"),
        ("empty realTimeSales", 1001, {"businessDay": "2026-11-20", "realTimeSales": []}, "realTimeSales"),
        ("extra top-level field", 1001, dict(body, note="x"), "note"),
        ("extra slot field", 1001, {"businessDay": "2026-11-20", "realTimeSales": [dict(slot("2026-11-20T12:00:00"), tip=1)]},
         "realTimeSales[0].tip"),
        ("missing slot field", 1001, {"businessDay": "2026-11-20", "realTimeSales": [
            {k: v for k, v in slot("2026-11-20T12:00:00").items() if k != "numGuests"}]}, "realTimeSales[0].numGuests"),
        ("string netSales", 1001, {"businessDay": "2026-11-20", "realTimeSales": [dict(slot("2026-11-20T12:00:00"), netSales="250.00")]},
         "realTimeSales[0].netSales"),
        ("bool grossSales", 1001, {"businessDay": "2026-11-20", "realTimeSales": [dict(slot("2026-11-20T12:00:00"), grossSales=True)]},
         "realTimeSales[0].grossSales"),
        ("float numChecks", 1001, {"businessDay": "2026-11-20", "realTimeSales": [dict(slot("2026-11-20T12:00:00"), numChecks=Decimal("2.0"))]},
         "realTimeSales[0].numChecks"),
        ("negative numGuests", 1001, {"businessDay": "2026-11-20", "realTimeSales": [dict(slot("2026-11-20T12:00:00"), numGuests=-1)]},
         "realTimeSales[0].numGuests"),
        ("numeric currencyId", 1001, {"businessDay": "2026-11-20", "realTimeSales": [dict(slot("2026-11-20T12:00:00"), currencyId=978)]},
         "realTimeSales[0].currencyId"),
        ("wrong-case field name", 1001, {"BusinessDay": "2026-11-20", "realTimeSales": [slot("2026-11-20T12:00:00")]},
         "BusinessDay"),
    ]
    before = state(c)["mapal_sales"]
    for name, unit, b, key in bad_cases:
        st, _, d = sales_post(c, tok, unit, b)
        ok = (st == 400 and isinstance(d, dict) and d.get("status") == 400 and
              d.get("title") == "One or more validation errors occurred." and
              d.get("type") == "https://tools.ietf.org/html/rfc7231#section-6.5.1" and key in d.get("errors", {}))
        check("sales: 400 for %s" % name, ok, (st, d))
    check("sales: rejected requests store nothing", state(c)["mapal_sales"] == before)
    st, _, d = sales_post(c, tok, 1001, '{"businessDay":')
    check("sales: invalid JSON 400", st == 400 and "$" in d["errors"], d)
    st, _, d = sales_post(c, tok, 1001, '{"businessDay":"2026-11-20","businessDay":"2026-11-20","realTimeSales":[]}')
    check("sales: duplicate JSON key 400", st == 400, d)
    st, _, d = sales_post(c, tok, 1001, dumps(body), headers={"Content-Type": "text/plain"})
    check("sales: wrong content type 415", st == 415, (st, d))
    st, _, d = sales_post(c, tok, 1001, "")
    check("sales: empty body 400", st == 400, (st, d))
    # config: slot length, units, string numbers
    c.ctl("POST", "/_mock/config", {"mapal_slot_minutes": 30,
                                    "mapal_units": {"1001": {"currencies": ["EUR"], "salesTypes": ["EAT_IN", "TAKE"]}}})
    st, _, _ = sales_post(c, tok, 1001, {"businessDay": "2026-11-20", "realTimeSales": [slot("2026-11-20T12:15:00")]})
    check("sales: slot length configurable (12:15 misaligned at 30)", st == 400)
    st, _, _ = sales_post(c, tok, 1001, {"businessDay": "2026-11-20", "realTimeSales": [slot("2026-11-20T12:30:00")]})
    check("sales: slot length configurable (12:30 ok at 30)", st == 200)
    st, _, _ = sales_post(c, tok, 1001, {"businessDay": "2026-11-20", "realTimeSales": [slot("2026-11-20T13:00:00", st="DELIVERY")]})
    check("sales: units configurable (DELIVERY removed)", st == 400)
    st, _, _ = sales_post(c, tok, 1002, body)
    check("sales: units configurable (1002 gone)", st == 400)
    c.ctl("POST", "/_mock/config", {"mapal_accept_string_numbers": True})
    st, _, _ = sales_post(c, tok, 1001, {"businessDay": "2026-11-21", "realTimeSales": [
        dict(slot("2026-11-21T10:00:00"), netSales="10.50")]})
    s = [x for x in state(c)["mapal_sales"] if x["businessDay"] == "2026-11-21"]
    check("sales: string numbers opt-in, recorded as not-JSON-numbers",
          st == 200 and s and s[0]["netSales"] == "10.50" and s[0]["jsonNumbers"] is False, s)
    # token expiry / revocation / real ttl
    c.ctl("POST", "/_mock/reset")
    t = mapal_token(c)
    c.ctl("POST", "/_mock/tokens/expire", {"vendor": "mapal"})
    st, h, d = sales_post(c, t["access_token"], 1001, body)
    check("sales: expired token 401", st == 401 and "expired" in h.get("www-authenticate", ""), (st, h))
    rf = {"grant_type": "refresh_token", "refresh_token": t["refresh_token"], "client_id": "wf_wap_tp",
          "client_secret": "mapal-secret"}
    st, _, t2 = c.j("POST", "/connect/token", form(rf), FORM)
    check("sales: refresh still valid after expire", st == 200)
    st, _, _ = sales_post(c, t2["access_token"], 1001, body)
    check("sales: refreshed token works", st == 200)
    c.ctl("POST", "/_mock/tokens/revoke")
    st, _, _ = sales_post(c, t2["access_token"], 1001, body)
    check("sales: revoked token 401", st == 401)
    st, _, d = c.j("POST", "/connect/token", form(dict(rf, refresh_token=t2["refresh_token"])), FORM)
    check("sales: revoked refresh token 400 invalid_grant", st == 400 and d["error"] == "invalid_grant")
    c.ctl("POST", "/_mock/config", {"mapal_token_ttl": 1})
    t = mapal_token(c)
    check("sales: ttl=1 reported", t["expires_in"] == 1)
    time.sleep(1.05)
    st, _, _ = sales_post(c, t["access_token"], 1001, body)
    check("sales: token expires after ttl", st == 401)
    # tenant 404 via fault
    c.ctl("POST", "/_mock/config", {"mapal_token_ttl": 3600})
    t = mapal_token(c)
    c.ctl("POST", "/_mock/faults", {"path": "real-time-sales", "action": "status", "status": 404})
    st, _, d = sales_post(c, t["access_token"], 1001, body)
    check("sales: tenant 404 via fault", st == 404 and d == {"title": "Tenant configuration not found.", "status": 404}, d)


def cash_get(c, tok, q):
    return c.j("GET", CASH + "?" + q, headers=bearer(tok))


def t_cashrec(c, env, tmp):
    tok = mapal_token(c)["access_token"]
    st, _, d = cash_get(c, tok, "startDate=2026-11-20T00:00:00&endDate=2026-11-20T23:59:59&centersList=101")
    check("cashrec: 200 two shifts", st == 200 and isinstance(d, list) and len(d) == 2, d)
    keys = ["centerId", "cashSheetId", "businessDay", "shiftId", "tillId", "openedAt", "closedAt", "currencyId",
            "netSales", "grossSales", "numChecks", "expectedCash", "countedCash", "difference", "tenders"]
    r = d[0]
    check("cashrec: record shape as contract", list(r) == keys and
          [list(t) for t in r["tenders"]] == [["paymentMethodId", "name", "amount"]] * 2, list(r))
    check("cashrec: shift 1 values", r["cashSheetId"] == "CS-101-20261120-1" and r["shiftId"] == 1 and r["tillId"] == "T1"
          and r["openedAt"] == "2026-11-20T08:00:00" and r["closedAt"] == "2026-11-20T16:00:00", r)
    check("cashrec: shift 2 values", d[1]["tillId"] == "T2" and d[1]["openedAt"] == "2026-11-20T16:00:00"
          and d[1]["closedAt"] == "2026-11-20T23:30:00", d[1])
    ok = True
    for r in d:
        ok = ok and sum(t["amount"] for t in r["tenders"]) == r["grossSales"]
        ok = ok and r["difference"] == r["countedCash"] - r["expectedCash"]
        ok = ok and all(isinstance(r[k], Decimal) and r[k].as_tuple().exponent == -2
                        for k in ("netSales", "grossSales", "expectedCash", "countedCash", "difference"))
        ok = ok and r["expectedCash"] == r["tenders"][0]["amount"]
    check("cashrec: tenders sum to gross, difference = counted - expected, 2-decimal amounts", ok, d)
    st, _, d2 = cash_get(c, tok, "STARTDATE=2026-11-20T00:00:00&EndDate=2026-11-20T23:59:59&centerslist=101")
    check("cashrec: deterministic + case-insensitive parameter names", st == 200 and d2 == d)
    st, _, d = cash_get(c, tok, "startDate=2026-11-20T00:00:00&endDate=2026-11-21T23:59:59&centersList=101,102")
    check("cashrec: 2 centres x 2 days", st == 200 and len(d) == 8 and
          [(r["centerId"], r["openedAt"]) for r in d] == sorted((r["centerId"], r["openedAt"]) for r in d), d)
    st, _, d = cash_get(c, tok, "startDate=2026-11-20T12:00:00&endDate=2026-11-20T16:00:00&centersList=101")
    check("cashrec: openedAt range inclusive", st == 200 and [r["shiftId"] for r in d] == [2], d)
    st, _, d = cash_get(c, tok, "startDate=2026-11-20T00:00:00&endDate=2026-11-20T23:59:59&centersList=999")
    check("cashrec: unknown centre gives no rows", st == 200 and d == [], d)
    bad = {
        "missing startDate": "endDate=2026-11-20T23:59:59&centersList=101",
        "missing centersList": "startDate=2026-11-20T00:00:00&endDate=2026-11-20T23:59:59",
        "date without time": "startDate=2026-11-20&endDate=2026-11-20T23:59:59&centersList=101",
        "unparsable date": "startDate=2026-13-40T00:00:00&endDate=2026-11-20T23:59:59&centersList=101",
        "empty centersList": "startDate=2026-11-20T00:00:00&endDate=2026-11-20T23:59:59&centersList=",
        "non-numeric centre": "startDate=2026-11-20T00:00:00&endDate=2026-11-20T23:59:59&centersList=101,abc",
        "end before start": "startDate=2026-11-21T00:00:00&endDate=2026-11-20T23:59:59&centersList=101",
    }
    for name, q in bad.items():
        st, _, d = cash_get(c, tok, q)
        check("cashrec: 400 for %s" % name, st == 400 and d == {"code": 100, "message":
              "Invalid parameters. You must provide valid StartDate, EndDate and CenterLists."}, (st, d))
    st, _, d = c.j("GET", CASH + "?startDate=2026-11-20T00:00:00&endDate=2026-11-20T23:59:59&centersList=101")
    check("cashrec: no token 401", st == 401)
    st, _, _ = c.j("POST", CASH, headers=bearer(tok))
    check("cashrec: POST 405", st == 405)
    # seeding replaces generated records for that centre/day
    rec = {"centerId": 101, "cashSheetId": "SEED-1", "businessDay": "2026-11-20", "shiftId": 7, "tillId": "T9",
           "openedAt": "2026-11-20T09:00:00", "closedAt": "2026-11-20T10:00:00", "currencyId": "EUR",
           "netSales": Decimal("10.10"), "grossSales": Decimal("11.11"), "numChecks": 1, "expectedCash": Decimal("11.11"),
           "countedCash": Decimal("11.00"), "difference": Decimal("-0.11"),
           "tenders": [{"paymentMethodId": "CASH", "name": "Cash", "amount": Decimal("11.11")}]}
    st, _, _ = c.j("POST", "/_mock/cashrec/sheets", dumps({"records": [rec]}), {"Content-Type": "application/json"})
    check("cashrec: seed accepted", st == 200)
    st, _, d = cash_get(c, tok, "startDate=2026-11-20T00:00:00&endDate=2026-11-21T23:59:59&centersList=101")
    check("cashrec: seeded replaces generated for that centre/day",
          st == 200 and [r["cashSheetId"] for r in d] == ["SEED-1", "CS-101-20261121-1", "CS-101-20261121-2"]
          and d[0]["difference"] == Decimal("-0.11") and str(d[0]["countedCash"]) == "11.00", d)
    s = state(c)["cashrec_seeded"]
    check("cashrec: state shows seeded with money strings", s and s[0]["countedCash"] == "11.00", s)
    st, _, d = c.j("POST", "/_mock/cashrec/sheets", {"records": [{"centerId": "x"}]})
    check("cashrec: bad seed 400", st == 400)
    c.ctl("POST", "/_mock/faults", {"path": "cashSheet", "action": "status", "status": 404})
    st, _, d = cash_get(c, tok, "startDate=2026-11-20T00:00:00&endDate=2026-11-20T23:59:59&centersList=101")
    check("cashrec: tenant 404 via fault", st == 404 and d == {"code": 0, "message": "Tenant configuration not found."}, d)


def basic(cid, sec):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (cid, sec)).encode()).decode()}


def ct_token(c, scope=None):
    f = {"grant_type": "client_credentials"}
    if scope:
        f["scope"] = scope
    return c.j("POST", "/connecteam/oauth/v1/token", form(f), dict(FORM, **basic("ct-client", "ct-secret")))


def t_ct_oauth_auth(c, env, tmp):
    st, h, d = ct_token(c)
    check("ct oauth: 200", st == 200 and set(d) == {"access_token", "token_type", "expires_in", "scope"}
          and d["token_type"] == "bearer" and d["expires_in"] == 3600
          and d["scope"] == "sales_data.read sales_data.write sales_data.delete", d)
    check("ct oauth: not rate limited (no x-ratelimit headers)", not any(k.startswith("x-ratelimit") for k in h))
    tok = d["access_token"]
    st, _, d = c.j("POST", "/connecteam/oauth/v1/token", form({"grant_type": "client_credentials"}),
                   dict(FORM, **basic("ct-client", "wrong")))
    check("ct oauth: bad secret 401", st == 401 and d["error"] == "invalid_client", d)
    st, _, d = c.j("POST", "/connecteam/oauth/v1/token", form({"grant_type": "client_credentials"}), FORM)
    check("ct oauth: no basic auth 401", st == 401)
    st, _, d = c.j("POST", "/connecteam/oauth/v1/token", form({"grant_type": "password"}),
                   dict(FORM, **basic("ct-client", "ct-secret")))
    check("ct oauth: bad grant type 400", st == 400 and d["error"] == "unsupported_grant_type", d)
    st, _, d = c.j("POST", "/connecteam/oauth/v1/token", "", basic("ct-client", "ct-secret"))
    check("ct oauth: grant_type defaults to client_credentials", st == 200, d)
    st, _, d = ct_token(c, "sales_data.read users.write")
    check("ct oauth: unauthorized scope 403", st == 403 and d["error"] == "invalid_scope", d)
    st, _, d = c.j("POST", "/connecteam/oauth/v1/token", form({"grant_type": "client_credentials", "client_id": "x"}),
                   dict(FORM, **basic("ct-client", "ct-secret")))
    check("ct oauth: extra form field 422", st == 422 and d["detail"][0]["loc"] == ["body", "client_id"], d)
    # auth on the API
    st, h, d = c.j("GET", CT + "/locations")
    check("ct auth: no key 401 domain error with rate headers", st == 401 and d["details"]["error_code"] == 1000
          and d["path"] == "/sales/v1/locations" and "x-ratelimit-minute-limit" in h, (st, d, h))
    st, _, d = c.j("GET", CT + "/locations", headers={"X-API-KEY": "nope"})
    check("ct auth: bad key 401", st == 401)
    st, _, d = c.j("GET", CT + "/locations", headers=CT_KEY)
    check("ct auth: key 200 envelope", st == 200 and set(d) == {"requestId", "data", "paging"}
          and re.fullmatch(r"[0-9a-f-]{36}", d["requestId"]) and d["data"] == {"locations": []}, d)
    st, _, d = c.j("GET", CT + "/locations", headers=bearer(tok))
    check("ct auth: bearer 200", st == 200)
    mt = mapal_token(c)["access_token"]
    st, _, _ = c.j("GET", CT + "/locations", headers=bearer(mt))
    check("ct auth: Mapal token refused", st == 401)
    st, _, rt = ct_token(c, "sales_data.read")
    st, _, d = c.j("POST", CT + "/locations", {"name": "x"}, bearer(rt["access_token"]))
    check("ct auth: read-only token cannot write (403)", st == 403 and d["details"]["error_code"] == 1003, d)
    st, _, d = c.j("GET", CT + "/locations", headers=bearer(rt["access_token"]))
    check("ct auth: read-only token can read", st == 200)
    c.ctl("POST", "/_mock/tokens/expire", {"vendor": "connecteam"})
    st, _, _ = c.j("GET", CT + "/locations", headers=bearer(tok))
    check("ct auth: expired token 401", st == 401)
    st, _, _ = c.j("GET", CT + "/locations", headers=CT_KEY)
    check("ct auth: api key unaffected by token expiry", st == 200)
    st, _, d = ct_token(c)
    c.ctl("POST", "/_mock/tokens/revoke", {"vendor": "connecteam"})
    st, _, _ = c.j("GET", CT + "/locations", headers=bearer(d["access_token"]))
    check("ct auth: revoked token 401", st == 401)
    c.ctl("POST", "/_mock/config", {"connecteam_api_keys": ["k2"]})
    st1 = c.j("GET", CT + "/locations", headers=CT_KEY)[0]
    st2 = c.j("GET", CT + "/locations", headers={"X-API-KEY": "k2"})[0]
    check("ct auth: api keys configurable", st1 == 401 and st2 == 200)
    st, h, d = c.j("GET", "/connecteam/sales/v1/nothing", headers={"X-API-KEY": "k2"})
    check("ct: unknown path 404 FastAPI-style", st == 404 and d == {"detail": "Not Found"}
          and "x-ratelimit-day-limit" in h)
    st, _, d = c.j("PATCH", CT + "/locations", headers={"X-API-KEY": "k2"})
    check("ct: wrong method 405", st == 405 and d == {"detail": "Method Not Allowed"})


def ct(c, method, path, body=None, key=CT_KEY):
    return c.j(method, CT + path, body if body is None or isinstance(body, str) else dumps(body),
               dict({"Content-Type": "application/json"} if body is not None else {}, **key))


def v422(d, loc, typ=None):
    return isinstance(d, dict) and any(e["loc"] == loc and (typ is None or e["type"] == typ) and e["msg"]
                                       for e in d.get("detail", []))


def t_ct_locations(c, env, tmp):
    st, _, d = ct(c, "POST", "/locations", {"name": "Store A"})
    check("ct loc: create default active", st == 200 and d["data"] == {"id": 1, "name": "Store A", "isActive": True}, d)
    st, _, d = ct(c, "POST", "/locations", {"name": "Store B", "isActive": False})
    check("ct loc: create inactive", st == 200 and d["data"]["isActive"] is False and d["data"]["id"] == 2, d)
    for n in ("C", "D", "E"):
        ct(c, "POST", "/locations", {"name": "Store " + n})
    for name, body, loc, typ in [
        ("missing name", {"isActive": True}, ["body", "name"], "missing"),
        ("empty name", {"name": ""}, ["body", "name"], "string_too_short"),
        ("int name", {"name": 5}, ["body", "name"], "string_type"),
        ("string isActive", {"name": "x", "isActive": "true"}, ["body", "isActive"], "bool_type"),
        ("extra field", {"name": "x", "city": "Madrid"}, ["body", "city"], "extra_forbidden"),
        ("array body", [], ["body"], "model_attributes_type"),
    ]:
        st, _, d = ct(c, "POST", "/locations", body)
        check("ct loc: 422 %s" % name, st == 422 and v422(d, loc, typ), d)
    st, _, d = ct(c, "POST", "/locations", '{"name":')
    check("ct loc: 422 invalid JSON", st == 422 and d["detail"][0]["type"] == "json_invalid", d)
    st, _, d = c.j("POST", CT + "/locations", headers=CT_KEY)
    check("ct loc: 422 missing body", st == 422 and v422(d, ["body"], "missing"), d)
    st, _, d = ct(c, "GET", "/locations?limit=2")
    check("ct loc: paging first page", st == 200 and [l["id"] for l in d["data"]["locations"]] == [1, 2]
          and d["paging"] == {"offset": 2}, d)
    st, _, d = ct(c, "GET", "/locations?limit=2&offset=4")
    check("ct loc: paging last page", [l["id"] for l in d["data"]["locations"]] == [5] and d["paging"]["offset"] == 5, d)
    st, _, d = ct(c, "GET", "/locations")
    check("ct loc: default limit lists all", len(d["data"]["locations"]) == 5 and
          set(d["data"]["locations"][0]) == {"id", "name", "isActive"})
    st, _, d = ct(c, "GET", "/locations?locationIds=1&locationIds=3&locationIds=99")
    check("ct loc: filter locationIds (repeatable)", [l["id"] for l in d["data"]["locations"]] == [1, 3], d)
    st, _, d = ct(c, "GET", "/locations?locationNames=Store%20B&locationNames=Store%20E")
    check("ct loc: filter locationNames", [l["id"] for l in d["data"]["locations"]] == [2, 5], d)
    st, _, d = ct(c, "GET", "/locations?isActive=false")
    check("ct loc: filter isActive", [l["id"] for l in d["data"]["locations"]] == [2], d)
    for name, q, loc, typ in [
        ("limit 0", "limit=0", ["query", "limit"], "greater_than_equal"),
        ("limit 1001", "limit=1001", ["query", "limit"], "less_than_equal"),
        ("limit abc", "limit=abc", ["query", "limit"], "int_parsing"),
        ("negative offset", "offset=-1", ["query", "offset"], "greater_than_equal"),
        ("bad isActive", "isActive=maybe", ["query", "isActive"], "bool_parsing"),
        ("comma locationIds", "locationIds=1,2", ["query", "locationIds", 0], "int_parsing"),
        ("unknown param", "page=2", ["query", "page"], "extra_forbidden"),
        ("repeated limit", "limit=1&limit=2", ["query", "limit"], None),
    ]:
        st, _, d = ct(c, "GET", "/locations?" + q)
        check("ct loc: 422 %s" % name, st == 422 and v422(d, loc, typ), d)
    c.ctl("POST", "/_mock/config", {"connecteam_unique_location_names": True})
    st, _, d = ct(c, "POST", "/locations", {"name": "Store A"})
    check("ct loc: 409 duplicate name when configured", st == 409 and d["error"] == "Conflict"
          and set(d) == {"error", "path", "requestId", "details"} and d["details"]["error_code"] == 1006, d)


def txs(*items):
    return {"transactionsCreateRequest": list(items)}


def tx(loc=1, st="SALE", at=1763640000, amt="12.30", tax=None, cur=None, **extra):
    t = {"locationId": loc, "saleType": st, "createdAt": at, "finalSaleAmount": Decimal(amt)}
    if tax is not None:
        t["taxAmount"] = Decimal(tax)
    if cur is not None:
        t["currency"] = cur
    t.update(extra)
    return t


def t_ct_transactions(c, env, tmp):
    ct(c, "POST", "/locations", {"name": "A"})
    ct(c, "POST", "/locations", {"name": "B"})
    st, _, d = ct(c, "POST", "/transactions", txs(tx(amt="12.30", tax="1.10", cur="EUR"), tx(loc=2, st="REFUND", amt="-5"),
                                                   tx(at=1763640001, amt="0.1")))
    ok = st == 200 and len(d["data"]["transactions"]) == 3
    check("ct tx: create 200", ok, d)
    if ok:
        t0, t1, t2 = d["data"]["transactions"]
        check("ct tx: request order, uuid4 ids, exact echo",
              all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", t["transactionId"])
                  for t in (t0, t1, t2))
              and t0["finalSaleAmount"] == Decimal("12.30") and str(t0["finalSaleAmount"]) == "12.30"
              and t0["taxAmount"] == Decimal("1.10") and t0["currency"] == "EUR" and t1["locationId"] == 2
              and t1["saleType"] == "REFUND" and t2["createdAt"] == 1763640001 and t1["taxAmount"] is None, d)
        check("ct tx: response fields", list(t0) == ["transactionId", "locationId", "saleType", "createdAt",
                                                     "finalSaleAmount", "taxAmount", "currency"], list(t0))
    s = state(c)["connecteam_transactions"]
    check("ct tx: state money strings", s[0]["finalSaleAmount"] == "12.30" and s[0]["taxAmount"] == "1.10"
          and s[1]["taxAmount"] is None, s)
    st, _, d = ct(c, "POST", "/transactions", txs(*[tx(st=x) for x in
                                                   ["SALE", "VOID", "RECALL", "REFUND", "SPLIT", "UPDATE", "TRANSFER",
                                                    "FLOAT", "TRANSITORY", "CROSS_BL", "CANCEL", "MANUAL"]]))
    check("ct tx: all 12 sale types accepted", st == 200 and len(d["data"]["transactions"]) == 12, d)
    st, _, d = ct(c, "POST", "/transactions", txs(*[tx() for _ in range(100)]))
    check("ct tx: 100 items accepted", st == 200)
    n_before = len(state(c)["connecteam_transactions"])
    cases = [
        ("101 items", txs(*[tx() for _ in range(101)]), ["body", "transactionsCreateRequest"], "too_long"),
        ("0 items", txs(), ["body", "transactionsCreateRequest"], "too_short"),
        ("missing list", {}, ["body", "transactionsCreateRequest"], "missing"),
        ("list not array", {"transactionsCreateRequest": {}}, ["body", "transactionsCreateRequest"], "list_type"),
        ("bad saleType", txs(tx(st="sale")), ["body", "transactionsCreateRequest", 0, "saleType"], "enum"),
        ("float createdAt", txs(tx(), tx(at=Decimal("1763640000.0"))), ["body", "transactionsCreateRequest", 1, "createdAt"], "int_type"),
        ("bool createdAt", txs(tx(at=True)), ["body", "transactionsCreateRequest", 0, "createdAt"], "int_type"),
        ("string createdAt", txs(tx(at="1763640000")), ["body", "transactionsCreateRequest", 0, "createdAt"], "int_type"),
        ("string locationId", txs(tx(loc="1")), ["body", "transactionsCreateRequest", 0, "locationId"], "int_type"),
        ("string amount", txs(dict(tx(), finalSaleAmount="12.30")), ["body", "transactionsCreateRequest", 0, "finalSaleAmount"], "float_type"),
        ("bool amount", txs(dict(tx(), finalSaleAmount=False)), ["body", "transactionsCreateRequest", 0, "finalSaleAmount"], "float_type"),
        ("null taxAmount", txs(dict(tx(), taxAmount=None)), ["body", "transactionsCreateRequest", 0, "taxAmount"], "float_type"),
        ("int currency", txs(tx(cur=978)), ["body", "transactionsCreateRequest", 0, "currency"], "string_type"),
        ("missing amount", txs({"locationId": 1, "saleType": "SALE", "createdAt": 1}),
         ["body", "transactionsCreateRequest", 0, "finalSaleAmount"], "missing"),
        ("extra item field", txs(tx(note="x")), ["body", "transactionsCreateRequest", 0, "note"], "extra_forbidden"),
        ("extra top field", dict(txs(tx()), dryRun=True), ["body", "dryRun"], "extra_forbidden"),
        ("item not object", txs(5), ["body", "transactionsCreateRequest", 0], "model_attributes_type"),
    ]
    for name, body, loc, typ in cases:
        st, _, d = ct(c, "POST", "/transactions", body)
        check("ct tx: 422 %s" % name, st == 422 and v422(d, loc, typ), d)
    st, _, d = ct(c, "POST", "/transactions", dumps(txs(tx())), key=dict(CT_KEY, **{"Content-Type": "text/plain"}))
    check("ct tx: 422 non-JSON content type", st == 422, d)
    st, _, d = ct(c, "POST", "/transactions?x=1", txs(tx()))
    check("ct tx: 422 unknown query param", st == 422 and v422(d, ["query", "x"], "extra_forbidden"), d)
    st, _, d = ct(c, "POST", "/transactions", txs(tx(), tx(loc=77)))
    check("ct tx: unknown location 400 domain error", st == 400 and d["details"]["error_code"] == 1004
          and d["path"] == "/sales/v1/transactions" and d["error"] == "Bad Request" and "requestId" in d, d)
    check("ct tx: rejected requests store nothing", len(state(c)["connecteam_transactions"]) == n_before)
    # delete by id
    tid = state(c)["connecteam_transactions"][0]["transactionId"]
    st, _, d = ct(c, "DELETE", "/transactions/" + tid)
    check("ct tx: delete by id", st == 200 and d["data"] == {} and len(state(c)["connecteam_transactions"]) == n_before - 1, d)
    st, _, d = ct(c, "DELETE", "/transactions/" + tid)
    check("ct tx: delete unknown id 404", st == 404 and d["details"]["error_code"] == 1005 and d["error"] == "Not Found", d)
    # delete by period (inclusive)
    c.ctl("POST", "/_mock/reset")
    ct(c, "POST", "/locations", {"name": "A"})
    ct(c, "POST", "/locations", {"name": "B"})
    ct(c, "POST", "/transactions", txs(tx(at=99), tx(at=100), tx(at=150), tx(at=200), tx(at=201), tx(loc=2, at=150)))
    st, _, d = ct(c, "DELETE", "/transactions?locationId=1&startTime=100&endTime=200")
    left = sorted((t["locationId"], t["createdAt"]) for t in state(c)["connecteam_transactions"])
    check("ct tx: delete by period inclusive", st == 200 and d["data"] == {} and left == [(1, 99), (1, 201), (2, 150)], left)
    for name, q, loc, typ in [("missing endTime", "locationId=1&startTime=1", ["query", "endTime"], "missing"),
                              ("non-int startTime", "locationId=1&startTime=1.5&endTime=2", ["query", "startTime"], "int_parsing"),
                              ("missing all", "", ["query", "locationId"], "missing")]:
        st, _, d = ct(c, "DELETE", "/transactions?" + q)
        check("ct tx: delete by period 422 %s" % name, st == 422 and v422(d, loc, typ), d)
    st, _, d = ct(c, "DELETE", "/transactions?locationId=1&startTime=5&endTime=4")
    check("ct tx: delete by period end<start 400", st == 400, d)
    st, _, d = ct(c, "DELETE", "/transactions?locationId=9&startTime=1&endTime=4")
    check("ct tx: delete by period unknown location 400", st == 400 and d["details"]["error_code"] == 1004, d)
    # lose (control)
    st, _, d = c.ctl("POST", "/_mock/connecteam/lose", {"locationId": 1, "count": 1})
    check("ct lose: by location", d["lost"] == 1 and len(state(c)["connecteam_transactions"]) == 2, d)
    tid = state(c)["connecteam_transactions"][0]["transactionId"]
    st, _, d = c.ctl("POST", "/_mock/connecteam/lose", {"transactionId": tid})
    check("ct lose: by id", d["lost"] == 1 and len(state(c)["connecteam_transactions"]) == 1, d)


def t_ct_daily(c, env, tmp):
    ct(c, "POST", "/locations", {"name": "A"})
    ct(c, "POST", "/locations", {"name": "B"})
    # 2026-11-20 00:00:00 UTC = 1795132800
    d20 = 1795132800
    ct(c, "POST", "/transactions", txs(tx(at=d20 + 3600, amt="12.30"), tx(at=d20 + 7200, amt="0.1"),
                                       tx(at=d20 + 86399, amt="-2"), tx(at=d20 + 86400 + 84600, amt="5.55"),
                                       tx(loc=2, at=d20 + 10, amt="1")))
    st, _, d = ct(c, "GET", "/daily-sales?startDate=2026-11-20&endDate=2026-11-22")
    rows = d["data"]["dailySales"] if st == 200 else None
    check("ct daily: totals exact and sparse", rows == [
        {"date": "2026-11-20", "locationId": 1, "totalSales": Decimal("10.40")},
        {"date": "2026-11-20", "locationId": 2, "totalSales": Decimal("1")},
        {"date": "2026-11-21", "locationId": 1, "totalSales": Decimal("5.55")}], d)
    st, _, d = ct(c, "PUT", "/locations/1/daily-sales", {"updates": [{"date": "2026-11-22", "projectedSales": Decimal("100.50")},
                                                                     {"date": "2026-11-20", "projectedSales": 90}]})
    check("ct projected: 200 daysAffected/updatedDays in request order", st == 200 and d["data"] == {
        "daysAffected": 2, "updatedDays": [{"date": "2026-11-22", "locationId": 1, "projectedSales": Decimal("100.50")},
                                           {"date": "2026-11-20", "locationId": 1, "totalSales": Decimal("10.40"),
                                            "projectedSales": 90}]}, d)
    st, _, d = ct(c, "PUT", "/locations/1/daily-sales", {"updates": [{"date": "2026-11-22", "projectedSales": Decimal("101.00")}]})
    st, _, d = ct(c, "GET", "/daily-sales?startDate=2026-11-21&endDate=2026-11-22&locationIds=1")
    check("ct daily: projected replaced, filtered by locationIds", st == 200 and d["data"]["dailySales"] == [
        {"date": "2026-11-21", "locationId": 1, "totalSales": Decimal("5.55")},
        {"date": "2026-11-22", "locationId": 1, "projectedSales": Decimal("101.00")}], d)
    st, _, d = ct(c, "GET", "/daily-sales?startDate=2026-11-20&endDate=2026-11-20&locationIds=2&locationIds=1")
    check("ct daily: single day, several locations", st == 200 and len(d["data"]["dailySales"]) == 2, d)
    for name, q, status, code in [("end before start", "startDate=2026-11-21&endDate=2026-11-20", 400, 1001),
                                  ("unknown location", "startDate=2026-11-20&endDate=2026-11-20&locationIds=42", 400, 1004),
                                  ("bad date format", "startDate=20261120&endDate=2026-11-20", 400, 1001)]:
        st, _, d = ct(c, "GET", "/daily-sales?" + q)
        check("ct daily: %d %s" % (status, name), st == status and d["details"]["error_code"] == code, d)
    st, _, d = ct(c, "GET", "/daily-sales?endDate=2026-11-20")
    check("ct daily: 422 missing startDate", st == 422 and v422(d, ["query", "startDate"], "missing"), d)
    # timezone: 23:30 UTC on the 20th is the 21st at +02:00
    c.ctl("POST", "/_mock/config", {"connecteam_timezone": "+02:00"})
    st, _, d = ct(c, "GET", "/daily-sales?startDate=2026-11-21&endDate=2026-11-21&locationIds=1")
    check("ct daily: account time zone configurable", st == 200 and d["data"]["dailySales"] == [
        {"date": "2026-11-21", "locationId": 1, "totalSales": Decimal("-2")}], d)
    st, _, d = c.j("POST", "/_mock/config", {"connecteam_timezone": "Europe/Madrid"})
    check("ct daily: IANA zone accepted", st == 200, d)
    c.ctl("POST", "/_mock/config", {"connecteam_timezone": "UTC"})
    for name, path, body, loc, typ in [
        ("empty updates", "/locations/1/daily-sales", {"updates": []}, ["body", "updates"], "too_short"),
        ("string projectedSales", "/locations/1/daily-sales", {"updates": [{"date": "2026-11-20", "projectedSales": "1"}]},
         ["body", "updates", 0, "projectedSales"], "float_type"),
        ("missing date", "/locations/1/daily-sales", {"updates": [{"projectedSales": 1}]}, ["body", "updates", 0, "date"], "missing"),
        ("extra field", "/locations/1/daily-sales", {"updates": [{"date": "2026-11-20", "projectedSales": 1, "x": 1}]},
         ["body", "updates", 0, "x"], "extra_forbidden"),
        ("non-int path id", "/locations/abc/daily-sales", {"updates": [{"date": "2026-11-20", "projectedSales": 1}]},
         ["path", "locationId"], "int_parsing"),
    ]:
        st, _, d = ct(c, "PUT", path, body)
        check("ct projected: 422 %s" % name, st == 422 and v422(d, loc, typ), d)
    st, _, d = ct(c, "PUT", "/locations/1/daily-sales", {"updates": [{"date": "2026-11-20", "projectedSales": 1},
                                                                     {"date": "2026-11-20", "projectedSales": 2}]})
    check("ct projected: duplicate dates 400", st == 400 and d["details"]["error_code"] == 1002, d)
    st, _, d = ct(c, "PUT", "/locations/9/daily-sales", {"updates": [{"date": "2026-11-20", "projectedSales": 1}]})
    check("ct projected: unknown location 400", st == 400 and d["details"]["error_code"] == 1004, d)
    st, _, d = ct(c, "PUT", "/locations/1/daily-sales", {"updates": [{"date": "2026-02-30", "projectedSales": 1}]})
    check("ct projected: invalid date 400", st == 400, d)
    p = state(c)["projected"]
    check("ct projected: state money strings", {"locationId": 1, "date": "2026-11-22", "projectedSales": "101.00"} in p, p)


def t_ct_ratelimit(c, env, tmp):
    c.ctl("POST", "/_mock/config", {"connecteam_minute_limit": 5, "connecteam_window_seconds": 2,
                                    "connecteam_api_keys": ["ct-key-123", "other-key"]})
    # start near the beginning of a whole second so the window is not about to end
    time.sleep(1.0 - (time.time() % 1.0) + 0.02)
    res = [ct(c, "GET", "/locations") for _ in range(6)]
    rem = [int(h["x-ratelimit-minute-remaining"]) for _, h, _ in res]
    check("ratelimit: 5 allowed then 429", [s for s, _, _ in res] == [200] * 5 + [429], [s for s, _, _ in res])
    check("ratelimit: remaining counts down", rem == [4, 3, 2, 1, 0, 0], rem)
    h = res[5][1]
    resets = {int(x[1]["x-ratelimit-minute-reset"]) for x in res}
    check("ratelimit: headers present on 429", all(k in h for k in (
        "x-ratelimit-minute-limit", "x-ratelimit-minute-remaining", "x-ratelimit-minute-reset",
        "x-ratelimit-day-limit", "x-ratelimit-day-remaining", "x-ratelimit-day-reset")) and
        h["x-ratelimit-minute-limit"] == "5", h)
    now = time.time()
    check("ratelimit: minute reset is end of window (epoch s)", len(resets) == 1 and now < list(resets)[0] <= now + 2.01,
          (resets, now))
    day_reset = int(h["x-ratelimit-day-reset"])
    check("ratelimit: day reset is next UTC midnight", day_reset % 86400 == 0 and 0 < day_reset - now <= 86400)
    check("ratelimit: day remaining counts", int(h["x-ratelimit-day-remaining"]) == 1000000 - 5)
    check("ratelimit: no Retry-After on 429", "retry-after" not in h)
    check("ratelimit: 429 body", res[5][2]["error"] == "Too Many Requests" and res[5][2]["details"]["error_code"] == 1029,
          res[5][2])
    st, _, _ = ct(c, "GET", "/locations", key={"X-API-KEY": "other-key"})
    check("ratelimit: per account (other key unaffected)", st == 200)
    lg = log_since(c)[-7:]
    check("ratelimit: the log names each request's account by key index, its window and count",
          [(e["rl_account"], e["rl_count"]) for e in lg] ==
          [("key#0", 1), ("key#0", 2), ("key#0", 3), ("key#0", 4), ("key#0", 5), ("key#0", 5), ("key#1", 1)]
          and len({e["rl_window"] for e in lg[:6]}) == 1 and lg[0]["rl_window"] == list(resets)[0] - 2
          and lg[5]["status"] == 429, [(e["rl_account"], e["rl_window"], e["rl_count"], e["status"]) for e in lg])
    check("ratelimit: the log shows no API key", "ct-key-123" not in repr(lg) and "other-key" not in repr(lg))
    st, h, _ = ct_token(c)
    check("ratelimit: oauth token endpoint not limited", st == 200)
    time.sleep(max(0, list(resets)[0] - time.time()) + 0.05)
    st, h, _ = ct(c, "GET", "/locations")
    check("ratelimit: resets after the window", st == 200 and h["x-ratelimit-minute-remaining"] == "4", (st, h))
    c.ctl("POST", "/_mock/config", {"connecteam_day_limit": 2, "connecteam_minute_limit": 100})
    res = [ct(c, "GET", "/locations")[0] for _ in range(3)]
    check("ratelimit: day limit", res == [200, 200, 429], res)
    c.ctl("POST", "/_mock/config", {"connecteam_day_limit": 1000000})
    c.ctl("POST", "/_mock/faults", {"path": "/connecteam/", "action": "status", "status": 429,
                                    "headers": {"Retry-After": "3"}})
    st, h, d = ct(c, "GET", "/locations")
    check("ratelimit: 429 with Retry-After via fault, rate headers kept", st == 429 and h.get("retry-after") == "3"
          and "x-ratelimit-minute-remaining" in h and d["error"] == "Too Many Requests", (st, h, d))


def t_faults(c, env, tmp):
    tok = mapal_token(c)["access_token"]
    q = CASH + "?startDate=2026-11-20T00:00:00&endDate=2026-11-20T23:59:59&centersList=101"
    H = bearer(tok)
    add = lambda **kw: c.ctl("POST", "/_mock/faults", kw)
    add(path="cashSheet", action="status", status=503, count=2, headers={"Retry-After": "1"}, body="busy",
        content_type="text/plain")
    r = [c.raw("GET", q, headers=H) for _ in range(3)]
    check("fault status: count=2 then normal", [x[0] for x in r] == [503, 503, 200] and r[0][1].get("retry-after") == "1"
          and r[0][2] == b"busy" and r[0][1]["content-type"] == "text/plain", [x[:2] for x in r])
    add(path="cashSheet", action="status", status=200, body_b64="WyJcdTAwMDBcdTAwZmYiLCAi/yJd")
    st, _, b = c.raw("GET", q, headers=H)
    check("fault status: body_b64 sends raw bytes", st == 200 and b == b'["\\u0000\\u00ff", "\xff"]', b)
    st, _, d = c.ctl("POST", "/_mock/faults", {"path": "x", "action": "status", "body_b64": "not base64!"})
    check("fault: bad body_b64 refused", st == 400, d)
    add(path="cashSheet", action="status", status=500, method="POST")
    st, _, _ = c.raw("GET", q, headers=H)
    check("fault: method filter", st == 200)
    c.ctl("DELETE", "/_mock/faults")
    check("fault: DELETE clears", c.ctl("GET", "/_mock/faults")[2]["faults"] == [])
    add(path="cashSheet", action="status", status=500)
    add(path="cashSheet", action="status", status=502)
    f = c.ctl("GET", "/_mock/faults")[2]["faults"]
    check("fault: GET lists rules", [x["status"] for x in f] == [500, 502] and f[0]["remaining"] == 1, f)
    r = [c.raw("GET", q, headers=H)[0] for _ in range(3)]
    check("fault: rules in order, one per request", r == [500, 502, 200], r)
    st, _, d = c.j("POST", "/_mock/faults", {"path": "(", "action": "status"})
    check("fault: bad regex 400", st == 400)
    st, _, d = c.j("POST", "/_mock/faults", {"path": "x", "action": "explode"})
    check("fault: bad action 400", st == 400)
    # delay
    add(path="cashSheet", action="delay", delay_ms=300)
    t0 = time.time()
    st, _, _ = c.raw("GET", q, headers=H)
    check("fault delay: slow then normal", st == 200 and time.time() - t0 >= 0.3)
    # hold: the request waits for a release, then is processed as usual
    add(path="cashSheet", action="hold")
    res = {}
    th = threading.Thread(target=lambda: res.update(r=c.raw("GET", q, headers=H)))
    th.start()
    held = None
    for _ in range(100):
        held = c.ctl("GET", "/_mock/inflight")[2]
        if held.get("held") == 1:
            break
        time.sleep(0.05)
    th.join(0.3)
    check("fault hold: the request waits", held.get("held") == 1 and th.is_alive() and "r" not in res, held)
    st, _, d = c.ctl("POST", "/_mock/release")
    th.join(30)
    # the answer reaches the client before the mock's handler counts the
    # request done: wait for the count, do not read it once
    after = inflight_settled(c)
    check("fault hold: released, then answered normally", d == {"released": 1} and res.get("r", [0])[0] == 200
          and after == {"inflight": 0, "held": 0, "hanging": 0},
          (d, res.get("r", [None])[0], after))
    # hang: never answered, never processed; the mock lets go once the client gives up
    ct(c, "POST", "/locations", {"name": "H"})
    n_tx = len(state(c)["connecteam_transactions"])
    add(path="/connecteam/sales/v1/transactions$", method="POST", action="hang", count=2)
    seq0 = c.ctl("GET", "/_mock/log?since=999999999")[2]["last_seq"]
    conn = c.conn(timeout=1.0)      # the client's request timeout
    t0 = time.time()
    timed_out = False
    try:
        conn.request("POST", "/connecteam/sales/v1/transactions", body=dumps(txs(tx())),
                     headers=dict(CT_KEY, **{"Content-Type": "application/json"}))
        conn.getresponse()
    except (socket.timeout, TimeoutError):
        timed_out = True
    except (http.client.HTTPException, OSError) as e:
        timed_out = repr(e)
    waited = time.time() - t0
    hanging = c.ctl("GET", "/_mock/inflight")[2]
    conn.close()
    check("fault hang: no answer until the client's timeout", timed_out is True and waited >= 0.9
          and hanging.get("hanging") == 1, (timed_out, waited, hanging))
    gone = inflight_settled(c)
    e = [x for x in log_since(c, seq0) if x["fault"] == "hang"]
    check("fault hang: let go once the client closed, logged as dropped",
          gone == {"inflight": 0, "held": 0, "hanging": 0} and len(e) == 1 and e[0]["dropped"]
          and e[0]["status"] is None and e[0]["ms"] is not None and 900 <= e[0]["ms"] < 5000, (gone, e))
    res = {}

    def hung_post():
        try:
            res["r"] = ct(c, "POST", "/transactions", txs(tx()))
        except (http.client.HTTPException, OSError) as ex:
            res["e"] = ex
    th = threading.Thread(target=hung_post)
    th.start()
    for _ in range(100):
        if c.ctl("GET", "/_mock/inflight")[2].get("hanging") == 1:
            break
        time.sleep(0.05)
    st, _, d = c.ctl("POST", "/_mock/release")
    th.join(10)
    check("fault hang: a release ends it, the connection dropped", d == {"released": 1} and not th.is_alive()
          and "e" in res and "r" not in res, (d, res))
    check("fault hang: nothing processed", len(state(c)["connecteam_transactions"]) == n_tx,
          state(c)["connecteam_transactions"])
    # latency config
    # (1 s, so that a control request slowed by a loaded machine is not taken for it)
    c.ctl("POST", "/_mock/config", {"latency_ms": 1000})
    t0 = time.time()
    c.raw("GET", q, headers=H)
    t1 = time.time()
    c.ctl("GET", "/_mock/config")
    t2 = time.time()
    check("latency_ms applies to vendor, not control", t1 - t0 >= 1.0 and t2 - t1 < 0.8, (t1 - t0, t2 - t1))
    c.ctl("POST", "/_mock/config", {"latency_ms": 0, "answer_ms": 1000})
    loc_a = ct(c, "POST", "/locations", {"name": "answer_ms"})[2]["data"]["id"]
    n_tx = len(state(c)["connecteam_transactions"])
    got = {}

    def post_late():
        got["r"] = ct(c, "POST", "/transactions", txs(tx(loc=loc_a)))
        got["t"] = time.time()
    t0 = time.time()
    th = threading.Thread(target=post_late)
    th.start()
    stored_at = None
    while th.is_alive() and stored_at is None:
        if len(state(c)["connecteam_transactions"]) > n_tx:
            stored_at = time.time()
        time.sleep(0.02)
    th.join(10)
    check("answer_ms: the vendor stores at once and answers answer_ms after the request",
          got.get("r", [0])[0] == 200 and stored_at is not None and stored_at < got["t"]
          and got["t"] - t0 >= 1.0, (got.get("r", [None])[0], stored_at and stored_at - t0, got.get("t", 0) - t0))
    c.ctl("POST", "/_mock/config", {"answer_ms": 0})
    for t in state(c)["connecteam_transactions"][n_tx:]:
        ct(c, "DELETE", "/transactions/" + t["transactionId"])
    # drop_before / drop_after on POST transactions
    ct(c, "POST", "/locations", {"name": "A"})
    seq0 = c.ctl("GET", "/_mock/log?since=999999999")[2]["last_seq"]
    add(path="transactions$", action="drop_before")
    try:
        ct(c, "POST", "/transactions", txs(tx()))
        check("fault drop_before: connection closed", False)
    except (http.client.HTTPException, OSError):
        check("fault drop_before: connection closed", True)
    check("fault drop_before: nothing processed", state(c)["connecteam_transactions"] == [])
    add(path="transactions$", action="drop_after")
    try:
        ct(c, "POST", "/transactions", txs(tx()))
        check("fault drop_after: connection closed", False)
    except (http.client.HTTPException, OSError):
        check("fault drop_after: connection closed", True)
    check("fault drop_after: request was processed", len(state(c)["connecteam_transactions"]) == 1)
    lg = log_since(c, seq0)
    check("fault drops logged", [(e["dropped"], e["status"], e["fault"]) for e in lg] ==
          [(True, None, "drop_before"), (True, 200, "drop_after")], lg)
    # status_after: processed, then answered with an error status
    add(path="transactions$", action="status_after", status=502)
    st, _, d = ct(c, "POST", "/transactions", txs(tx()))
    check("fault status_after: answered 502", st == 502, (st, d))
    check("fault status_after: request was processed", len(state(c)["connecteam_transactions"]) == 2)
    # malformed / wrong_shape / html / empty / redirect
    add(path="cashSheet", action="malformed")
    st, h, b = c.raw("GET", q, headers=H)
    bad = False
    try:
        json.loads(b)
    except ValueError:
        bad = True
    check("fault malformed: 200 truncated JSON", st == 200 and bad and int(h["content-length"]) == len(b) and b, b)
    add(path="cashSheet", action="wrong_shape")
    st, h, d = c.j("GET", q, headers=H)
    check("fault wrong_shape: cashrec gets object", st == 200 and d == {"data": []}, d)
    add(path="/connecteam/", action="wrong_shape")
    st, h, d = ct(c, "GET", "/locations")
    check("fault wrong_shape: connecteam data is a list", st == 200 and d["data"] == [], d)
    add(path="cashSheet", action="html")
    st, h, b = c.raw("GET", q, headers=H)
    check("fault html: 502 text/html", st == 502 and h["content-type"].startswith("text/html") and b"<html>" in b)
    add(path="cashSheet", action="empty")
    st, h, b = c.raw("GET", q, headers=H)
    check("fault empty: 200 no body", st == 200 and b == b"" and h["content-length"] == "0")
    add(path="cashSheet", action="redirect", location="https://elsewhere.invalid/x")
    st, h, b = c.raw("GET", q, headers=H)
    check("fault redirect: 302 Location", st == 302 and h["location"] == "https://elsewhere.invalid/x")
    # oversized: default 8 MiB, streamed with Content-Length
    add(path="cashSheet", action="oversized")
    st, h, b = c.raw("GET", q, headers=H)
    ok = st == 200 and len(b) == 8 * 1024 * 1024 and h["content-length"] == str(8 * 1024 * 1024)
    try:
        json.loads(b)
    except ValueError:
        ok = False
    check("fault oversized: 8 MiB valid JSON", ok, (st, len(b)))
    add(path="cashSheet", action="oversized", size_bytes=1000)
    st, h, b = c.raw("GET", q, headers=H)
    check("fault oversized: size_bytes", len(b) == 1000 and json.loads(b))
    # never_end: client gives up, server keeps serving
    add(path="cashSheet", action="never_end")
    seq0 = c.ctl("GET", "/_mock/log?since=999999999")[2]["last_seq"]
    conn = c.conn(timeout=2)
    t0 = time.time()
    conn.request("GET", q, headers=H)
    r = conn.getresponse()
    declared = int(r.getheader("Content-Length"))
    got = b""
    gave_up = False
    try:
        while True:
            if time.time() - t0 > 2.5:       # the client's total timeout
                gave_up = True
                break
            chunk = r.read1(100)
            if not chunk:
                break
            got += chunk
    except (socket.timeout, TimeoutError, ssl.SSLError, OSError):
        gave_up = True
    conn.close()
    check("fault never_end: headers then a byte a second, client gives up", r.status == 200 and gave_up and
          0 < len(got) < declared and 2 <= len(got) <= 5, (r.status, gave_up, len(got), declared))
    ended = False
    for _ in range(60):
        e = [x for x in log_since(c, seq0) if x["fault"] == "never_end"]
        if e and e[0]["ms"] is not None:
            ended = True
            break
        time.sleep(0.1)
    check("fault never_end: server stops once the client is gone", ended, e)
    st, _, _ = c.raw("GET", q, headers=H)
    check("server fine after never_end", st == 200)
    # faults on token endpoints
    add(path="^/connect/token$", action="status", status=500)
    st, _, d = c.j("POST", "/connect/token", form(MAPAL_CREDS), FORM)
    check("fault on token endpoint", st == 500 and d == {"error": "server_error"}, d)


def t_control(c, env, tmp):
    tok = mapal_token(c)["access_token"]
    ct(c, "POST", "/locations", {"name": "A"})
    c.j("POST", "/connecteam/oauth/v1/token", "", basic("ct-client", "ct-secret"))
    c.j("GET", CT + "/locations")
    lg = log_since(c)
    check("log: all vendor requests in order", [e["path"] for e in lg] == [
        "/connect/token", "/connecteam/sales/v1/locations", "/connecteam/oauth/v1/token", "/connecteam/sales/v1/locations"], lg)
    check("log: auth kinds", [e["auth"] for e in lg] == ["none", "api_key", "basic", "none"], [e["auth"] for e in lg])
    check("log: secrets redacted in headers", lg[1]["headers"]["x-api-key"] == "<redacted:10 chars>" and
          lg[2]["headers"]["authorization"].startswith("<redacted:"), lg[1]["headers"])
    check("log: fields", all(set(e) >= {"seq", "ts", "method", "path", "query", "headers", "auth", "body", "status",
                                        "dropped", "ms", "rl_account", "rl_window", "rl_count"} for e in lg))
    check("log: rate-limit account only on Connecteam requests it let through or refused",
          [e["rl_account"] for e in lg] == [None, "key#0", None, None], [e["rl_account"] for e in lg])
    check("log: since", [e["seq"] for e in log_since(c, lg[1]["seq"])] == [lg[2]["seq"], lg[3]["seq"]])
    st, _, d = c.j("GET", "/_mock/state")
    check("state: keys", set(d) == {"mapal_sales", "connecteam_locations", "connecteam_transactions", "projected",
                                    "cashrec_seeded"}, d)
    c.ctl("POST", "/_mock/config", {"connecteam_minute_limit": 7})
    c.ctl("POST", "/_mock/faults", {"path": "x", "action": "empty"})
    c.ctl("POST", "/_mock/reset")
    check("reset: clears log, state, faults, config", log_since(c) == [] and state(c)["connecteam_locations"] == []
          and c.ctl("GET", "/_mock/faults")[2]["faults"] == [] and
          c.ctl("GET", "/_mock/config")[2]["connecteam_minute_limit"] == 100000)
    st, _, _ = cash_get(c, tok, "startDate=2026-11-20T00:00:00&endDate=2026-11-20T23:59:59&centersList=101")
    check("reset: clears tokens", st == 401)


def mockctl(env, *args, **kw):
    p = subprocess.run([sys.executable, MOCKCTL] + list(args), env=kw.get("env", env), capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def t_mockctl(c, env, tmp):
    rc, out, err = mockctl(env, "ping")
    check("mockctl ping", rc == 0 and out == "ok\n", (rc, out, err))
    rc, out, err = mockctl(env, "config", "connecteam_minute_limit=5", "connecteam_timezone=Europe/Madrid",
                           'mapal_units={"1001":{"currencies":["EUR"],"salesTypes":["TAKE"]}}')
    cfg = c.ctl("GET", "/_mock/config")[2]
    check("mockctl config (JSON values, strings)", rc == 0 and out == "" and cfg["connecteam_minute_limit"] == 5
          and cfg["connecteam_timezone"] == "Europe/Madrid" and cfg["mapal_units"] == {
              "1001": {"currencies": ["EUR"], "salesTypes": ["TAKE"]}}, (rc, err))
    rc, out, err = mockctl(env, "config")
    check("mockctl config (print)", rc == 0 and "connecteam_minute_limit=5\n" in out)
    rc, out, err = mockctl(env, "config", "nope=1")
    check("mockctl config bad key fails", rc == 1 and "unknown config key" in err, (rc, err))
    mockctl(env, "reset")
    rc, out, err = mockctl(env, "fault", "status", "--path", "cashSheet", "--status", "503", "--count", "2",
                           "--header", "Retry-After: 7", "--method", "get")
    rc2, out2, _ = mockctl(env, "faults")
    check("mockctl fault + faults", rc == 0 and out2 == "GET cashSheet status remaining=2\n", (rc, err, out2))
    f = c.ctl("GET", "/_mock/faults")[2]["faults"][0]
    check("mockctl fault fields", f["headers"] == {"Retry-After": "7"} and f["status"] == 503 and f["count"] == 2, f)
    mockctl(env, "fault", "oversized", "--path", "x", "--size-bytes", "100")
    mockctl(env, "fault", "delay", "--path", "y", "--delay-ms", "5")
    mockctl(env, "fault", "redirect", "--path", "z", "--location", "https://a.invalid/", "--body", "b")
    f = c.ctl("GET", "/_mock/faults")[2]["faults"]
    check("mockctl fault options", f[1]["size_bytes"] == 100 and f[2]["delay_ms"] == 5 and
          f[3]["location"] == "https://a.invalid/" and f[3]["body"] == "b", f)
    rc, out, _ = mockctl(env, "faults-clear")
    check("mockctl faults-clear", rc == 0 and c.ctl("GET", "/_mock/faults")[2]["faults"] == [])
    # traffic to inspect
    t = mapal_token(c)
    sales_post(c, t["access_token"], 1001, {"businessDay": "2026-11-20", "realTimeSales": [
        slot("2026-11-20T12:00:00"), slot("2026-11-20T12:15:00", "1.5", "1.65", st="EAT_IN", checks=1, guests=1)]})
    sales_post(c, t["access_token"], 1002, {"businessDay": "2026-11-21", "realTimeSales": [slot("2026-11-21T08:00:00", "9", "9.9")]})
    rc, out, _ = mockctl(env, "mapal-sales")
    check("mockctl mapal-sales", out ==
          "1001 2026-11-20 EUR EAT_IN 2026-11-20T12:15:00 1.5 1.65 1 1 1\n"
          "1001 2026-11-20 EUR TAKE 2026-11-20T12:00:00 250.00 270.00 2 3 1\n"
          "1002 2026-11-21 EUR TAKE 2026-11-21T08:00:00 9 9.9 2 3 1\n", out)
    rc, out, _ = mockctl(env, "mapal-sales", "--unit", "1002", "--day", "2026-11-21")
    check("mockctl mapal-sales filters", out.count("\n") == 1 and out.startswith("1002 "), out)
    rc, out, _ = mockctl(env, "body", "--path", "real-time-sales", "--index", "0")
    check("mockctl body pretty, sorted, exact", rc == 0 and '"netSales": 250.00' in out and
          out.index('"businessDay"') < out.index('"realTimeSales"') and
          out.index('"currencyId"') < out.index('"grossSales"'), out)
    rc, out, _ = mockctl(env, "body", "--path", "^/connect/token$")
    check("mockctl body for form body prints redacted raw", "password=<redacted:8 chars>" in out, out)
    rc, out, err = mockctl(env, "body", "--path", "nothing-like-this")
    check("mockctl body no match fails", rc == 1 and err, (rc, err))
    rc, out, _ = mockctl(env, "mark")
    check("mockctl mark prints nothing", rc == 0 and out == "")
    ct(c, "POST", "/locations", {"name": "Store A"})
    ct(c, "POST", "/locations", {"name": "Store B", "isActive": False})
    ct(c, "POST", "/transactions", txs(tx(amt="12.30", tax="1.10", cur="EUR"), tx(loc=2, st="REFUND", at=5, amt="-1.5"),
                                       tx(at=7, amt="3")))
    ct(c, "GET", "/locations?limit=10")
    rc, out, _ = mockctl(env, "log", "--since-mark")
    check("mockctl log --since-mark default fields", out ==
          "POST\t/connecteam/sales/v1/locations\t200\n" * 2 + "POST\t/connecteam/sales/v1/transactions\t200\n"
          "GET\t/connecteam/sales/v1/locations\t200\n", out)
    rc, out, _ = mockctl(env, "log", "--path", "locations", "--method", "GET", "--fields", "method,query,status,auth,h:x-api-key")
    check("mockctl log fields/filters", out == "GET\tlimit=10\t200\tapi_key\t<redacted:10 chars>\n", out)
    rc, out, _ = mockctl(env, "log", "--path", "transactions", "--fields", "body")
    check("mockctl log body one line", out.count("\n") == 1 and '"finalSaleAmount":12.30' in out.replace(" ", ""), out)
    rc, out, _ = mockctl(env, "count")
    rc2, out2, _ = mockctl(env, "count", "--path", "locations", "--method", "POST", "--status", "200")
    rc3, out3, _ = mockctl(env, "count", "--since-mark")
    check("mockctl count", out == "7\n" and out2 == "2\n" and out3 == "4\n", (out, out2, out3))
    rc, out, _ = mockctl(env, "ct-transactions")
    check("mockctl ct-transactions", out == "1 SALE 7 3 - -\n1 SALE 1763640000 12.30 1.10 EUR\n2 REFUND 5 -1.5 - -\n", out)
    rc, out, _ = mockctl(env, "ct-transactions", "--location", "2")
    check("mockctl ct-transactions --location", out == "2 REFUND 5 -1.5 - -\n", out)
    rc, out, _ = mockctl(env, "ct-locations")
    check("mockctl ct-locations", out == "1 true Store A\n2 false Store B\n", out)
    rc, out, _ = mockctl(env, "ct-add-location", "Store C", "--inactive")
    check("mockctl ct-add-location", out == "3\n" and c.ctl("GET", "/_mock/state")[2]["connecteam_locations"][2] ==
          {"id": 3, "name": "Store C", "isActive": False}, out)
    ct(c, "PUT", "/locations/1/daily-sales", {"updates": [{"date": "2026-11-20", "projectedSales": Decimal("10.00")}]})
    rc, out, _ = mockctl(env, "ct-projected")
    check("mockctl ct-projected", out == "1 2026-11-20 10.00\n", out)
    rc, out, _ = mockctl(env, "lose", "--location", "1", "--count", "1")
    check("mockctl lose --location", out == "1\n" and len(state(c)["connecteam_transactions"]) == 2, out)
    tid = state(c)["connecteam_transactions"][0]["transactionId"]
    rc, out, _ = mockctl(env, "lose", "--transaction", tid)
    rc2, out2, _ = mockctl(env, "lose", "--transaction", tid)
    check("mockctl lose --transaction", out == "1\n" and out2 == "0\n", (out, out2))
    seed = os.path.join(tmp, "seed.json")
    with open(seed, "w") as fh:
        fh.write('{"records":[{"centerId":102,"cashSheetId":"X","businessDay":"2026-11-20","openedAt":"2026-11-20T10:00:00",'
                 '"netSales":1.10,"grossSales":1.20}]}')
    rc, out, err = mockctl(env, "seed-cashrec", seed)
    st, _, d = cash_get(c, t["access_token"], "startDate=2026-11-20T00:00:00&endDate=2026-11-20T23:59:59&centersList=102")
    check("mockctl seed-cashrec", rc == 0 and out == "" and [r["cashSheetId"] for r in d] == ["X"] and
          str(d[0]["grossSales"]) == "1.20", (rc, err, d))
    rc, out, err = mockctl(env, "tokens", "expire", "--vendor", "mapal")
    st, _, _ = cash_get(c, t["access_token"], "startDate=2026-11-20T00:00:00&endDate=2026-11-20T23:59:59&centersList=102")
    check("mockctl tokens expire", rc == 0 and out == "" and st == 401)
    rf = {"grant_type": "refresh_token", "refresh_token": t["refresh_token"], "client_id": "wf_wap_tp",
          "client_secret": "mapal-secret"}
    mockctl(env, "tokens", "revoke")
    st, _, _ = c.j("POST", "/connect/token", form(rf), FORM)
    check("mockctl tokens revoke", st == 400)
    rc, out, _ = mockctl(env, "reset")
    rc2, out2, _ = mockctl(env, "count")
    check("mockctl reset", rc == 0 and out == "" and out2 == "0\n" and state(c)["connecteam_locations"] == [])
    bad_env = dict(env, MOCK_URL="https://127.0.0.1:%d" % free_port())
    rc, out, err = mockctl(bad_env, "count")
    check("mockctl unreachable: non-zero exit + message", rc == 3 and "cannot reach" in err and out == "", (rc, err))
    rc, out, err = mockctl(dict(env, MOCK_CA=os.path.join(tmp, "ss.crt")), "ping")
    check("mockctl verifies TLS with MOCK_CA", rc != 0, (rc, err))


if __name__ == "__main__":
    main()
    sys.exit(1 if FAILED or PASSED == 0 else 0)
