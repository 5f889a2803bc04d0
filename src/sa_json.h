/*-------------------------------------------------------------------------
 *
 * sa_json.h
 *		Include json-c alongside PostgreSQL's headers.
 *
 * PostgreSQL declares a SQL-callable C function named json_object() in
 * utils/fmgrprotos.h, which collides with json-c's json_object type.  Any
 * file that uses json-c includes this header instead of <json-c/json.h>; it
 * pulls in the PostgreSQL prototypes first with that one name renamed, so a
 * later include of utils/builtins.h is a no-op thanks to its include guard.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_SA_JSON_H
#define SALES_API_SA_JSON_H

#include "postgres.h"

#define json_object pg_sql_json_object_fn
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#undef json_object

#include <json-c/json.h>

#endif							/* SALES_API_SA_JSON_H */
