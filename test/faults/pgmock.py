"""test/faults/pgmock.py: what the Python checks of test/faults share: psql
in a fresh session (SQLSTATE and crash detection), the mock's control
interface, SQL literals."""
import json
import os
import re
import ssl
import subprocess
import tempfile
import urllib.request

MOCK = os.environ["MOCK_URL"]
CTX = ssl.create_default_context(cafile=os.environ["MOCK_CA"])


def mock(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(MOCK + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=CTX, timeout=30) as r:
        return json.loads(r.read() or b"null")


def mock_seq():
    """The mock's log position; mock_requests_since(seq) lists what came after."""
    return mock("GET", "/_mock/log?since=%d" % (1 << 62))["last_seq"]


def mock_requests_since(seq):
    return mock("GET", "/_mock/log?since=%d" % seq)["requests"]


def psql(sql, db, timeout=120, user=None):
    """Run sql in one session: (exit code, stdout, stderr)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(sql)
        name = f.name
    os.chmod(name, 0o644)
    cmd = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-d", db, "-f", name]
    if user:
        cmd[1:1] = ["-U", user]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return 99, "", "psql timed out after %ds" % timeout
    finally:
        os.unlink(name)


ERR_RE = re.compile(r"^(?:psql:[^\n]*?)?(ERROR|FATAL|PANIC):  ([0-9A-Z]{5}): (.*)$", re.M)


def sqlstate(err):
    """(level, SQLSTATE, message) of the first error psql printed, or None."""
    m = ERR_RE.search(err)
    return (m.group(1), m.group(2), m.group(3)) if m else None


def crashed(err):
    return "server closed the connection unexpectedly" in err or "terminated abnormally" in err


def lit(s):
    """An SQL string literal (standard_conforming_strings: backslashes are literal)."""
    return "NULL" if s is None else "'" + s.replace("'", "''") + "'"
