/*-------------------------------------------------------------------------
 *
 * rows.h
 *		Input rows for the push functions, from either an array of one of
 *		our composite types or any relation or query whose columns carry the
 *		documented names (rows.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_ROWS_H
#define SALES_API_ROWS_H

#include "postgres.h"

#include "utils/array.h"

/* One expected column: its documented name and the SQL type it is cast to. */
typedef struct RowColumn
{
	const char *name;
	const char *sqltype;		/* e.g. "bigint", "numeric", "timestamptz" */
} RowColumn;

/* values[row * ncols + col], in the caller's memory context */
typedef struct RowSet
{
	int			nrows;
	int			ncols;
	const RowColumn *cols;
	Datum	   *values;
	bool	   *nulls;
} RowSet;

#define ROWSET_VALUE(rs, r, c)	((rs)->values[(r) * (rs)->ncols + (c)])
#define ROWSET_ISNULL(rs, r, c) ((rs)->nulls[(r) * (rs)->ncols + (c)])

extern RowSet *rows_from_array(ArrayType *arr, const RowColumn *cols, int ncols,
							   const char *argname);
extern RowSet *rows_from_query(const char *source, const RowColumn *cols, int ncols,
							   const char *argname);

/* A one-dimensional array argument without NULLs, as a C array; returns n. */
extern int	rows_int8_array(ArrayType *arr, const char *argname, int64 **out);
extern int	rows_text_array(ArrayType *arr, const char *argname, char ***out);

#endif							/* SALES_API_ROWS_H */
