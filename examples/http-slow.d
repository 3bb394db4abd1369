#!/usr/sbin/dtrace -s
/*
 * http-slow.d		Apache requests slower than a threshold in milliseconds,
 *			with client address and log id, as they complete.
 *			For DTrace (illumos, FreeBSD, macOS) with mod_dtprovider.
 *
 * USAGE: dtrace -s http-slow.d MS		# e.g. dtrace -s http-slow.d 200
 *
 * FIELDS: time (s since tracing began), latency in ms, status, client address
 * (r->useragent_ip: the peer, or what mod_remoteip made of X-Forwarded-For),
 * log id (Apache's %L, or UNIQUE_ID with mod_unique_id; "-" when there is none),
 * method, URI. Latency is rq_latency_us, measured by the module (read from the
 * struct, not from the probe's arg5, which DTrace on macOS loses).
 *
 * Example output: in the source tree, examples/README.md ("http-slow") shows the
 * real output of the bpftrace twin, http-slow.bt, which prints the same lines in
 * the same format.
 */

#pragma D option quiet
#pragma D option defaultargs
#pragma D option switchrate=10hz

BEGIN
/$$1 == ""/
{
	printf("USAGE: http-slow.d MS  (report requests slower than MS milliseconds)\n");
	exit(1);
}

BEGIN
/$$1 != ""/
{
	printf("Tracing Apache requests slower than %d ms... Hit Ctrl-C to end.\n", $1);
	printf("%6s %10s %3s %-16s %-27s %-6s %s\n", "time", "ms", "sta", "client",
	    "logid", "method", "uri");
	script_start = timestamp;
}

httpd*:::request-done
/httpd_rqinfo->rq_latency_us >= $1 * 1000/
{
	this->t = timestamp - script_start;
	this->us = httpd_rqinfo->rq_latency_us;
	this->logid = httpd_rqinfo->rq_logid;
	printf("%2d.%03d %6d.%03d %3d %-16s %-27s %-6s %s\n",
	    this->t / 1000000000, (this->t / 1000000) % 1000,
	    this->us / 1000, this->us % 1000, httpd_rqinfo->rq_status,
	    httpd_rqinfo->rq_client, this->logid == "" ? "-" : this->logid,
	    httpd_rqinfo->rq_method, httpd_rqinfo->rq_uri);
}
