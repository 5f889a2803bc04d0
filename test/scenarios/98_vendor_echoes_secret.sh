#!/usr/bin/env bash
# A vendor (or a gateway in front of it) that quotes the credential it
# refused: "invalid API key ct-key-123".  The key must reach neither the SQL
# error, nor the server log, nor the outbox's last_error (which outbox_status
# shows and pg_dump keeps).  99_no_secrets scans the log afterwards too.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "SELECT sales_api.detach('pos_sales', 'mapal')" >/dev/null

# the SQL path: a 401 whose body quotes the key
mockctl fault status --path '/connecteam/sales/v1/locations' --method GET --status 401 \
    --body '{"error":"unauthorized","details":{"error_message":"invalid API key ct-key-123","error_code":401}}' --count 1
out=$(q -c "SELECT count(*) FROM sales_api.connecteam_locations('connecteam')" 2>&1) && fail "the 401 raised no error"
echo "$out"
echo "$out" | grep -q "ct-key-123" && fail "the SQL error quotes the API key"
echo "$out" | grep -q "invalid API key \[credential removed\]" || fail "the vendor's message is not shown: $out"
pass "the SQL error shows the vendor's message without the key"

# a body that is not JSON, cut at a length: the key is taken out before the cut,
# so no part of it is left at the end
pad=$(printf 'x%.0s' $(seq 1 195))
mockctl fault status --path '/connecteam/sales/v1/locations' --method GET --status 403 \
    --content-type text/plain --body "${pad}ct-key-123 is not allowed" --count 1
out=$(q -c "SELECT count(*) FROM sales_api.connecteam_locations('connecteam')" 2>&1) && fail "the 403 raised no error"
echo "$out" | grep -q "ct-key" && fail "a cut message keeps a part of the API key: $out"
pass "a cut message keeps no part of the key"

# a token endpoint whose error_description quotes the password and the client secret
mockctl fault status --path '/connect/token' --status 400 \
    --body '{"error":"invalid_grant","error_description":"user pos-user: pos-pass is wrong for client mapal-secret"}' --count 1
msg=$(q -c "SELECT message FROM sales_api.check_server('mapal')")
echo "check_server: $msg"
echo "$msg" | grep -q -e "pos-pass" -e "mapal-secret" && fail "the token error quotes a secret"
echo "$msg" | grep -q "\[credential removed\] is wrong for client \[credential removed\]" \
    || fail "the token endpoint's message is not shown: $msg"
pass "the token endpoint's message is shown without the secrets"

# the worker: a 403 for a post, whose body quotes the key; every post is
# refused until the item's error has been read (a single refusal was
# retried and sent before a loaded machine read it), then the fault goes
mockctl fault status --path '/connecteam/sales/v1/transactions$' --method POST --status 403 \
    --body '{"detail":"the key ct-key-123 may not write transactions"}' --count 100000
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (1, '2026-11-25 10:00+00', 'SALE', 5.00, 0.50)"
wait_for "SELECT EXISTS (SELECT 1 FROM sales_api.outbox WHERE http_status = 403)" 60 "the post answered 403"
err=$(q -c "SELECT last_error FROM sales_api.outbox WHERE http_status = 403")
echo "last_error: $err"
echo "$err" | grep -q "ct-key-123" && fail "last_error quotes the API key"
echo "$err" | grep -q "\[credential removed\]" || fail "last_error does not show the vendor's message: $err"
mockctl faults-clear
wait_for "$(drained)" 60 "the sale, sent once the vendor takes it"
grep -F "ct-key-123" "$SA_PGLOG" | grep -v -E "(CREATE|ALTER) USER MAPPING" && fail "the server log quotes the API key"
pass "last_error and the server log show the vendor's message without the key"

# Connecteam's OAuth token endpoint (HTTP Basic client_id:client_secret) quoting the client secret
fs_use_oauth
mockctl fault status --path '/connecteam/oauth/v1/token' --status 401 \
    --body '{"error":"invalid_client","error_description":"client ct-client: ct-secret is not valid"}' --count 1
msg=$(q -c "SELECT message FROM sales_api.check_server('connecteam')")
echo "check_server: $msg"
echo "$msg" | grep -q "ct-secret" && fail "the token error quotes the client secret sent by HTTP Basic"
echo "$msg" | grep -q "ct-client: \[credential removed\] is not valid" \
    || fail "the token endpoint's message is not shown: $msg"
pass "the Basic credential's secret is removed from the token endpoint's message"
