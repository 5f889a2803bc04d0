#!/usr/bin/env bash
# After the whole suite: the server log and the history of pg_stat_activity
# (sampled every 0.2 s since the cluster started, test/faults/activity-sampler)
# hold none of the secrets the tests used: passwords, client secrets, API
# keys, the HTTP Basic credentials made from them, and every bearer and
# refresh token the mock issued.  Lines where PostgreSQL shows a role's own
# CREATE/ALTER USER MAPPING text (the test typing its secrets) are counted
# apart: that is the statement the user typed, not something sales_api wrote.
. "$(dirname "$0")/../lib/scenario.sh"
"$(dirname "$0")/../faults/activity-sampler" stop
secrets=$(mktemp); trap 'rm -f "$secrets"' EXIT
{
    printf '%s\n' pos-pass mapal-secret ct-key-123 ct-secret
    printf '%s\n' pos-pass-rotated ct-key-rotated-456          # 07_credential_cache's rotated secrets
    printf 'ct-key-%03d\n' $(seq 0 300)                        # ... and the keys of its ALTER cycles
    printf '%s' 'ct-client:ct-secret' | base64                 # HTTP Basic of the Connecteam OAuth client
    printf '%s' 'wf_wap_tp:mapal-secret' | base64
    mockctl issued-tokens
} | grep -v '^$' | sort -u > "$secrets"
echo "looking for $(wc -l < "$secrets") secret values ($(mockctl issued-tokens | wc -l) issued tokens)"
activity=$SA_WORK/activity.log
[ -f "$activity" ] || { echo "(no pg_stat_activity history: the sampler was not started)"; : > "$activity"; }
echo "server log: $(wc -l < "$SA_PGLOG") lines; pg_stat_activity history: $(wc -l < "$activity") samples"
user_ddl='(CREATE|ALTER) USER MAPPING'
found=0
for f in "$SA_PGLOG" "$activity"; do
    hits=$(grep -F -f "$secrets" "$f" | grep -v -E "$user_ddl" || true)
    ddl=$(grep -F -f "$secrets" "$f" | grep -c -E "$user_ddl" || true)
    echo "$(basename "$f"): $ddl line(s) with a role's own user-mapping statement"
    if [ -n "$hits" ]; then
        found=1
        echo "SECRETS FOUND in $f:"
        printf '%s\n' "$hits" | head -20
    fi
done
[ "$found" = 0 ] || fail "secrets in the server log or pg_stat_activity"
pass "no password, client secret, API key or token in the server log or pg_stat_activity"
