/*-------------------------------------------------------------------------
 *
 * rows.c
 *		Input rows for the push functions.
 *
 * A push function takes its rows two ways, so a POS schema never needs
 * client code: an array of our composite type (built with array_agg), or
 * the text of a relation name or a query whose columns carry the
 * documented names.  For the second, rows_from_query() runs
 *     SELECT q."col1"::type1, q."col2"::type2, ... FROM (<source>) q
 * through SPI with the caller's privileges (a relation name is turned into
 * TABLE <name> first), so a missing or mistyped column is PostgreSQL's own
 * clear error, and values arrive already of the documented types.  Extra
 * columns are ignored.  Both forms yield the same RowSet, so validation
 * and request building have one code path.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "rows.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/typcache.h"

static RowSet *
rowset_alloc(int nrows, const RowColumn *cols, int ncols)
{
	RowSet	   *rs = palloc0(sizeof(RowSet));

	rs->nrows = nrows;
	rs->ncols = ncols;
	rs->cols = cols;
	rs->values = palloc0(sizeof(Datum) * Max(nrows, 1) * ncols);
	rs->nulls = palloc0(sizeof(bool) * Max(nrows, 1) * ncols);
	return rs;
}

static void
rows_check_1d(ArrayType *arr, const char *argname)
{
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", argname),
				 errdetail("It has %d dimensions.", ARR_NDIM(arr)),
				 errhint("Pass a flat array, for example one built with array_agg().")));
}

static void
rows_null_element(const char *argname, int pos)
{
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("%s has a NULL element at position %d", argname, pos),
			 errhint("Filter out NULLs before aggregating them, or use array_remove(..., NULL).")));
}

/* A bigint[] argument: one-dimensional, no NULL elements. */
int
rows_int8_array(ArrayType *arr, const char *argname, int64 **out)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	rows_check_1d(arr, argname);
	deconstruct_array(arr, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, &n);
	*out = palloc(sizeof(int64) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			rows_null_element(argname, i + 1);
		(*out)[i] = DatumGetInt64(elems[i]);
	}
	return n;
}

/* A text[] argument: one-dimensional, no NULL elements. */
int
rows_text_array(ArrayType *arr, const char *argname, char ***out)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	rows_check_1d(arr, argname);
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	*out = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			rows_null_element(argname, i + 1);
		(*out)[i] = TextDatumGetCString(elems[i]);
	}
	return n;
}

/*
 * Rows from an array of a composite type whose attributes carry the
 * documented names (our own types, e.g. sales_api.mapal_sale).  NULL
 * elements are refused: a NULL sale is a bug in the caller's query.
 */
RowSet *
rows_from_array(ArrayType *arr, const RowColumn *cols, int ncols, const char *argname)
{
	Oid			elemtype = ARR_ELEMTYPE(arr);
	TupleDesc	tupdesc;
	Datum	   *elems;
	bool	   *elemnulls;
	int			nelems;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int		   *attnums;
	RowSet	   *rs;

	rows_check_1d(arr, argname);
	tupdesc = lookup_rowtype_tupdesc(elemtype, -1);
	attnums = palloc(sizeof(int) * ncols);
	for (int c = 0; c < ncols; c++)
	{
		attnums[c] = -1;
		for (int a = 0; a < tupdesc->natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(tupdesc, a);

			if (!att->attisdropped && strcmp(NameStr(att->attname), cols[c].name) == 0)
				attnums[c] = a + 1;
		}
		if (attnums[c] < 0)
			elog(ERROR, "composite type %s has no attribute \"%s\"",
				 format_type_be(elemtype), cols[c].name);
	}
	ReleaseTupleDesc(tupdesc);

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(arr, elemtype, typlen, typbyval, typalign,
					  &elems, &elemnulls, &nelems);
	rs = rowset_alloc(nelems, cols, ncols);
	for (int r = 0; r < nelems; r++)
	{
		HeapTupleHeader td;

		if (elemnulls[r])
			rows_null_element(argname, r + 1);
		td = DatumGetHeapTupleHeader(elems[r]);
		for (int c = 0; c < ncols; c++)
			ROWSET_VALUE(rs, r, c) = GetAttributeByNum(td, attnums[c], &ROWSET_ISNULL(rs, r, c));
	}
	return rs;
}

/*
 * Rows from a relation name or a query text.  The values are copied out of
 * SPI into the caller's memory context.
 */
RowSet *
rows_from_query(const char *source, const RowColumn *cols, int ncols, const char *argname)
{
	StringInfoData sql;
	MemoryContext callercxt = CurrentMemoryContext;
	RowSet	   *rs;
	Oid			relid = InvalidOid;
	int			ret;
	uint64		nrows;
	const char *p;

	/* a bare (possibly qualified) name of a relation, else a query */
	for (p = source; *p && (isalnum((unsigned char) *p) || *p == '_' || *p == '.' || *p == '"' ||
							IS_HIGHBIT_SET(*p)); p++)
		;
	if (*p == '\0' && source[0] != '\0')
	{
		List	   *names = stringToQualifiedNameList(source);

		/* a bare name is never a query: a missing relation is that error */
		relid = RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, false);
	}

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int c = 0; c < ncols; c++)
		appendStringInfo(&sql, "%sq.%s::%s", c ? ", " : "",
						 quote_identifier(cols[c].name), cols[c].sqltype);
	if (OidIsValid(relid))
		appendStringInfo(&sql, " FROM %s AS q",
						 quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
													get_rel_name(relid)));
	else
		appendStringInfo(&sql, " FROM (%s\n) AS q", source);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute(sql.data, true, 0);
	if (ret != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a relation name or a query that returns rows", argname),
				 errdetail("It ran as something else (%s).", SPI_result_code_string(ret)),
				 errhint("Pass a table or view name, or a SELECT whose columns carry the documented names.")));
	nrows = SPI_processed;
	if (nrows > (uint64) (MaxAllocSize / (sizeof(Datum) * ncols)))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s returned too many rows (" UINT64_FORMAT ")", argname, nrows),
				 errdetail("The rows of one call must fit in one allocation of 1 GB."),
				 errhint("Send the rows in several calls, for example one per day.")));

	{
		MemoryContext spicxt = MemoryContextSwitchTo(callercxt);

		rs = rowset_alloc((int) nrows, cols, ncols);
		for (uint64 r = 0; r < nrows; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];

			for (int c = 0; c < ncols; c++)
			{
				Form_pg_attribute att = TupleDescAttr(SPI_tuptable->tupdesc, c);
				bool		isnull;
				Datum		d = SPI_getbinval(tup, SPI_tuptable->tupdesc, c + 1, &isnull);

				ROWSET_ISNULL(rs, r, c) = isnull;
				ROWSET_VALUE(rs, r, c) = isnull ? (Datum) 0 :
					datumCopy(d, att->attbyval, att->attlen);
			}
		}
		MemoryContextSwitchTo(spicxt);
	}
	SPI_finish();
	return rs;
}
