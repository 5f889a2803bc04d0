/*
 * test/bench/pgq_consumer.c: the PgQ peer's consumer (issue 15, point 4).
 *
 * What a careful integrator builds from Debian's parts to send a POS table to
 * Connecteam without sales_api: pgq.logutriga() captures every row into a PgQ
 * queue, pgqd ticks it, and this program drains it.  One persistent libpq
 * connection; one libcurl multi handle with up to --concurrency requests in
 * flight over kept-alive HTTPS connections, the server certificate verified
 * against --ca.  For each batch:
 *
 *     SELECT pgq.next_batch(queue, consumer)            -- autocommit; NULL: sleep --poll-ms
 *     BEGIN
 *     SELECT ... FROM pgq.get_batch_cursor(batch, 'evs', --fetch)   -- first rows + a cursor
 *     FETCH --fetch FROM evs ...                        -- as requests need them: bounded memory
 *     POST /sales/v1/transactions, --per-request sales each, until the vendor accepted them all
 *     SELECT pgq.finish_batch(batch); COMMIT            -- only then is the batch done
 *
 * Delivery is at least once: a batch is finished only after every one of its
 * requests was answered 200; if the program or its connection dies before
 * that, PgQ hands the whole batch out again and the requests that had been
 * accepted are sent twice (Connecteam has no idempotency key).  429 waits for
 * the window's reset (x-ratelimit-minute-reset), 5xx and transport errors are
 * retried with exponential backoff (an ambiguous timeout is retried too: a
 * possible duplicate), any other status stops the program without finishing
 * the batch, for an operator to look at.
 *
 * The mapping is this POS table's (test/bench/bench.py SALES_TABLE), written
 * out as an integrator would: store -> locationId, kind -> saleType, sold_at ->
 * createdAt (Unix seconds), net -> finalSaleAmount, tax -> taxAmount, 'EUR'.
 *
 * Prints one line per finished batch that had events on stdout (the benchmark reads them):
 *     batch ID events N requests R retries T start EPOCH end EPOCH
 *
 * Build: cc -O2 -o pgq_consumer pgq_consumer.c $(pkg-config --cflags --libs libpq libcurl)
 * Run:   PGQ_CT_API_KEY=... pgq_consumer --db 'dbname=...' --queue sales --consumer connecteam \
 *            --url https://host/connecteam/sales/v1/transactions --ca ca.crt [--concurrency 4]
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libpq-fe.h>

/* ---------------------------------------------------------------------- */
/* options */
static const char *opt_db = "";
static const char *opt_queue = "sales";
static const char *opt_consumer = "connecteam";
static const char *opt_url;
static const char *opt_ca;
static int opt_concurrency = 4;
static int opt_per_request = 100;
static int opt_fetch = 1000;
static int opt_poll_ms = 50;
static const char *api_key;

static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
    (void) sig;
    stop_requested = 1;
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "pgq_consumer: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void *
xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p)
        die("out of memory");
    return p;
}

/* ---------------------------------------------------------------------- */
/* a growing string */
typedef struct
{
    char       *s;
    size_t      len, cap;
} Buf;

static void
buf_add(Buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap)
    {
        b->cap = (b->len + n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void
buf_str(Buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* ---------------------------------------------------------------------- */
/* PostgreSQL */
static PGconn *conn;

static PGresult *
q(const char *sql, int nparams, const char *const *params, ExecStatusType want)
{
    PGresult   *r = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(r) != want)
        die("%s: %s", sql, PQerrorMessage(conn));
    return r;
}

static void
q0(const char *sql)
{
    PQclear(q(sql, 0, NULL, PGRES_COMMAND_OK));
}

/* ---------------------------------------------------------------------- */
/* one event (logutriga: ev_data urlencoded, "col=val&col=val", '+' for space) -> one JSON item */
static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* decodes in place; returns 0 on a malformed escape */
static int
urldecode(char *s)
{
    char       *o = s;

    for (; *s; s++)
    {
        if (*s == '+')
            *o++ = ' ';
        else if (*s == '%')
        {
            int         h = s[1] ? hexval(s[1]) : -1,
                        l = (h >= 0 && s[2]) ? hexval(s[2]) : -1;

            if (h < 0 || l < 0)
                return 0;
            *o++ = (char) (h * 16 + l);
            s += 2;
        }
        else
            *o++ = *s;
    }
    *o = '\0';
    return 1;
}

/* "2026-11-01 00:00:00[.ffffff]+00[:MM[:SS]]" (timestamptz's ISO output) -> Unix seconds, floored */
static int
parse_timestamptz(const char *s, long long *out)
{
    struct tm   tm;
    int         y, mo, d, h, mi, sec, n = 0;
    const char *p;
    long        off = 0;

    if (sscanf(s, "%4d-%2d-%2d %2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
        return 0;
    p = s + n;
    if (*p == '.')
        for (p++; isdigit((unsigned char) *p); p++)
            ;
    if (*p == '+' || *p == '-')
    {
        int         sign = *p == '-' ? -1 : 1,
                    oh = 0, om = 0, os = 0;

        if (sscanf(p + 1, "%2d", &oh) != 1)
            return 0;
        p += 3;
        if (*p == ':')
        {
            if (sscanf(p + 1, "%2d", &om) != 1)
                return 0;
            p += 3;
            if (*p == ':')
            {
                if (sscanf(p + 1, "%2d", &os) != 1)
                    return 0;
                p += 3;
            }
        }
        off = sign * (oh * 3600L + om * 60L + os);
    }
    if (*p != '\0')
        return 0;               /* BC dates, infinity, another DateStyle: refuse */
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *out = (long long) timegm(&tm) - off;
    return 1;
}

/* a JSON number as PostgreSQL's numeric output writes it: -?digits(.digits)? */
static int
is_number(const char *s)
{
    if (*s == '-')
        s++;
    if (!isdigit((unsigned char) *s))
        return 0;
    while (isdigit((unsigned char) *s))
        s++;
    if (*s == '.')
    {
        s++;
        if (!isdigit((unsigned char) *s))
            return 0;
        while (isdigit((unsigned char) *s))
            s++;
    }
    return *s == '\0';
}

static void
json_string(Buf *b, const char *s)
{
    buf_add(b, "\"", 1);
    for (; *s; s++)
    {
        unsigned char c = (unsigned char) *s;
        char        esc[8];

        if (c == '"' || c == '\\')
        {
            esc[0] = '\\';
            esc[1] = (char) c;
            buf_add(b, esc, 2);
        }
        else if (c < 0x20)
        {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            buf_add(b, esc, 6);
        }
        else
            buf_add(b, (const char *) &c, 1);
    }
    buf_add(b, "\"", 1);
}

/* appends {"locationId":..} for one event to b; returns 0 (with why) if the row does not map */
static int
event_to_json(const char *ev_type, const char *ev_data, Buf *b, const char **why)
{
    char       *data = strdup(ev_data), *save = NULL, *tok;
    const char *store = NULL, *kind = NULL, *sold_at = NULL, *net = NULL, *tax = NULL;
    long long   created;
    char        num[32];
    int         ok = 0;

    if (!data)
        die("out of memory");
    if (ev_type[0] != 'I')
    {
        *why = "not an INSERT event (the consumer sends new sales only)";
        goto out;
    }
    for (tok = strtok_r(data, "&", &save); tok; tok = strtok_r(NULL, "&", &save))
    {
        char       *eq = strchr(tok, '=');

        if (!eq)
            continue;           /* a NULL column */
        *eq = '\0';
        if (!urldecode(tok) || !urldecode(eq + 1))
        {
            *why = "malformed urlencoding";
            goto out;
        }
        if (strcmp(tok, "store") == 0)
            store = eq + 1;
        else if (strcmp(tok, "kind") == 0)
            kind = eq + 1;
        else if (strcmp(tok, "sold_at") == 0)
            sold_at = eq + 1;
        else if (strcmp(tok, "net") == 0)
            net = eq + 1;
        else if (strcmp(tok, "tax") == 0)
            tax = eq + 1;
    }
    if (!store || !kind || !sold_at || !net)
    {
        *why = "a required column is missing or NULL";
        goto out;
    }
    if (!is_number(store) || strchr(store, '.') || !is_number(net) || (tax && !is_number(tax)))
    {
        *why = "a number column does not read as a number";
        goto out;
    }
    if (!parse_timestamptz(sold_at, &created))
    {
        *why = "sold_at is not an ISO timestamptz";
        goto out;
    }
    buf_str(b, "{\"locationId\":");
    buf_str(b, store);
    buf_str(b, ",\"saleType\":");
    json_string(b, kind);
    snprintf(num, sizeof(num), ",\"createdAt\":%lld", created);
    buf_str(b, num);
    buf_str(b, ",\"finalSaleAmount\":");
    buf_str(b, net);
    if (tax)
    {
        buf_str(b, ",\"taxAmount\":");
        buf_str(b, tax);
    }
    buf_str(b, ",\"currency\":\"EUR\"}");
    ok = 1;
out:
    free(data);
    return ok;
}

/* ---------------------------------------------------------------------- */
/* HTTP */
typedef struct Req
{
    CURL       *easy;
    Buf         body;           /* {"transactionsCreateRequest":[...]} */
    int         n_items;
    Buf         resp;
    long        reset_at;       /* x-ratelimit-minute-reset of the answer, 0 if none */
    long        remaining;      /* x-ratelimit-minute-remaining, -1 if none */
    int         attempts;
    double      not_before;     /* retry time */
    int         busy;           /* in the multi handle */
    int         waiting;        /* waiting for a retry */
} Req;

static CURLM *multi;
static struct curl_slist *headers;
static Req *reqs;               /* opt_concurrency slots: a slot is a request and its connection */
static double hold_until;       /* no new request before this (rate-limit window reset) */
static long budget = -1;        /* requests the window has left (the vendor's count less those in flight), -1 unknown */
static double budget_reset;     /* when the window ends */

static size_t
on_body(char *p, size_t size, size_t n, void *ud)
{
    Req        *r = ud;

    buf_add(&r->resp, p, size * n);
    return size * n;
}

static size_t
on_header(char *p, size_t size, size_t n, void *ud)
{
    Req        *r = ud;
    size_t      len = size * n;
    char        line[256];

    if (len >= sizeof(line))
        return len;
    memcpy(line, p, len);
    line[len] = '\0';
    if (strncasecmp(line, "x-ratelimit-minute-reset:", 25) == 0)
        r->reset_at = atol(line + 25);
    else if (strncasecmp(line, "x-ratelimit-minute-remaining:", 29) == 0)
        r->remaining = atol(line + 29);
    return len;
}

static void
http_init(void)
{
    Buf         h = {0};
    int         i;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        die("curl_global_init failed");
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) opt_concurrency);
    buf_str(&h, "X-API-KEY: ");
    buf_str(&h, api_key);
    headers = curl_slist_append(headers, h.s);
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, "Expect:");
    free(h.s);
    reqs = calloc(opt_concurrency, sizeof(Req));
    if (!reqs)
        die("out of memory");
    for (i = 0; i < opt_concurrency; i++)
    {
        CURL       *e = curl_easy_init();

        if (!e)
            die("curl_easy_init failed");
        curl_easy_setopt(e, CURLOPT_URL, opt_url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(e, CURLOPT_CAINFO, opt_ca);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &reqs[i]);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, &reqs[i]);
        curl_easy_setopt(e, CURLOPT_PRIVATE, &reqs[i]);
        reqs[i].easy = e;
    }
}

static void
req_start(Req *r)
{
    r->resp.len = 0;
    if (r->resp.s)
        r->resp.s[0] = '\0';
    r->reset_at = 0;
    r->remaining = -1;
    r->attempts++;
    r->waiting = 0;
    r->busy = 1;
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body.s);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long) r->body.len);
    if (curl_multi_add_handle(multi, r->easy) != CURLM_OK)
        die("curl_multi_add_handle failed");
}

/* ---------------------------------------------------------------------- */
/* the events fetched and not yet in a request: their JSON, one after the other */
typedef struct
{
    Buf         items;          /* "{..},{..}" */
    size_t     *ends;           /* ends[i]: the offset just past item i */
    int         n, cap;
} Pending;

static int
fetch_rows(PGresult *r, Pending *p, long long batch)
{
    int         i, n = PQntuples(r);
    /* get_batch_cursor() returns the columns asked for, FETCH all of the cursor's */
    int         c_id = PQfnumber(r, "ev_id"),
                c_type = PQfnumber(r, "ev_type"),
                c_data = PQfnumber(r, "ev_data");

    if (c_id < 0 || c_type < 0 || c_data < 0)
        die("batch %lld: no ev_id, ev_type or ev_data in the events", batch);
    for (i = 0; i < n; i++)
    {
        const char *why = NULL;

        if (p->n > 0)
            buf_add(&p->items, ",", 1);
        if (!event_to_json(PQgetvalue(r, i, c_type), PQgetvalue(r, i, c_data), &p->items, &why))
            /* a careful integrator stops rather than drop a sale: the batch stays unfinished */
            die("batch %lld event %s does not map to a Connecteam sale (%s): %s", batch,
                PQgetvalue(r, i, c_id), why, PQgetvalue(r, i, c_data));
        if (p->n == p->cap)
        {
            p->cap = p->cap ? p->cap * 2 : 1024;
            p->ends = xrealloc(p->ends, p->cap * sizeof(size_t));
        }
        p->ends[p->n++] = p->items.len;
    }
    return n;
}

/* moves the first k items of p into r's body */
static void
take_items(Pending *p, int k, Req *r)
{
    size_t      cut = p->ends[k - 1];
    int         i;

    r->body.len = 0;
    buf_str(&r->body, "{\"transactionsCreateRequest\":[");
    buf_add(&r->body, p->items.s, cut);
    buf_str(&r->body, "]}");
    r->n_items = k;
    r->attempts = 0;
    if (cut < p->items.len)
        cut++;                  /* the comma */
    memmove(p->items.s, p->items.s + cut, p->items.len - cut + 1);
    p->items.len -= cut;
    for (i = k; i < p->n; i++)
        p->ends[i - k] = p->ends[i] - cut;
    p->n -= k;
}

/* counts the transactions in a 200's body */
static int
count_created(const char *s)
{
    int         n = 0;

    while ((s = strstr(s, "\"transactionId\"")) != NULL)
    {
        n++;
        s += 15;
    }
    return n;
}

/* ---------------------------------------------------------------------- */
static void
process_batch(const char *batch_id)
{
    const char *params[1] = {batch_id};
    char        fetch_sql[64];
    char        quick[16];
    const char *p3[3];
    PGresult   *r;
    Pending     pend = {{0}, NULL, 0, 0};
    int         exhausted, inflight = 0, events = 0, requests = 0, retries = 0, i;
    long long   batch = atoll(batch_id);
    double      t0 = now_s();

    snprintf(fetch_sql, sizeof(fetch_sql), "FETCH %d FROM batch_events", opt_fetch);
    snprintf(quick, sizeof(quick), "%d", opt_fetch);
    q0("BEGIN");
    p3[0] = batch_id;
    p3[1] = "batch_events";
    p3[2] = quick;
    r = q("SELECT ev_id, ev_type, ev_data FROM pgq.get_batch_cursor($1::bigint, $2, $3::int4)", 3, p3,
          PGRES_TUPLES_OK);
    events += fetch_rows(r, &pend, batch);
    exhausted = PQntuples(r) < opt_fetch;
    PQclear(r);

    for (;;)
    {
        double      now = now_s();
        int         running, msgs;
        CURLMsg    *m;
        long        wait_ms = 1000;

        /* fill the free slots: retries that are due first, then new requests */
        if (budget >= 0 && now >= budget_reset)
            budget = -1;        /* a new window */
        for (i = 0; i < opt_concurrency && now >= hold_until; i++)
            if (reqs[i].waiting && now >= reqs[i].not_before)
            {
                if (budget == 0)
                {
                    hold_until = budget_reset;
                    break;
                }
                req_start(&reqs[i]);
                inflight++;
                retries++;
                if (budget > 0)
                    budget--;
            }
        for (i = 0; i < opt_concurrency && now >= hold_until; i++)
        {
            Req        *s = &reqs[i];

            if (s->busy || s->waiting)
                continue;
            if (budget == 0)
            {
                hold_until = budget_reset;      /* the window is used up: wait for the next */
                break;
            }
            while (pend.n < opt_per_request && !exhausted)
            {
                r = q(fetch_sql, 0, NULL, PGRES_TUPLES_OK);
                events += fetch_rows(r, &pend, batch);
                exhausted = PQntuples(r) < opt_fetch;
                PQclear(r);
            }
            if (pend.n == 0)
                break;
            take_items(&pend, pend.n < opt_per_request ? pend.n : opt_per_request, s);
            req_start(s);
            inflight++;
            requests++;
            if (budget > 0)
                budget--;
        }
        if (inflight == 0)
        {
            int         waiting = 0;

            for (i = 0; i < opt_concurrency; i++)
                waiting |= reqs[i].waiting;
            if (!waiting && pend.n == 0 && exhausted)
                break;          /* every event of the batch was accepted */
        }
        /* wake for the next due retry or the end of a rate-limit hold */
        for (i = 0; i < opt_concurrency; i++)
            if (reqs[i].waiting)
            {
                long        ms = (long) ((reqs[i].not_before - now) * 1000) + 1;

                if (ms < wait_ms)
                    wait_ms = ms < 1 ? 1 : ms;
            }
        if (hold_until > now && (long) ((hold_until - now) * 1000) + 1 < wait_ms)
            wait_ms = (long) ((hold_until - now) * 1000) + 1;
        curl_multi_perform(multi, &running);
        if (inflight > 0)
            curl_multi_poll(multi, NULL, 0, (int) wait_ms, NULL);
        else
            usleep((useconds_t) (wait_ms < 1000 ? wait_ms : 999) * 1000);
        curl_multi_perform(multi, &running);
        while ((m = curl_multi_info_read(multi, &msgs)) != NULL)
        {
            Req        *s;
            long        status = 0;
            char       *priv;

            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
            s = (Req *) priv;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            curl_multi_remove_handle(multi, m->easy_handle);
            s->busy = 0;
            inflight--;
            now = now_s();
            if (s->remaining >= 0 && s->reset_at > 0)
            {
                /* pace by the vendor's count: what the window has left, less what is in flight */
                budget = s->remaining > inflight ? s->remaining - inflight : 0;
                budget_reset = (double) s->reset_at;
            }
            if (m->data.result == CURLE_OK && status == 200)
            {
                int         got = count_created(s->resp.s ? s->resp.s : "");

                if (got != s->n_items)
                    die("batch %lld: the vendor created %d transactions for %d sales", batch, got, s->n_items);
                continue;
            }
            if (m->data.result == CURLE_OK && status == 429)
            {
                s->not_before = s->reset_at > 0 ? (double) s->reset_at : now + 1.0;
                if (s->not_before > hold_until)
                    hold_until = s->not_before;
            }
            else if (m->data.result != CURLE_OK || status >= 500)
            {
                double      backoff = 0.2 * (1 << (s->attempts < 8 ? s->attempts : 8));

                if (backoff > 30)
                    backoff = 30;
                fprintf(stderr, "pgq_consumer: batch %lld: %s, retry in %.1f s\n", batch,
                        m->data.result != CURLE_OK ? curl_easy_strerror(m->data.result) : "HTTP 5xx", backoff);
                s->not_before = now + backoff;
            }
            else
                die("batch %lld: HTTP %ld: %.500s", batch, status, s->resp.s ? s->resp.s : "");
            s->waiting = 1;
        }
    }
    PQclear(q("SELECT pgq.finish_batch($1::bigint)", 1, params, PGRES_TUPLES_OK));
    q0("COMMIT");
    if (events > 0)
    {
        printf("batch %s events %d requests %d retries %d start %.6f end %.6f\n", batch_id, events, requests,
               retries, t0, now_s());
        fflush(stdout);
    }
    free(pend.items.s);
    free(pend.ends);
}

static void
usage(void)
{
    fprintf(stderr, "usage: PGQ_CT_API_KEY=... pgq_consumer --db CONNINFO --url URL --ca FILE [--queue Q] "
            "[--consumer C] [--concurrency N] [--per-request N] [--fetch N] [--poll-ms MS]\n");
    exit(1);
}

int
main(int argc, char **argv)
{
    static struct option lo[] = {
        {"db", required_argument, 0, 'd'}, {"queue", required_argument, 0, 'q'},
        {"consumer", required_argument, 0, 'c'}, {"url", required_argument, 0, 'u'},
        {"ca", required_argument, 0, 'a'}, {"concurrency", required_argument, 0, 'n'},
        {"per-request", required_argument, 0, 'p'}, {"fetch", required_argument, 0, 'f'},
        {"poll-ms", required_argument, 0, 'w'}, {0, 0, 0, 0}
    };
    const char *p2[2];
    int         c;
    struct sigaction sa;

    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1)
    {
        switch (c)
        {
            case 'd': opt_db = optarg; break;
            case 'q': opt_queue = optarg; break;
            case 'c': opt_consumer = optarg; break;
            case 'u': opt_url = optarg; break;
            case 'a': opt_ca = optarg; break;
            case 'n': opt_concurrency = atoi(optarg); break;
            case 'p': opt_per_request = atoi(optarg); break;
            case 'f': opt_fetch = atoi(optarg); break;
            case 'w': opt_poll_ms = atoi(optarg); break;
            default: usage();
        }
    }
    api_key = getenv("PGQ_CT_API_KEY");
    if (!opt_url || !opt_ca || !api_key || opt_concurrency < 1 || opt_per_request < 1 || opt_per_request > 100
        || opt_fetch < 1 || opt_poll_ms < 0)
        usage();

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    conn = PQconnectdb(opt_db);
    if (PQstatus(conn) != CONNECTION_OK)
        die("connection failed: %s", PQerrorMessage(conn));
    PQclear(q("SET application_name = 'pgq_consumer'", 0, NULL, PGRES_COMMAND_OK));
    p2[0] = opt_queue;
    p2[1] = opt_consumer;
    PQclear(q("SELECT pgq.register_consumer($1, $2)", 2, p2, PGRES_TUPLES_OK));
    http_init();
    fprintf(stderr, "pgq_consumer: consuming queue %s as %s, %d requests in flight, %d sales a request\n",
            opt_queue, opt_consumer, opt_concurrency, opt_per_request);

    while (!stop_requested)
    {
        PGresult   *r = q("SELECT pgq.next_batch($1, $2)", 2, p2, PGRES_TUPLES_OK);

        if (PQgetisnull(r, 0, 0))
        {
            PQclear(r);
            if (opt_poll_ms > 0)
                usleep(opt_poll_ms * 1000);
            continue;
        }
        {
            char        batch_id[32];

            snprintf(batch_id, sizeof(batch_id), "%s", PQgetvalue(r, 0, 0));
            PQclear(r);
            process_batch(batch_id);
        }
    }
    PQfinish(conn);
    return 0;
}
