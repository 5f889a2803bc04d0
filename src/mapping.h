/*-------------------------------------------------------------------------
 *
 * mapping.h
 *		A capture's mapping (mapping.c): the SQL expressions that turn a row
 *		of a POS table into a vendor's fields, the statements built from
 *		them, and running those statements with the table owner's rights.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_MAPPING_H
#define SALES_API_MAPPING_H

#include "postgres.h"

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"

#include "sales_api.h"
#include "server.h"

/* Connecteam fields, in the order of the stage's columns */
typedef enum CtField
{
	CTF_LOCATION_ID = 0,
	CTF_SALE_TYPE,
	CTF_CREATED_AT,
	CTF_FINAL_SALE_AMOUNT,
	CTF_TAX_AMOUNT,
	CTF_CURRENCY,
	CTF_N
} CtField;

typedef enum MapalField
{
	MF_UNIT_ID = 0,
	MF_SOLD_AT,
	MF_BUSINESS_DAY,
	MF_CURRENCY_ID,
	MF_SALES_TYPE_ID,
	MF_NET_SALES,
	MF_GROSS_SALES,
	MF_NUM_CHECKS,
	MF_NUM_GUESTS,
	MF_N
} MapalField;

#define MAPPING_MAX_FIELDS MF_N

/*
 * One capture as sales_api.capture holds it, with its expressions checked
 * and ready to be placed in a statement.
 */
typedef struct CaptureDef
{
	int			id;
	Oid			relid;
	Oid			server_id;
	char	   *server_name;
	SalesApiVendor vendor;
	Oid			run_as;
	bool		live;			/* not detached */
	bool		legacy;			/* read from the 0.6 schema (no zone column) */
	char	   *key;			/* the sale's identity (Connecteam reference) */
	char	   *expr[MAPPING_MAX_FIELDS];	/* each field, or its default */
	int			slot_minutes;	/* Mapal */
	char	   *timezone;		/* Mapal: the units' local time zone */
} CaptureDef;

/* The statements built from a capture's mapping */
typedef enum MappingStmt
{
	/* capture trigger, over the transition tables */
	MS_CT_ROWS,					/* a row per new sale */
	MS_CT_OLD_KEYS,				/* the keys of the old versions, as text[] */
	MS_MAPAL_NEW_SLOTS,			/* the slot of each new row (the trigger keeps each once) */
	MS_MAPAL_OLD_SLOTS,			/* the slot of each old row (likewise) */
	MS_MAPAL_NEW_ROW_SLOTS,		/* the slot of the new row of a one-row statement */
	MS_MAPAL_OLD_ROW_SLOTS,		/* the slot of the old row of one */
	/* the worker and the operator functions, over the table itself */
	MS_MAPAL_TOTALS,			/* $1 unit, $2 business day: totals per slot */
	MS_CT_WINDOW,				/* $1 location, $2 from, $3 to: every sale */
	MS_CT_WINDOW_LOCK,			/* the same, rows locked FOR SHARE, SKIP LOCKED */
	MS_CT_DAY_TOTALS,			/* $1, $2 dates, $3 location ids, $4 zone */
	MS_MAPAL_SALES,				/* $1, $2 local times: every sale between */
	MS_MAPAL_UNITS_TOTALS,		/* $1 units (int8[]), $2 business day, the sales of
								 * hours $3 to $4 of the day before's local
								 * midnight (0 to 72: the whole scan): per unit
								 * and slot */
	MS_N
} MappingStmt;

/* What entering the owner's rights saved, for mapping_leave_owner() */
typedef struct OwnerScope
{
	Oid			save_userid;
	int			save_sec;
	int			save_nestlevel;
} OwnerScope;

extern int	mapping_nfields(SalesApiVendor vendor);
extern void mapping_check_expr(const char *what, const char *expr);
extern char *mapping_field_expr(SalesApiVendor vendor, Jsonb *mapping, int field,
								bool for_attach);
extern void mapping_check_fields(SalesApiVendor vendor, Jsonb *mapping);
extern CaptureDef *mapping_load(int capture_id, bool missing_ok);
extern char *mapping_sql(const CaptureDef *def, MappingStmt stmt, const char *source);
extern Oid	mapping_table_owner(Oid relid);
extern void mapping_push_catalog_path(void);
extern void mapping_enter_owner(Oid owner, OwnerScope *scope);
extern void mapping_leave_owner(OwnerScope *scope);
extern void mapping_enter_extension(OwnerScope *scope);
extern void mapping_leave_extension(OwnerScope *scope);
extern int	mapping_execute(const CaptureDef *def, MappingStmt stmt, int nargs,
							Oid *types, Datum *values, const char *nulls);
extern void mapping_check_reader(const CaptureDef *def);

#endif							/* SALES_API_MAPPING_H */
