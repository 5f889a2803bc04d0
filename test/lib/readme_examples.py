#!/usr/bin/env python3
"""test/lib/readme_examples.py: the SQL examples of README.md, for
test/scenarios/84_readme_examples.sh.

The README's fenced blocks follow one convention, visible in the README
itself (section "Quick start"):

  ```sql              an example: run, in README order, in one psql session
                      with ON_ERROR_STOP; any error fails the test
  ```sql error=XXXXX  a deliberately failing example: one statement that must
                      fail with SQLSTATE XXXXX (anything else fails the test)
  ```sql signature    a function's signature: not run, but compared with the
                      catalog (argument names, types, defaults, result)
  ```sql no-run       shown, never run (kept for the few blocks that cannot
                      run anywhere, e.g. the extension's own type definitions)
  ``` / ```text       output, configuration, shell: not SQL, not run
  ```sh               shell commands: not run

Usage:
  readme_examples.py script README.md        the psql script of every example
  readme_examples.py summary README.md       counts, and the lines of no-run blocks
  readme_examples.py signatures README.md    compare the signatures with the
                                             catalog (psql from the environment,
                                             database $SA_DB or sa_worker)
  readme_examples.py links README.md         every link to a heading (#...) or to a
                                             file of the repository resolves
"""

import os
import re
import subprocess
import sys

FENCE = re.compile(r"^(\s*)```(.*)$")


def blocks(path):
    """(first line number of the block's text, info string, text) for every fenced block."""
    out = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, info = m.group(1), m.group(2).strip()
        start = i + 1
        j = start
        while j < len(lines) and not re.match(r"^\s*```\s*$", lines[j]):
            j += 1
        if j >= len(lines):
            sys.exit("README.md:%d: a fenced block that never ends" % (i + 1))
        text = "\n".join(l[len(indent):] if l.startswith(indent) else l for l in lines[start:j])
        out.append((start + 1, info, text))
        i = j + 1
    return out


def kind(info):
    words = info.split()
    if not words or words[0] != "sql":
        return None
    rest = words[1:]
    if not rest:
        return ("run", None)
    if rest == ["no-run"]:
        return ("no-run", None)
    if rest == ["signature"]:
        return ("signature", None)
    if len(rest) == 1 and re.fullmatch(r"error=[0-9A-Z]{5}", rest[0]):
        return ("error", rest[0][6:])
    sys.exit("unknown info string ```%s (see test/lib/readme_examples.py)" % info)


def sql_blocks(path):
    for line, info, text in blocks(path):
        k = kind(info)
        if k:
            yield line, k[0], k[1], text


def script(path):
    out = ["-- generated from %s by test/lib/readme_examples.py" % os.path.basename(path)]
    for line, k, code, text in sql_blocks(path):
        if k == "run":
            out.append("\\echo '== README.md:%d'" % line)
            out.append(text)
        elif k == "error":
            if len([s for s in re.split(r";\s*$", text.strip(), flags=re.M) if s.strip()]) != 1:
                sys.exit("README.md:%d: a block marked error= must hold exactly one statement" % line)
            out.append("\\echo '== README.md:%d (must fail with SQLSTATE %s)'" % (line, code))
            out.append("\\set ON_ERROR_STOP 0")
            out.append(text)
            out.append("\\set ON_ERROR_STOP 1")
            out.append("\\set readme_ok false")
            out.append("\\if :ERROR")
            out.append("SELECT :'SQLSTATE' = '%s' AS readme_ok \\gset" % code)
            out.append("\\endif")
            out.append("\\if :readme_ok")
            out.append("\\else")
            out.append("\\echo 'README.md:%d: expected SQLSTATE %s, got' :SQLSTATE" % (line, code))
            out.append("DO $$BEGIN RAISE EXCEPTION 'README.md:%d did not fail as documented'; END$$;" % line)
            out.append("\\endif")
    out.append("\\echo '== README.md: end'")
    return "\n".join(out) + "\n"


def summary(path):
    n = {"run": 0, "error": 0, "signature": 0, "no-run": 0}
    norun = []
    for line, k, _, _ in sql_blocks(path):
        n[k] += 1
        if k == "no-run":
            norun.append(str(line))
    print("%d sql blocks run, %d deliberately failing, %d signatures, %d no-run%s" % (
        n["run"], n["error"], n["signature"], n["no-run"],
        (" (lines %s)" % ", ".join(norun)) if norun else ""))


# ---------------------------------------------------------------------------
# signatures against the catalog
# ---------------------------------------------------------------------------
TYPE_SYNONYMS = [
    ("timestamp without time zone", "timestamp"),
    ("timestamp with time zone", "timestamptz"),
    ("character varying", "varchar"),
]


def norm(s):
    s = re.sub(r"--[^\n]*", "", s)
    s = s.lower()
    for a, b in TYPE_SYNONYMS:
        s = s.replace(a, b)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"\s*([(),])\s*", r"\1", s)
    # casts the catalog adds to defaults: 'sum'::text, NULL::bigint[]
    s = re.sub(r"('(?:[^']|'')*'|null|true|false|-?\d+)::[a-z_.]+(\[\])?", r"\1", s)
    return s


def split_top(s):
    """Split at top-level commas (outside parentheses and quotes)."""
    parts, depth, cur, q = [], 0, "", False
    for ch in s:
        if ch == "'":
            q = not q
        elif not q and ch == "(":
            depth += 1
        elif not q and ch == ")":
            depth -= 1
        if ch == "," and depth == 0 and not q:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def arg_types(args):
    """The input types of a normalized argument list (name type [default x])."""
    types = []
    for a in split_top(args):
        a = re.sub(r" default .*$", "", a.strip())
        words = a.split(" ", 1)
        types.append(words[1] if len(words) > 1 else words[0])
    return types


def parse_signatures(line, text):
    """[(line, name, args, returns)]; a RETURNS clause belongs to the entries before it that have none."""
    text = re.sub(r"--[^\n]*", "", text)
    entries, pending = [], []
    for m in re.finditer(r"(sales_api\.\w+)\s*\(", text):
        # the argument list: up to the matching parenthesis
        depth, k = 0, m.end() - 1
        while k < len(text):
            if text[k] == "(":
                depth += 1
            elif text[k] == ")":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        if m.start() > 0 and text[m.start() - 1] not in "\n":
            continue   # a type name inside an argument list, not an entry
        args = text[m.end():k]
        after = text[k + 1:]
        nxt = re.search(r"^sales_api\.\w+\s*\(", after, re.M)
        tail = after[:nxt.start()] if nxt else after
        r = re.search(r"\bRETURNS\b(.*)", tail, re.S | re.I)
        entry = [line + text[:m.start()].count("\n"), m.group(1), args, None]
        pending.append(entry)
        if r:
            for e in pending:
                e[3] = r.group(1)
            pending = []
        entries.append(entry)
    for e in pending:
        sys.exit("README.md:%d: signature of %s has no RETURNS clause" % (e[0], e[1]))
    return entries


INTERNAL = {"fdw_validator", "capture_trigger", "wake_worker_on_commit", "record_reconciliation"}


def signatures(path):
    db = os.environ.get("SA_DB", "sa_worker")
    psql = [os.path.join(os.environ.get("PG_BINDIR", ""), "psql") if os.environ.get("PG_BINDIR") else "psql",
            "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c",
            "SELECT p.proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid) "
            "FROM pg_proc p WHERE p.pronamespace = 'sales_api'::regnamespace ORDER BY 1, 2"]
    res = subprocess.run(psql, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("could not read the catalog: %s" % res.stderr.strip())
    catalog = {}
    for row in res.stdout.splitlines():
        name, args, result = row.split("\t")
        catalog.setdefault("sales_api." + name, []).append((norm(args), norm(result)))
    bad, checked, documented = [], 0, set()
    for line, k, _, text in sql_blocks(path):
        if k != "signature":
            continue
        for eline, name, args, returns in parse_signatures(line, text):
            checked += 1
            documented.add(name)
            a, r = norm(args), norm(returns)
            cands = catalog.get(name)
            if not cands:
                bad.append("README.md:%d: %s is not a function of the extension" % (eline, name))
                continue
            same_types = [c for c in cands if arg_types(c[0]) == arg_types(a)]
            if not same_types:
                bad.append("README.md:%d: %s(%s): no such overload; the catalog has: %s" % (
                    eline, name, a, "; ".join("(%s)" % c[0] for c in cands)))
                continue
            ca, cr = same_types[0]
            if ca != a:
                bad.append("README.md:%d: %s arguments\n    README:  (%s)\n    catalog: (%s)" % (eline, name, a, ca))
            if cr != r:
                bad.append("README.md:%d: %s result\n    README:  %s\n    catalog: %s" % (eline, name, r, cr))
    missing = sorted(n for n in catalog if n not in documented and not n.split(".", 1)[1].startswith("_")
                     and n.split(".", 1)[1] not in INTERNAL)
    for n in missing:
        bad.append("%s has no signature block in README.md" % n)
    for b in bad:
        print("FAIL: " + b)
    print("%d signatures compared with the catalog, %d differences" % (checked, len(bad)))
    return 1 if bad else 0


# ---------------------------------------------------------------------------
# links
# ---------------------------------------------------------------------------
def slugs(path):
    """GitHub's anchors for the headings of a Markdown file (outside fenced blocks)."""
    out, seen, fence = set(), {}, False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if re.match(r"^\s*```", line):
                fence = not fence
                continue
            m = None if fence else re.match(r"^#{1,6}\s+(.*?)\s*$", line)
            if not m:
                continue
            slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else "%s-%d" % (slug, n))
    return out


def links(path):
    base = os.path.dirname(os.path.abspath(path))
    text = re.sub(r"```.*?```", "", open(path, encoding="utf-8").read(), flags=re.S)
    bad, n = [], 0
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue   # an external URL: not checked here
        n += 1
        file, _, anchor = target.partition("#")
        fpath = os.path.join(base, file) if file else os.path.abspath(path)
        if not os.path.exists(fpath):
            bad.append("%s: no such file" % target)
        elif anchor and fpath.endswith(".md") and anchor not in slugs(fpath):
            bad.append("%s: no such heading" % target)
    for b in bad:
        print("FAIL: link " + b)
    print("%d links checked, %d broken" % (n, len(bad)))
    return 1 if bad else 0


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("script", "summary", "signatures", "links"):
        sys.exit(__doc__)
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "script":
        sys.stdout.write(script(path))
    elif cmd == "summary":
        summary(path)
    elif cmd == "links":
        sys.exit(links(path))
    else:
        sys.exit(signatures(path))


if __name__ == "__main__":
    main()
