/*
 * httpd.d: DTrace library for the httpd provider of mod_dtprovider.
 *
 * mod_dtprovider gives Apache HTTP Server 2.4 an httpd provider with two probes,
 * httpd*:::request-start and httpd*:::request-done. Their first argument (arg0) is
 * the address of a dthttpd_t in the Apache process; this library declares that
 * struct and translates it into the types that scripts use:
 *
 *	httpd_conninfo->ci_remote	conninfo_t (from net.d): the connection
 *	httpd_rqinfo->rq_uri		httpd_rqinfo_t: the request
 *
 * The explicit forms keep working too, exactly as Joyent's Cloud Analytics wrote them:
 *
 *	xlate <httpd_rqinfo_t *>((dthttpd_t *)arg0)->rq_uri
 *	xlate <conninfo_t *>((dthttpd_t *)arg0)->ci_remote
 *
 * Migrating from mod_usdt: mod_usdt's probes had translated arguments, args[0] (a
 * conninfo_t) and args[1] (an httpd_rqinfo_t). mod_dtprovider's probes carry their
 * native argument types only, so args[] cannot be translated; replace
 *
 *	args[0]->	with	httpd_conninfo->
 *	args[1]->	with	httpd_rqinfo->
 *
 * and nothing else changes: the member names and types are mod_usdt's. Do not
 * correlate request-start and request-done with thread-local variables (self->):
 * Apache 2.4 may finish a request on another thread (event MPM, HTTP/2). Use the
 * latency the module measured, httpd_rqinfo->rq_latency_us, or key by rq_id instead.
 *
 * LATENCY
 *	Read latency from the struct (rq_latency_us), not from the probes' sixth
 *	argument (arg5): the struct reaches every DTrace, while the usdt crate's macOS
 *	backend fires six-argument probes with arg5 always 0. bpftrace on Linux gets
 *	arg5 intact.
 *
 * INSTALL
 *	Copy this file into DTrace's library directory, /usr/lib/dtrace on illumos
 *	and FreeBSD (packages may use another, e.g. /opt/local/lib/dtrace under
 *	pkgsrc), or keep it anywhere and pass its directory with -L:
 *
 *		dtrace -L /path/to/dir -s examples/http-requests.d
 *
 *	On macOS /usr/lib/dtrace is read-only: use -L. DTrace loads EVERY .d file in
 *	a library directory as a library, so never put the example scripts (or any
 *	other script with probe clauses) next to this file.
 *
 *	This file depends on net.d (#pragma D depends_on library net.d, for
 *	conninfo_t). illumos and FreeBSD resolve that dependency anywhere on the
 *	library path, so -L works there. Oracle's DTrace for Linux resolves a
 *	dependency only in the dependent file's own directory, so it rejects this
 *	file loaded from a -L directory that has no net.d. (That DTrace cannot see
 *	the module's probes anyway: it does not read the SystemTap notes of the
 *	module's Linux build. On Linux, use bpftrace.)
 *
 * This library is 64-bit only (64-bit Apache): it does not test
 * curpsinfo->pr_dmodel, so it works unchanged inside non-global zones.
 */

#pragma D depends_on library net.d

/*
 * The native argument, exactly as the module lays it out (64-bit, 136 bytes). A test
 * compares this declaration with the module's Rust struct (names, types, offsets).
 * The string pointers are addresses in the Apache process, declared as uint64_t and
 * read with copyin()/copyinstr(); the module never passes NULL (an absent value is
 * an empty string), but the translators check anyway. Fields are only ever appended.
 */
typedef struct dthttpd {
	uint64_t	dt_rqid;	/*   0: request id, pid << 40 | counter */
	uint16_t	dt_status;	/*   8: HTTP status (0 at request-start) */
	uint16_t	dt_lport;	/*  10: local TCP port */
	uint16_t	dt_rport;	/*  12: remote TCP port */
	uint8_t		dt_ipver;	/*  14: 4 or 6 (0: no connection) */
	uint8_t		dt_flags;	/*  15: HTTPD_FLAG_* */
	uint64_t	dt_latency_us;	/*  16: us since Apache began reading it */
	uint64_t	dt_bytes_sent;	/*  24: body bytes sent (%B) */
	uint64_t	dt_start_us;	/*  32: r->request_time, us since epoch */
	uint64_t	dt_connid;	/*  40: connection id (c->id) */
	uint64_t	dt_laddr;	/*  48: local IP address (string) */
	uint64_t	dt_raddr;	/*  56: remote (peer) IP address (string) */
	uint64_t	dt_method;	/*  64: method (string) */
	uint64_t	dt_uri;		/*  72: URI as sent, with query (string) */
	uint64_t	dt_agent;	/*  80: User-Agent header (string) */
	uint64_t	dt_host;	/*  88: host name of the request (string) */
	uint64_t	dt_protocol;	/*  96: protocol, e.g. HTTP/1.1 (string) */
	uint64_t	dt_client;	/* 104: client IP, mod_remoteip aware (string) */
	uint64_t	dt_logid;	/* 112: log id, %L or UNIQUE_ID (string) */
	uint64_t	dt_path;	/* 120: URI path, no query (string) */
	uint64_t	dt_reqline;	/* 128: request line as read, %r (string) */
} dthttpd_t;

/* dt_flags bits */
inline int HTTPD_FLAG_TLS = 0x1;		/* the connection runs TLS */
inline int HTTPD_FLAG_REDIRECTED = 0x2;		/* internally redirected */
inline int HTTPD_FLAG_NOSTART = 0x4;		/* done without start (rejected) */
#pragma D binding "1.6.1" HTTPD_FLAG_TLS
#pragma D binding "1.6.1" HTTPD_FLAG_REDIRECTED
#pragma D binding "1.6.1" HTTPD_FLAG_NOSTART

/*
 * The request, as scripts see it. The first seven members are mod_usdt's, with
 * the same names and types; the rest are mod_dtprovider's additions.
 */
typedef struct {
	uint64_t	rq_id;		/* request id, unique on the host */
	uint16_t	rq_status;	/* HTTP status (0 at request-start) */
	uint16_t	rq_lport;	/* local TCP port */
	uint16_t	rq_rport;	/* remote TCP port */
	string		rq_method;	/* method */
	string		rq_uri;		/* URI as sent, query string included */
	string		rq_agent;	/* User-Agent ("" if none) */
	string		rq_path;	/* the path, without the query string */
	uint64_t	rq_latency_us;	/* us since Apache began reading it */
	uint64_t	rq_bytes_sent;	/* body bytes sent (as %B) */
	uint64_t	rq_start_us;	/* request time, us since the epoch */
	uint64_t	rq_connid;	/* connection id */
	string		rq_laddr;	/* local IP address (= ci_local) */
	string		rq_raddr;	/* remote peer IP address (= ci_remote) */
	string		rq_host;	/* host name of the request */
	string		rq_protocol;	/* protocol, e.g. "HTTP/1.1" */
	string		rq_client;	/* client IP (mod_remoteip aware) */
	string		rq_logid;	/* log id (%L, UNIQUE_ID) */
	string		rq_reqline;	/* the request line as Apache read it (%r) */
	uint8_t		rq_ipver;	/* 4 or 6 (0: no connection) */
	uint8_t		rq_flags;	/* HTTPD_FLAG_* bits */
	int		rq_tls;		/* 1: TLS connection */
	int		rq_redirected;	/* 1: internally redirected */
	int		rq_nostart;	/* 1: request-done without request-start */
} httpd_rqinfo_t;

#pragma D binding "1.6.1" translator
translator conninfo_t < dthttpd_t *dp > {
	ci_local = *(uint64_t *)copyin((uintptr_t)&dp->dt_laddr,
	    sizeof (uint64_t)) == 0 ? "" :
	    copyinstr(*(uintptr_t *)copyin((uintptr_t)&dp->dt_laddr,
	    sizeof (uint64_t)));
	ci_remote = *(uint64_t *)copyin((uintptr_t)&dp->dt_raddr,
	    sizeof (uint64_t)) == 0 ? "" :
	    copyinstr(*(uintptr_t *)copyin((uintptr_t)&dp->dt_raddr,
	    sizeof (uint64_t)));
	ci_protocol = *(uint8_t *)copyin((uintptr_t)&dp->dt_ipver,
	    sizeof (uint8_t)) == 6 ? "ipv6" :
	    *(uint8_t *)copyin((uintptr_t)&dp->dt_ipver,
	    sizeof (uint8_t)) == 4 ? "ipv4" : "unknown";
};

#pragma D binding "1.6.1" translator
translator httpd_rqinfo_t < dthttpd_t *dp > {
	rq_id = *(uint64_t *)copyin((uintptr_t)&dp->dt_rqid,
	    sizeof (uint64_t));
	rq_status = *(uint16_t *)copyin((uintptr_t)&dp->dt_status,
	    sizeof (uint16_t));
	rq_lport = *(uint16_t *)copyin((uintptr_t)&dp->dt_lport,
	    sizeof (uint16_t));
	rq_rport = *(uint16_t *)copyin((uintptr_t)&dp->dt_rport,
	    sizeof (uint16_t));
	rq_method = *(uint64_t *)copyin((uintptr_t)&dp->dt_method,
	    sizeof (uint64_t)) == 0 ? "" :
	    copyinstr(*(uintptr_t *)copyin((uintptr_t)&dp->dt_method,
	    sizeof (uint64_t)));
	rq_uri = *(uint64_t *)copyin((uintptr_t)&dp->dt_uri,
	    sizeof (uint64_t)) == 0 ? "" :
	    copyinstr(*(uintptr_t *)copyin((uintptr_t)&dp->dt_uri,
	    sizeof (uint64_t)));
	rq_agent = *(uint64_t *)copyin((uintptr_t)&dp->dt_agent,
	    sizeof (uint64_t)) == 0 ? "" :
	    copyinstr(*(uintptr_t *)copyin((uintptr_t)&dp->dt_agent,
	    sizeof (uint64_t)));
	rq_path = *(uint64_t *)copyin((uintptr_t)&dp->dt_path,
	    sizeof (uint64_t)) == 0 ? "" :
	    copyinstr(*(uintptr_t *)copyin((uintptr_t)&dp->dt_path,
	    sizeof (uint64_t)));
	rq_latency_us = *(uint64_t *)copyin((uintptr_t)&dp->dt_latency_us,
	    sizeof (uint64_t));
	rq_bytes_sent = *(uint64_t *)copyin((uintptr_t)&dp->dt_bytes_sent,
	    sizeof (uint64_t));
	rq_start_us = *(uint64_t *)copyin((uintptr_t)&dp->dt_start_us,
	    sizeof (uint64_t));
	rq_connid = *(uint64_t *)copyin((uintptr_t)&dp->dt_connid,
	    sizeof (uint64_t));
	rq_laddr = *(uint64_t *)copyin((uintptr_t)&dp->dt_laddr,
	    sizeof (uint64_t)) == 0 ? "" :
	    copyinstr(*(uintptr_t *)copyin((uintptr_t)&dp->dt_laddr,
	    sizeof (uint64_t)));
	rq_raddr = *(uint64_t *)copyin((uintptr_t)&dp->dt_raddr,
	    sizeof (uint64_t)) == 0 ? "" :
	    copyinstr(*(uintptr_t *)copyin((uintptr_t)&dp->dt_raddr,
	    sizeof (uint64_t)));
	rq_host = *(uint64_t *)copyin((uintptr_t)&dp->dt_host,
	    sizeof (uint64_t)) == 0 ? "" :
	    copyinstr(*(uintptr_t *)copyin((uintptr_t)&dp->dt_host,
	    sizeof (uint64_t)));
	rq_protocol = *(uint64_t *)copyin((uintptr_t)&dp->dt_protocol,
	    sizeof (uint64_t)) == 0 ? "" :
	    copyinstr(*(uintptr_t *)copyin((uintptr_t)&dp->dt_protocol,
	    sizeof (uint64_t)));
	rq_client = *(uint64_t *)copyin((uintptr_t)&dp->dt_client,
	    sizeof (uint64_t)) == 0 ? "" :
	    copyinstr(*(uintptr_t *)copyin((uintptr_t)&dp->dt_client,
	    sizeof (uint64_t)));
	rq_logid = *(uint64_t *)copyin((uintptr_t)&dp->dt_logid,
	    sizeof (uint64_t)) == 0 ? "" :
	    copyinstr(*(uintptr_t *)copyin((uintptr_t)&dp->dt_logid,
	    sizeof (uint64_t)));
	rq_reqline = *(uint64_t *)copyin((uintptr_t)&dp->dt_reqline,
	    sizeof (uint64_t)) == 0 ? "" :
	    copyinstr(*(uintptr_t *)copyin((uintptr_t)&dp->dt_reqline,
	    sizeof (uint64_t)));
	rq_ipver = *(uint8_t *)copyin((uintptr_t)&dp->dt_ipver,
	    sizeof (uint8_t));
	rq_flags = *(uint8_t *)copyin((uintptr_t)&dp->dt_flags,
	    sizeof (uint8_t));
	rq_tls = (*(uint8_t *)copyin((uintptr_t)&dp->dt_flags,
	    sizeof (uint8_t)) & HTTPD_FLAG_TLS) != 0;
	rq_redirected = (*(uint8_t *)copyin((uintptr_t)&dp->dt_flags,
	    sizeof (uint8_t)) & HTTPD_FLAG_REDIRECTED) != 0;
	rq_nostart = (*(uint8_t *)copyin((uintptr_t)&dp->dt_flags,
	    sizeof (uint8_t)) & HTTPD_FLAG_NOSTART) != 0;
};

/*
 * What scripts use in the probe clauses of request-start and request-done:
 * httpd_conninfo->ci_remote, httpd_rqinfo->rq_uri (mod_usdt's args[0]-> and
 * args[1]->). Only meaningful in clauses of the httpd provider's probes.
 */
inline conninfo_t *httpd_conninfo = xlate <conninfo_t *> ((dthttpd_t *)arg0);
#pragma D attributes Evolving/Evolving/ISA httpd_conninfo
#pragma D binding "1.6.1" httpd_conninfo

inline httpd_rqinfo_t *httpd_rqinfo = xlate <httpd_rqinfo_t *> ((dthttpd_t *)arg0);
#pragma D attributes Evolving/Evolving/ISA httpd_rqinfo
#pragma D binding "1.6.1" httpd_rqinfo
