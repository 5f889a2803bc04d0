/*-------------------------------------------------------------------------
 *
 * reconcile.h
 *		The worker's scheduled Connecteam reconciliation (reconcile.c); the
 *		SQL functions of reconcile.c are reached through fmgr only.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_RECONCILE_H
#define SALES_API_RECONCILE_H

extern void reconcile_scheduled(void);

#endif							/* SALES_API_RECONCILE_H */
