/*
 * floor_trigger.c: the floor of a single-row capture, for test/bench/bench.py.
 *
 * floor_trigger() is the least any capture that writes in the POS
 * transaction can do: an AFTER INSERT ... FOR EACH STATEMENT trigger with a
 * transition table (so the INSERT collects its rows, as sales_api's capture
 * makes it), written in C (no interpreter), that writes one row of fixed
 * values into the table named by its argument with heap_insert() (no SQL, no
 * executor, no index).  It reads nothing and maps nothing.  What a
 * single-row INSERT pays for it is the price of "a trigger that writes a
 * row", below which no capture in the POS transaction can go.
 *
 * Built by bench.py with the server's headers into its work directory and
 * loaded from there by absolute path; it is never installed.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/rel.h"
#include "utils/regproc.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(floor_trigger);

Datum
floor_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	static Oid	side = InvalidOid;
	Relation	rel;
	Datum		values[1];
	bool		nulls[1] = {false};
	HeapTuple	tup;

	if (!CALLED_AS_TRIGGER(fcinfo) || td->tg_trigger->tgnargs != 1)
		elog(ERROR, "floor_trigger: a trigger with one argument, the table to write");
	if (!OidIsValid(side))
		side = RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(td->tg_trigger->tgargs[0])),
								NoLock, false);
	rel = table_open(side, RowExclusiveLock);
	if (RelationGetDescr(rel)->natts != 1 || TupleDescAttr(RelationGetDescr(rel), 0)->atttypid != INT4OID)
		elog(ERROR, "floor_trigger: the table must have one integer column");
	values[0] = Int32GetDatum(1);
	tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	simple_heap_insert(rel, tup);
	heap_freetuple(tup);
	table_close(rel, NoLock);
	return PointerGetDatum(NULL);
}
