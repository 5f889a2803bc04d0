# sales_api: PostgreSQL extension for POS sales reporting to Mapal OS and Connecteam.
#
# Build:   make && sudo make install
# Tests:   test/run-tests   (the README's test command; starts its own cluster and mock)
#
# Warnings-as-errors and assertion flags belong to the test command (PG_CFLAGS),
# not here, so a newer compiler on a user's machine never breaks the build.

MODULE_big = sales_api
EXTENSION = sales_api

SRCS = $(wildcard src/*.c)
OBJS = $(SRCS:.c=.o)

# The install script of the current version is built from sql/sales_api.sql,
# the whole current schema (pgvector's DATA_built pattern); the version is
# the control file's default_version.  The released scripts are installed as
# they are: sales_api--0.1.sql and the upgrade scripts, the chain by which a
# database of any earlier version is updated.
EXTVERSION := $(shell sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" sales_api.control)
ifeq ($(EXTVERSION),)
$(error could not read default_version from sales_api.control)
endif
DATA_built = sales_api--$(EXTVERSION).sql
DATA = sql/sales_api--0.1.sql $(wildcard sql/sales_api--*--*.sql)
# the query file for the Prometheus postgres_exporter, beside the docs
DOCS = contrib/prometheus/sales_api_queries.yaml

REGRESS ?= $(patsubst sql/%.sql,%,$(sort $(filter-out sql/sales_api%,$(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=.

PG_CONFIG ?= pg_config
CURL_CONFIG ?= curl-config
PKG_CONFIG ?= pkg-config

# The server headers are third-party code to us: as system headers, their own
# -Wextra findings (unused parameters in inline functions) stay out of our build.
PG_CPPFLAGS = -I$(srcdir)/src -isystem $(shell $(PG_CONFIG) --includedir-server) $(shell $(CURL_CONFIG) --cflags) $(shell $(PKG_CONFIG) --cflags json-c openssl)
SHLIB_LINK = $(shell $(CURL_CONFIG) --libs) $(shell $(PKG_CONFIG) --libs json-c openssl)

# the built install scripts of earlier versions too, after default_version moved
EXTRA_CLEAN = results regression.diffs regression.out $(wildcard sales_api--*.sql)

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(OBJS): $(wildcard src/*.h)

# after PGXS, so that `all` stays the default goal
sales_api--$(EXTVERSION).sql: sql/sales_api.sql sales_api.control
	cp $< $@
