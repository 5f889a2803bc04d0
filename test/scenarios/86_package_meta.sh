#!/usr/bin/env bash
# What a PostgreSQL extension ships besides its code, kept in step with it:
# META.json (PGXN) names the version of sales_api.control's default_version,
# for the distribution and for what it provides, and files that exist;
# CHANGELOG.md has a section for that version; LICENSE is the PostgreSQL
# License.  No database needed.
set -uo pipefail
cd "$(dirname "$0")/../.."
exec python3 - <<'PY'
import json, os, re, sys

failed = 0
def check(what, ok, detail=""):
    global failed
    print(("ok: " if ok else "FAIL: ") + what + ("" if ok else " (%s)" % detail))
    failed += not ok

control = open("sales_api.control").read()
m = re.search(r"^\s*default_version\s*=\s*'([^']*)'", control, re.M)
check("sales_api.control has a default_version", m is not None)
default = m.group(1) if m else None
print("default_version: %s" % default)

try:
    meta = json.load(open("META.json"))
except (OSError, ValueError) as e:
    check("META.json is valid JSON", False, e)
    sys.exit(1)
check("META.json is valid JSON", True)
check("META.json name is sales_api", meta.get("name") == "sales_api", meta.get("name"))
check("META.json version equals default_version", meta.get("version") == default,
      "META.json %r, sales_api.control %r" % (meta.get("version"), default))
prov = meta.get("provides", {}).get("sales_api", {})
check("META.json provides sales_api at default_version", prov.get("version") == default,
      "provides %r, sales_api.control %r" % (prov.get("version"), default))
for key in ("file", "docfile"):
    check("META.json provides %s %s exists" % (key, prov.get(key)), bool(prov.get(key)) and os.path.exists(prov[key]),
          "missing")
check("META.json license is postgresql", meta.get("license") == "postgresql", meta.get("license"))
check("META.json meta-spec is 1.0.0", meta.get("meta-spec", {}).get("version") == "1.0.0", meta.get("meta-spec"))
check("META.json requires PostgreSQL 15 at run time",
      meta.get("prereqs", {}).get("runtime", {}).get("requires", {}).get("PostgreSQL", "").startswith("15."),
      meta.get("prereqs"))

changelog = open("CHANGELOG.md").read() if os.path.exists("CHANGELOG.md") else ""
check("CHANGELOG.md has a section for %s" % default,
      re.search(r"^## %s\b" % re.escape(default or "?"), changelog, re.M) is not None, "no '## %s' heading" % default)
lic = open("LICENSE").read() if os.path.exists("LICENSE") else ""
check("LICENSE is the PostgreSQL License", lic.startswith("PostgreSQL License") and "the sales_api authors" in lic,
      "not found")
print("%d failed" % failed)
sys.exit(1 if failed else 0)
PY
