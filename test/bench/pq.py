"""A minimal libpq client through ctypes (the benchmarks use the Python standard
library only; psycopg2 is not assumed).  Used where the benchmark needs the
client's own clock around a statement, e.g. just before COMMIT is sent.

Connection parameters come from the environment (PGHOST, PGPORT, PGUSER), as
psql's do."""
import ctypes
import ctypes.util

PGRES_COMMAND_OK = 1
PGRES_TUPLES_OK = 2
CONNECTION_OK = 0

_lib = None


def _libpq():
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("pq") or "libpq.so.5"
        lib = ctypes.CDLL(name)
        lib.PQconnectdb.restype = ctypes.c_void_p
        lib.PQconnectdb.argtypes = [ctypes.c_char_p]
        lib.PQstatus.argtypes = [ctypes.c_void_p]
        lib.PQerrorMessage.restype = ctypes.c_char_p
        lib.PQerrorMessage.argtypes = [ctypes.c_void_p]
        lib.PQfinish.argtypes = [ctypes.c_void_p]
        lib.PQexec.restype = ctypes.c_void_p
        lib.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.PQresultStatus.argtypes = [ctypes.c_void_p]
        lib.PQresultErrorMessage.restype = ctypes.c_char_p
        lib.PQresultErrorMessage.argtypes = [ctypes.c_void_p]
        lib.PQntuples.argtypes = [ctypes.c_void_p]
        lib.PQgetvalue.restype = ctypes.c_char_p
        lib.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.PQgetisnull.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.PQclear.argtypes = [ctypes.c_void_p]
        _lib = lib
    return _lib


def available():
    """None when libpq can be loaded, else why not."""
    try:
        _libpq()
        return None
    except OSError as e:
        return "libpq not loadable: %s" % e


class Conn:
    def __init__(self, dbname):
        lib = _libpq()
        self.c = lib.PQconnectdb(("dbname=%s application_name=bench_client" % dbname).encode())
        if not self.c or lib.PQstatus(self.c) != CONNECTION_OK:
            msg = lib.PQerrorMessage(self.c).decode() if self.c else "out of memory"
            self.close()
            raise RuntimeError("libpq connect to %s: %s" % (dbname, msg.strip()))

    def exec(self, sql):
        """Run one statement; returns the first column of the first row (or None)."""
        lib = _libpq()
        r = lib.PQexec(self.c, sql.encode())
        try:
            st = lib.PQresultStatus(r) if r else -1
            if st not in (PGRES_COMMAND_OK, PGRES_TUPLES_OK):
                msg = lib.PQresultErrorMessage(r).decode() if r else lib.PQerrorMessage(self.c).decode()
                raise RuntimeError("libpq: %s -- SQL: %s" % (msg.strip(), sql[:300]))
            if st == PGRES_TUPLES_OK and lib.PQntuples(r) > 0 and not lib.PQgetisnull(r, 0, 0):
                return lib.PQgetvalue(r, 0, 0).decode()
            return None
        finally:
            if r:
                lib.PQclear(r)

    def close(self):
        if self.c:
            _libpq().PQfinish(self.c)
            self.c = None
