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

DATA = $(wildcard sql/sales_api--*.sql)

REGRESS ?= $(patsubst sql/%.sql,%,$(sort $(filter-out sql/sales_api--%,$(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=.

PG_CONFIG ?= pg_config
CURL_CONFIG ?= curl-config
PKG_CONFIG ?= pkg-config

# The server headers are third-party code to us: as system headers, their own
# -Wextra findings (unused parameters in inline functions) stay out of our build.
PG_CPPFLAGS = -I$(srcdir)/src -isystem $(shell $(PG_CONFIG) --includedir-server) $(shell $(CURL_CONFIG) --cflags) $(shell $(PKG_CONFIG) --cflags json-c openssl)
SHLIB_LINK = $(shell $(CURL_CONFIG) --libs) $(shell $(PKG_CONFIG) --libs json-c openssl)

EXTRA_CLEAN = results regression.diffs regression.out

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(OBJS): $(wildcard src/*.h)
