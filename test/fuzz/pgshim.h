/*-------------------------------------------------------------------------
 *
 * pgshim.h
 *		The fuzz harness's view of its PostgreSQL shim (pgshim.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_PGSHIM_H
#define SALES_API_PGSHIM_H

/* release everything palloc'd since the last reset, callbacks first */
extern void shim_reset(void);

/* the SQLSTATE and message of the last ereport(ERROR) */
extern int	shim_last_sqlstate;
extern char shim_last_message[1024];

#endif							/* SALES_API_PGSHIM_H */
