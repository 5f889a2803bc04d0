/* sales_api--0.1--0.2.sql: Mapal (real-time sales, Cashrec) and Connecteam (Sales Data API) */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION sales_api UPDATE TO '0.2'" to load this file. \quit
