/*-------------------------------------------------------------------------
 *
 * vendor.h
 *		Authenticated calls to a vendor (vendor.c): the one retry after a
 *		401, turning a vendor's answer into an ereport or a one-line
 *		message, and values in a vendor's URL.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_VENDOR_H
#define SALES_API_VENDOR_H

#include "auth.h"
#include "http.h"
#include "sales_api.h"
#include "server.h"

extern bool vendor_ok(const HttpRequest *req);
extern char *vendor_error_message(const HttpRequest *req);
extern char *vendor_token_error_message(const HttpRequest *req);
extern void vendor_report_error(const HttpRequest *req, int elevel, const char *what,
								const char *hint_override);
extern void vendor_check(const HttpRequest *req, const char *what);
extern char *vendor_url_encode(const char *s, bool path_segment);

#endif							/* SALES_API_VENDOR_H */
