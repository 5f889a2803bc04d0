"""The PgQ peer of the benchmarks (issue 15, point 4): what a careful integrator
builds from Debian's parts to send a POS table to Connecteam without sales_api.

  capture   pgq.logutriga('sales') as an AFTER INSERT ... FOR EACH ROW trigger
            (postgresql-15-pgq3)
  ticker    pgqd (Debian's pgqd), run here against the benchmark cluster from a
            generated pgqd.ini, in the foreground, stopped with SIGINT
  consumer  test/bench/pgq_consumer.c, built here against libpq and libcurl: one
            persistent connection, batches read through a cursor, 100 sales a
            request, up to 4 requests in flight, the batch finished only after
            the vendor accepted every request

test/bench/run installs the packages (and copies the extension into a PostgreSQL
installed elsewhere than Debian's tree); bench.py drives the peer through this
module.  Python 3 standard library only.
"""
import os
import shutil
import signal
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
QUEUE = "sales"
CONSUMER = "connecteam"
PDB = "sa_pgq"          # the peer's POS database: pgqd ticks it, the consumer drains it


def _out(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def unavailable(bindir):
    """None when the peer can run, else why not."""
    if os.environ.get("SA_BENCH_NO_PGQ"):
        return os.environ["SA_BENCH_NO_PGQ"]
    pg_config = os.path.join(bindir, "pg_config")
    share, lib = _out([pg_config, "--sharedir"]), _out([pg_config, "--pkglibdir"])
    if not os.path.exists(os.path.join(share, "extension", "pgq.control")) or \
            not os.path.exists(os.path.join(lib, "pgq_triggers.so")):
        return "the pgq extension is not installed in %s (Debian package postgresql-15-pgq3)" % share
    if not shutil.which("pgqd"):
        return "pgqd is not installed (Debian package pgqd)"
    if not shutil.which("cc") or not _out(["pkg-config", "--libs", "libpq", "libcurl"]):
        return "no C compiler, libpq or libcurl headers to build the consumer"
    return None


def versions():
    v = _out(["pgqd", "-V"]).splitlines()
    return v[0] if v else "pgqd ?"


def build_consumer(work):
    """Compiles test/bench/pgq_consumer.c; returns the binary's path."""
    out = os.path.join(work, "pgq_consumer")
    flags = _out(["pkg-config", "--cflags", "--libs", "libpq", "libcurl"]).split()
    r = subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", out,
                        os.path.join(HERE, "pgq_consumer.c")] + flags, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("could not build the PgQ consumer:\n" + r.stderr[-2000:])
    return out


def queue_sql(queue, max_lag="0"):
    """A queue ticked as soon as it has events (ticker_max_lag 0; the default, 3 s, is for
    replication, where fewer and bigger batches matter more than latency)."""
    return ("SELECT pgq.create_queue('%s');\n"
            "SELECT pgq.set_queue_config('%s', 'ticker_max_lag', '%s');\n" % (queue, queue, max_lag))


def trigger_sql(table, queue):
    return ("CREATE TRIGGER pgq_capture AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION pgq.logutriga('%s');\n"
            % (table, queue))


def event_table(psql, db, queue):
    """The queue's event tables' parent (TRUNCATE and count(*) reach the three rotated tables)."""
    return psql("SELECT queue_data_pfx FROM pgq.queue WHERE queue_name = '%s'" % queue, db=db)


# the procedure behind the latency figure: commit one sale, wait until the consumer has
# finished a batch whose tick sees that transaction, pause 5-25 ms (as bench_latency)
LATENCY_SQL = """
CREATE TABLE bench_lat (i int, sale_id bigint, t_commit timestamptz, t_seen_sent timestamptz, state text,
                        xid bigint);
CREATE PROCEDURE bench_latency(n int) LANGUAGE plpgsql AS $$
DECLARE
    sid  bigint;
    xid  bigint;
    t0   timestamptz;
    done boolean;
BEGIN
    FOR i IN 1..n LOOP
        t0 := clock_timestamp();
        INSERT INTO pos_latency (store, sold_at, net, tax)
        VALUES (1 + i % 50, timestamptz '2026-12-01 00:00+00' + i * interval '1 minute', 10 + i / 100.0, 0.10)
        RETURNING id INTO sid;
        xid := txid_current();
        COMMIT;
        LOOP
            SELECT txid_visible_in_snapshot(xid, t.tick_snapshot) INTO done
              FROM pgq.subscription s
              JOIN pgq.queue q ON q.queue_id = s.sub_queue
              JOIN pgq.consumer c ON c.co_id = s.sub_consumer
              JOIN pgq.tick t ON t.tick_queue = s.sub_queue AND t.tick_id = s.sub_last_tick
             WHERE q.queue_name = '@QUEUE@' AND c.co_name = '@CONSUMER@';
            EXIT WHEN done OR clock_timestamp() > t0 + interval '10 s';
            PERFORM pg_sleep(0.001);
        END LOOP;
        INSERT INTO bench_lat VALUES (i, sid, t0, clock_timestamp(), CASE WHEN done THEN 'sent' ELSE 'waiting' END,
                                      xid);
        COMMIT;
        PERFORM pg_sleep(0.005 + random() * 0.020);
    END LOOP;
END $$;
""".replace("@QUEUE@", QUEUE).replace("@CONSUMER@", CONSUMER)


# per sale of the latency run: when the first tick that sees its transaction was made (NULL once
# pgqd's maintenance has deleted that tick)
TICK_OF_SALE_SQL = """
SELECT b.i, extract(epoch FROM (SELECT min(t.tick_time) FROM pgq.tick t
                                  JOIN pgq.queue q ON q.queue_id = t.tick_queue AND q.queue_name = '%s'
                                 WHERE txid_visible_in_snapshot(b.xid, t.tick_snapshot)))
  FROM bench_lat b ORDER BY b.i
""" % QUEUE


class Peer:
    """pgqd and the consumer against database PDB of the benchmark cluster."""

    def __init__(self, psql, bindir, work, tick_ms, poll_ms, concurrency, sales_table_sql):
        self.psql, self.bindir, self.work = psql, bindir, work
        self.tick_ms, self.poll_ms, self.concurrency = tick_ms, poll_ms, concurrency
        self.sales_table_sql = sales_table_sql
        self.pgqd = self.consumer = None
        self.consumer_bin = None
        self.out_path = os.path.join(work, "pgq_consumer.out")
        self.err_path = os.path.join(work, "pgq_consumer.log")

    # -- the database ------------------------------------------------------
    def setup(self):
        """A fresh PDB: the extension, the queue, pos_sales captured by logutriga, the consumer
        registered (so that what is inserted before it first runs is kept for it)."""
        self.stop()
        self.psql("SET client_min_messages = warning;\nDROP DATABASE IF EXISTS %s;\nCREATE DATABASE %s;"
                  % (PDB, PDB), db="postgres")
        self.psql("CREATE EXTENSION pgq;\n" + queue_sql(QUEUE)
                  + self.sales_table_sql.format(t="pos_sales") + trigger_sql("pos_sales", QUEUE)
                  + "SELECT pgq.register_consumer('%s', '%s');\n" % (QUEUE, CONSUMER), db=PDB)

    def pause_ticks(self, paused):
        self.psql("SELECT pgq.set_queue_config('%s', 'ticker_paused', '%d')" % (QUEUE, int(paused)), db=PDB)

    # -- the ticker --------------------------------------------------------
    def start_ticker(self):
        ini = os.path.join(self.work, "pgqd.ini")
        with open(ini, "w") as f:
            f.write("[pgqd]\n"
                    "logfile = %s\n"
                    "pidfile = %s\n"
                    "base_connstr = host=%s port=%s user=%s\n"
                    "initial_database = %s\n"
                    "database_list = %s\n"
                    "syslog = 0\n"
                    "ticker_period = %g\n" % (
                        os.path.join(self.work, "pgqd.log"), os.path.join(self.work, "pgqd.pid"),
                        os.environ["PGHOST"], os.environ["PGPORT"], os.environ.get("PGUSER", "postgres"),
                        PDB, PDB, self.tick_ms / 1000.0))
        # in the foreground, so that this process owns it and reaps it
        self.pgqd = subprocess.Popen(["pgqd", "-q", ini], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.time()
        while "pgq version ok" not in self._read(os.path.join(self.work, "pgqd.log")):
            if self.pgqd.poll() is not None or time.time() - t0 > 30:
                raise RuntimeError("pgqd did not start: %s" % self._read(os.path.join(self.work, "pgqd.log"))[-1500:])
            time.sleep(0.1)

    # -- the consumer ------------------------------------------------------
    def start_consumer(self):
        if self.consumer_bin is None:
            self.consumer_bin = build_consumer(self.work)
        self.out = open(self.out_path, "a")
        self.err = open(self.err_path, "a")
        conninfo = "host=%s port=%s user=%s dbname=%s" % (
            os.environ["PGHOST"], os.environ["PGPORT"], os.environ.get("PGUSER", "postgres"), PDB)
        self.consumer = subprocess.Popen(
            [self.consumer_bin, "--db", conninfo, "--queue", QUEUE, "--consumer", CONSUMER,
             "--url", os.environ["MOCK_URL"] + "/connecteam/sales/v1/transactions", "--ca", os.environ["MOCK_CA"],
             "--concurrency", str(self.concurrency), "--per-request", "100", "--poll-ms", str(self.poll_ms)],
            stdout=self.out, stderr=self.err, env=dict(os.environ, PGQ_CT_API_KEY="ct-key-123"))
        t0 = time.time()
        while "consuming queue" not in self._read(self.err_path):
            if self.consumer.poll() is not None or time.time() - t0 > 30:
                raise RuntimeError("the PgQ consumer did not start: %s" % self._read(self.err_path)[-1500:])
            time.sleep(0.05)

    def consumer_pids(self):
        """(the consumer process, its backend)"""
        b = self.psql("SELECT pid FROM pg_stat_activity WHERE application_name = 'pgq_consumer'", db="postgres")
        return self.consumer.pid, (int(b) if b else None)

    def batches(self):
        """The consumer's finished batches: dicts of id, events, requests, retries, start, end."""
        out = []
        for line in self._read(self.out_path).splitlines():
            f = line.split()
            if len(f) == 12 and f[0] == "batch":
                out.append({"id": int(f[1]), "events": int(f[3]), "requests": int(f[5]), "retries": int(f[7]),
                            "start": float(f[9]), "end": float(f[11])})
        return out

    def check_alive(self):
        if self.consumer is not None and self.consumer.poll() is not None:
            raise RuntimeError("the PgQ consumer exited (%s): %s" % (
                self.consumer.returncode, self._read(self.err_path)[-1500:]))
        if self.pgqd is not None and self.pgqd.poll() is not None:
            raise RuntimeError("pgqd exited: %s" % self._read(os.path.join(self.work, "pgqd.log"))[-1500:])

    def stop(self):
        for name in ("consumer", "pgqd"):
            p = getattr(self, name)
            if p is None:
                continue
            if p.poll() is None:
                p.send_signal(signal.SIGTERM if name == "consumer" else signal.SIGINT)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            setattr(self, name, None)

    @staticmethod
    def _read(path):
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""
