/*-------------------------------------------------------------------------
 *
 * server.c
 *		The credentials model: a validator-only foreign-data wrapper
 *		`sales_api` whose servers hold a vendor's connection settings and
 *		whose user mappings hold the secrets, as contrib/dblink's dblink_fdw
 *		does.  PostgreSQL then hides mapping options from every role but the
 *		mapping's own user and superusers (pg_user_mappings), and USAGE on
 *		the server decides who may call the vendor at all.
 *
 * The validator rejects unknown options, missing required ones, malformed
 * values and malformed URLs at CREATE/ALTER time.  A user mapping's
 * validator cannot know its server's vendor, so it checks that the options
 * form one complete credential set; server_lookup() then checks the set
 * against the vendor at call time, and binds the lookup to the credential
 * cache entry of its server and mapping (credcache.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "common/sha2.h"

#include "access/reloptions.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "credcache.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "sales_api.h"
#include "mapal_wire.h"
#include "server.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(sales_api_fdw_validator);

typedef enum OptKind
{
	OPT_URL,
	OPT_TEXT,
	OPT_SECRET,
	OPT_INT,
	OPT_ENUM,
	OPT_TZ
} OptKind;

typedef struct OptionDef
{
	const char *name;
	Oid			catalog;		/* ForeignServerRelationId or UserMappingRelationId */
	SalesApiVendor vendor;		/* VENDOR_ANY: allowed for both */
	OptKind		kind;
	int			min;			/* OPT_INT bounds */
	int			max;
	const char *choices;		/* OPT_ENUM: comma-separated */
} OptionDef;

static const OptionDef option_defs[] = {
	{"vendor", ForeignServerRelationId, VENDOR_ANY, OPT_ENUM, 0, 0, "mapal,connecteam"},
	/* Mapal */
	{"token_url", ForeignServerRelationId, VENDOR_ANY, OPT_URL, 0, 0, NULL},
	{"client_id", ForeignServerRelationId, VENDOR_MAPAL, OPT_TEXT, 0, 0, NULL},
	{"sales_url", ForeignServerRelationId, VENDOR_MAPAL, OPT_URL, 0, 0, NULL},
	{"sales_method", ForeignServerRelationId, VENDOR_MAPAL, OPT_ENUM, 0, 0, "POST,PUT,GET"},
	{"cashrec_url", ForeignServerRelationId, VENDOR_MAPAL, OPT_URL, 0, 0, NULL},
	{"slot_minutes", ForeignServerRelationId, VENDOR_MAPAL, OPT_INT, 1, 1440, NULL},
	{"timezone", ForeignServerRelationId, VENDOR_MAPAL, OPT_TZ, 0, 0, NULL},
	{"cashrec_start_param", ForeignServerRelationId, VENDOR_MAPAL, OPT_TEXT, 0, 0, NULL},
	{"cashrec_end_param", ForeignServerRelationId, VENDOR_MAPAL, OPT_TEXT, 0, 0, NULL},
	{"cashrec_centers_param", ForeignServerRelationId, VENDOR_MAPAL, OPT_TEXT, 0, 0, NULL},
	{"cashrec_max_days", ForeignServerRelationId, VENDOR_MAPAL, OPT_INT, 1, 366, NULL},
	{"cashrec_max_centers", ForeignServerRelationId, VENDOR_MAPAL, OPT_INT, 1, 1000, NULL},
	/* Connecteam */
	{"base_url", ForeignServerRelationId, VENDOR_CONNECTEAM, OPT_URL, 0, 0, NULL},
	{"auth", ForeignServerRelationId, VENDOR_CONNECTEAM, OPT_ENUM, 0, 0, "api_key,oauth"},
	{"scope", ForeignServerRelationId, VENDOR_CONNECTEAM, OPT_TEXT, 0, 0, NULL},
	/* user mapping: secrets */
	{"username", UserMappingRelationId, VENDOR_MAPAL, OPT_TEXT, 0, 0, NULL},
	{"password", UserMappingRelationId, VENDOR_MAPAL, OPT_SECRET, 0, 0, NULL},
	{"client_secret", UserMappingRelationId, VENDOR_ANY, OPT_SECRET, 0, 0, NULL},
	{"client_id", UserMappingRelationId, VENDOR_CONNECTEAM, OPT_TEXT, 0, 0, NULL},
	{"api_key", UserMappingRelationId, VENDOR_CONNECTEAM, OPT_SECRET, 0, 0, NULL},
	{NULL, InvalidOid, VENDOR_ANY, OPT_TEXT, 0, 0, NULL}
};


#define MAPAL_DEFAULT_TOKEN_URL "https://login.mapal-os.com/connect/token"
#define MAPAL_DEFAULT_SALES_URL "https://api.workforce.mapal-os.com/sales"
#define MAPAL_DEFAULT_CASHREC_URL "https://cashrec.api.pro.mapal-os.com"
#define CONNECTEAM_DEFAULT_BASE_URL "https://api.connecteam.com"

const char *
server_vendor_name(SalesApiVendor v)
{
	switch (v)
	{
		case VENDOR_MAPAL:
			return "mapal";
		case VENDOR_CONNECTEAM:
			return "connecteam";
		default:
			return "any";
	}
}

/*
 * A URL we are willing to send credentials to: https://host[:port][/path],
 * no user info, no query, no fragment, no white space or control
 * characters.  Plain http:// only with sales_api.allow_http (tests).
 */
static void
url_validate(const char *url, const char *optname)
{
	const char *p;
	const char *host;
	const char *hostend;

	if (strncmp(url, "https://", 8) == 0)
		host = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		host = url + 7;
	else
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("option \"%s\" is not a valid URL", optname),
				 errdetail("The URL must start with https://."),
				 errhint("Give the vendor's base URL, for example https://api.connecteam.com.")));
	for (p = url; *p; p++)
		if ((unsigned char) *p <= ' ' || *p == '"' || *p == '<' || *p == '>' ||
			*p == '\\' || *p == '{' || *p == '}' || *p == '|' || *p == '^' ||
			*p == '`' || (unsigned char) *p >= 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("option \"%s\" is not a valid URL", optname),
					 errdetail("The URL contains a space, a control character or a character that must be percent-encoded."),
					 errhint("Give the URL exactly as the vendor documents it.")));
	hostend = host + strcspn(host, "/?#");
	if (hostend == host || host[0] == ':')
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("option \"%s\" is not a valid URL", optname),
				 errdetail("The URL has no host name."),
				 errhint("Give the vendor's base URL, for example https://api.connecteam.com.")));
	if (memchr(host, '@', hostend - host) != NULL || strpbrk(hostend, "?#") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("option \"%s\" is not a valid URL", optname),
				 errdetail("User names, passwords, query strings and fragments are not allowed in the URL."),
				 errhint("Put credentials in the user mapping, never in a URL.")));
	server_check_url_scheme(url, optname);
}

/* Plain http:// is refused unless the superuser-only test switch is on. */
void
server_check_url_scheme(const char *url, const char *what)
{
	if (strncmp(url, "https://", 8) == 0)
		return;
	if (strncmp(url, "http://", 7) == 0 && sales_api_allow_http)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s must use https", what),
			 errdetail("Plain http:// would send credentials and sales figures unencrypted."),
			 errhint("Use the vendor's https:// URL; sales_api.allow_http exists for local tests only.")));
}

static bool
choice_ok(const char *choices, const char *value)
{
	const char *p = choices;
	size_t		len = strlen(value);

	while (*p)
	{
		const char *comma = strchr(p, ',');
		size_t		n = comma ? (size_t) (comma - p) : strlen(p);

		if (n == len && strncmp(p, value, n) == 0)
			return true;
		if (!comma)
			break;
		p = comma + 1;
	}
	return false;
}

static const OptionDef *
find_option(const char *name, Oid catalog)
{
	for (const OptionDef *d = option_defs; d->name; d++)
		if (d->catalog == catalog && strcmp(d->name, name) == 0)
			return d;
	return NULL;
}

static void
option_list_hint(StringInfo buf, Oid catalog, SalesApiVendor vendor)
{
	for (const OptionDef *d = option_defs; d->name; d++)
		if (d->catalog == catalog &&
			(vendor == VENDOR_ANY || d->vendor == VENDOR_ANY || d->vendor == vendor))
			appendStringInfo(buf, "%s%s", buf->len ? ", " : "", d->name);
}

static SalesApiVendor
vendor_from_string(const char *s)
{
	if (strcmp(s, "mapal") == 0)
		return VENDOR_MAPAL;
	if (strcmp(s, "connecteam") == 0)
		return VENDOR_CONNECTEAM;
	return VENDOR_ANY;
}

static void
validate_value(const OptionDef *d, const char *value)
{
	if (value[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("option \"%s\" must not be empty", d->name),
				 d->catalog == ForeignServerRelationId ?
				 errhint("Leave the option out to use its default.") :
				 errhint("Give the credential, or remove the option with ALTER USER MAPPING ... OPTIONS (DROP %s).",
						 d->name)));
	switch (d->kind)
	{
		case OPT_URL:
			url_validate(value, d->name);
			break;
		case OPT_INT:
			{
				char	   *end;
				long		v;

				errno = 0;
				v = strtol(value, &end, 10);
				if (errno != 0 || *end != '\0' || v < d->min || v > d->max)
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("option \"%s\" must be an integer between %d and %d",
									d->name, d->min, d->max),
							 errdetail("The value given is \"%s\".", value),
							 errhint("Write the number alone, without a unit.")));
				if (strcmp(d->name, "slot_minutes") == 0 && 1440 % v != 0)
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("option \"slot_minutes\" must divide a day evenly"),
							 errdetail("%ld minutes does not divide 1440.", v),
							 errhint("Use 15, 30 or 60, as the business unit is configured in Mapal.")));
				break;
			}
		case OPT_ENUM:
			if (!choice_ok(d->choices, value))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"%s\"", d->name),
						 errhint("Valid values are: %s.", d->choices)));
			break;
		case OPT_TZ:
			if (pg_tzset(value) == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("option \"timezone\" names an unknown time zone"),
						 errhint("Use a name from pg_timezone_names, for example Europe/Madrid.")));
			mapal_check_timezone_name(value, WARNING,
									  "sales_api.attach() refuses this server: use a region name from"
									  " pg_timezone_names, such as Europe/Paris.");
			break;
		case OPT_TEXT:
		case OPT_SECRET:
			for (const char *p = value; *p; p++)
				if ((unsigned char) *p < ' ')
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("option \"%s\" contains a control character", d->name),
							 errdetail("A line break, tab or other control character would corrupt the request it goes into."),
							 errhint("Copy the value again without surrounding white space.")));
			break;
	}
}

/*
 * Validator for the sales_api foreign-data wrapper.  Never prints an
 * option's value: user mapping options are secrets.
 */
Datum
sales_api_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);
	ListCell   *lc;
	SalesApiVendor vendor = VENDOR_ANY;
	bool		has[32] = {0};

	if (catalog != ForeignServerRelationId && catalog != UserMappingRelationId)
	{
		if (options != NIL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("the sales_api foreign-data wrapper takes options only on servers and user mappings"),
					 errhint("Put vendor settings on the server and credentials on the user mapping.")));
		PG_RETURN_VOID();
	}

	/* first pass: the vendor decides which server options are allowed */
	foreach(lc, options)
	{
		DefElem    *def = lfirst(lc);

		if (catalog == ForeignServerRelationId && strcmp(def->defname, "vendor") == 0)
		{
			vendor = vendor_from_string(defGetString(def));
			if (vendor == VENDOR_ANY)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"vendor\""),
						 errhint("Valid values are: mapal, connecteam.")));
		}
	}
	if (catalog == ForeignServerRelationId && vendor == VENDOR_ANY)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("a sales_api server needs the option \"vendor\""),
				 errhint("Add OPTIONS (vendor 'mapal') or OPTIONS (vendor 'connecteam').")));

	foreach(lc, options)
	{
		DefElem    *def = lfirst(lc);
		const OptionDef *d = find_option(def->defname, catalog);

		if (d == NULL ||
			(catalog == ForeignServerRelationId && d->vendor != VENDOR_ANY && d->vendor != vendor))
		{
			StringInfoData buf;

			initStringInfo(&buf);
			option_list_hint(&buf, catalog, vendor);
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\"", def->defname),
					 errdetail("This option is not valid for a %s%s.",
							   catalog == ForeignServerRelationId ? server_vendor_name(vendor) : "",
							   catalog == ForeignServerRelationId ? " server" : "sales_api user mapping"),
					 errhint("Valid options in this context are: %s.", buf.data)));
		}
		validate_value(d, defGetString(def));
		has[d - option_defs] = true;
	}

	if (catalog == UserMappingRelationId)
	{
#define HAS(n) has[find_option((n), UserMappingRelationId) - option_defs]
		bool		mapal = HAS("username") || HAS("password");
		bool		ct_key = HAS("api_key");
		bool		ct_oauth = HAS("client_id");

		if ((mapal ? 1 : 0) + (ct_key ? 1 : 0) + (ct_oauth ? 1 : 0) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("a sales_api user mapping needs exactly one set of credentials"),
					 errdetail("Mapal takes username, password and client_secret; Connecteam takes api_key, or client_id and client_secret."),
					 errhint("Give the options of the server's vendor and nothing else.")));
		if (mapal && !(HAS("username") && HAS("password") && HAS("client_secret")))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("a Mapal user mapping needs the options \"username\", \"password\" and \"client_secret\""),
					 errhint("Give all three: Mapal's password grant sends them together.")));
		if (ct_key && HAS("client_secret"))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("a Connecteam user mapping takes either \"api_key\" or \"client_id\" and \"client_secret\", not both"),
					 errhint("Keep the API key, or the OAuth client: the server's auth option chooses between them.")));
		if (ct_oauth && !HAS("client_secret"))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("a Connecteam OAuth user mapping needs the option \"client_secret\""),
					 errhint("Add the OAuth client's secret with ALTER USER MAPPING ... OPTIONS (ADD client_secret '...').")));
#undef HAS
	}

	PG_RETURN_VOID();
}

static char *
opt_str(List *options, const char *name, const char *dflt)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = lfirst(lc);

		if (strcmp(def->defname, name) == 0)
			return pstrdup(defGetString(def));
	}
	return dflt ? pstrdup(dflt) : NULL;
}

static int
opt_int(List *options, const char *name, int dflt)
{
	char	   *s = opt_str(options, name, NULL);

	return s ? atoi(s) : dflt;
}

static char *
strip_trailing_slash(char *url)
{
	size_t		len = strlen(url);

	while (len > 0 && url[len - 1] == '/')
		url[--len] = '\0';
	return url;
}

static Oid
sales_api_fdw_oid(void)
{
	ForeignDataWrapper *fdw = GetForeignDataWrapperByName("sales_api", true);

	if (fdw == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("foreign-data wrapper \"sales_api\" does not exist"),
				 errhint("Run CREATE EXTENSION sales_api.")));
	return fdw->fdwid;
}

/*
 * Resolve a server and the current user's mapping for it, checking that it
 * is a sales_api server of the expected vendor, that the user has USAGE on
 * it, and that the mapping holds that vendor's credentials.  The result is
 * bound to the credential cache entry of the server and the mapping used.
 */
/*
 * The vendor account a server and mapping reach: a digest of the database,
 * the server, the vendor's address and the identity the credentials give
 * (the API key, or the OAuth or password-grant client and user).  Every
 * role whose mapping of the server has the same credentials, and the
 * worker, share its one budget (ratelimit.c); a mapping changed to other
 * credentials is another account.  Only the digest is kept: no secret goes
 * to shared memory.
 */
static void
server_account_key(SalesApiServer *s)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	const char *parts[7];
	int			n = 0;
	char		where[32];

	snprintf(where, sizeof(where), "%u/%u", MyDatabaseId, s->serverid);
	parts[n++] = where;
	parts[n++] = server_vendor_name(s->vendor);
	if (s->vendor == VENDOR_CONNECTEAM)
	{
		parts[n++] = s->base_url;
		parts[n++] = s->use_oauth ? "oauth" : "api_key";
		parts[n++] = s->use_oauth ? s->um_client_id : s->api_key;
	}
	else
	{
		parts[n++] = s->token_url;
		parts[n++] = s->client_id;
		parts[n++] = s->username;
	}
	if (ctx == NULL || pg_cryptohash_init(ctx) < 0)
		elog(ERROR, "sales_api: could not start a SHA-256 digest");
	for (int i = 0; i < n; i++)
	{
		const char *p = parts[i] ? parts[i] : "";

		/* each part with its terminating NUL, so that no two lists digest alike */
		if (pg_cryptohash_update(ctx, (const uint8 *) p, strlen(p) + 1) < 0)
			elog(ERROR, "sales_api: could not digest an account");
	}
	if (pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "sales_api: could not digest an account");
	pg_cryptohash_free(ctx);
	memcpy(s->account, digest, sizeof(s->account));
	explicit_bzero(digest, sizeof(digest));
}

SalesApiServer *
server_lookup_by_oid(Oid serverid, Oid userid, SalesApiVendor expected)
{
	uint64		cache_mark = credcache_lookup_start();
	ForeignServer *fs = GetForeignServer(serverid);
	SalesApiServer *s = palloc0(sizeof(SalesApiServer));
	HeapTuple	tp;
	List	   *um_options = NIL;
	AclResult	aclresult;
	char	   *vendor;

	s->serverid = serverid;
	s->name = pstrdup(fs->servername);
	if (fs->fdwid != sales_api_fdw_oid())
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" is not a sales_api server", s->name),
				 errhint("Create it with CREATE SERVER ... FOREIGN DATA WRAPPER sales_api.")));

	vendor = opt_str(fs->options, "vendor", "");
	s->vendor = vendor_from_string(vendor);
	if (expected != VENDOR_ANY && s->vendor != expected)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" is a %s server, not a %s server",
						s->name, server_vendor_name(s->vendor), server_vendor_name(expected)),
				 errhint("Pass a server created with OPTIONS (vendor '%s').",
						 server_vendor_name(expected))));

	aclresult = pg_foreign_server_aclcheck(serverid, userid, ACL_USAGE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FOREIGN_SERVER, s->name);

	/* the user's own mapping, else the PUBLIC one, as GetUserMapping() */
	tp = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(userid),
						 ObjectIdGetDatum(serverid));
	if (!HeapTupleIsValid(tp))
		tp = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(InvalidOid),
							 ObjectIdGetDatum(serverid));
	if (!HeapTupleIsValid(tp))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no user mapping for role \"%s\" on server \"%s\"",
						GetUserNameFromId(userid, false), s->name),
				 errhint("Create one with CREATE USER MAPPING FOR CURRENT_USER SERVER %s OPTIONS (...).",
						 quote_identifier(s->name))));
	{
		Datum		datum;
		bool		isnull;

		s->umid = ((Form_pg_user_mapping) GETSTRUCT(tp))->oid;
		datum = SysCacheGetAttr(USERMAPPINGUSERSERVER, tp, Anum_pg_user_mapping_umoptions,
								&isnull);
		if (!isnull)
			um_options = untransformRelOptions(datum);
		ReleaseSysCache(tp);
	}

	s->username = opt_str(um_options, "username", NULL);
	s->password = opt_str(um_options, "password", NULL);
	s->client_secret = opt_str(um_options, "client_secret", NULL);
	s->api_key = opt_str(um_options, "api_key", NULL);
	s->um_client_id = opt_str(um_options, "client_id", NULL);

	if (s->vendor == VENDOR_MAPAL)
	{
		s->token_url = opt_str(fs->options, "token_url", MAPAL_DEFAULT_TOKEN_URL);
		s->client_id = opt_str(fs->options, "client_id", "wf_wap_tp");
		s->sales_url = strip_trailing_slash(opt_str(fs->options, "sales_url", MAPAL_DEFAULT_SALES_URL));
		s->sales_method = opt_str(fs->options, "sales_method", "POST");
		s->cashrec_url = strip_trailing_slash(opt_str(fs->options, "cashrec_url", MAPAL_DEFAULT_CASHREC_URL));
		s->slot_minutes = opt_int(fs->options, "slot_minutes", 15);
		s->timezone = opt_str(fs->options, "timezone", NULL);
		s->cashrec_start_param = opt_str(fs->options, "cashrec_start_param", "startDate");
		s->cashrec_end_param = opt_str(fs->options, "cashrec_end_param", "endDate");
		s->cashrec_centers_param = opt_str(fs->options, "cashrec_centers_param", "centersList");
		s->cashrec_max_days = opt_int(fs->options, "cashrec_max_days", 7);
		s->cashrec_max_centers = opt_int(fs->options, "cashrec_max_centers", 50);
		if (s->username == NULL || s->password == NULL || s->client_secret == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("the user mapping for server \"%s\" has no Mapal credentials", s->name),
					 errhint("A Mapal user mapping needs username, password and client_secret.")));
	}
	else if (s->vendor == VENDOR_CONNECTEAM)
	{
		char	   *auth = opt_str(fs->options, "auth", NULL);

		s->base_url = strip_trailing_slash(opt_str(fs->options, "base_url", CONNECTEAM_DEFAULT_BASE_URL));
		s->token_url = opt_str(fs->options, "token_url",
							   psprintf("%s/oauth/v1/token", s->base_url));
		s->scope = opt_str(fs->options, "scope",
						   "sales_data.read sales_data.write sales_data.delete");
		s->use_oauth = auth ? (strcmp(auth, "oauth") == 0) : (s->api_key == NULL);
		if (s->use_oauth ? (s->um_client_id == NULL || s->client_secret == NULL)
			: (s->api_key == NULL))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("the user mapping for server \"%s\" has no Connecteam credentials", s->name),
					 errhint("A Connecteam user mapping needs api_key, or client_id and client_secret for OAuth.")));
	}

	server_account_key(s);
	credcache_attach(s, cache_mark);
	return s;
}

/* The error for a NULL server argument, the same for every function. */
void
server_name_null_error(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("server name must not be null"),
			 errhint("Pass the name of a server created with FOREIGN DATA WRAPPER sales_api.")));
}

SalesApiServer *
server_lookup(const char *name, SalesApiVendor expected)
{
	ForeignServer *fs;

	if (name == NULL)
		server_name_null_error();
	fs = GetForeignServerByName(name, true);
	if (fs == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server \"%s\" does not exist", name),
				 errhint("Create it with CREATE SERVER ... FOREIGN DATA WRAPPER sales_api OPTIONS (vendor '...').")));
	return server_lookup_by_oid(fs->serverid,
								GetUserId(),
								expected);
}
