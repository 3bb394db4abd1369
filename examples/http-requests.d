#!/usr/sbin/dtrace -s
/*
 * http-requests.d	One line per completed Apache request: time, latency, status,
 *			local and remote address:port, method and URI.
 *			For DTrace (illumos, FreeBSD, macOS) with mod_dtprovider.
 *
 * USAGE: dtrace -s http-requests.d		(httpd.d installed in /usr/lib/dtrace)
 *	  dtrace -L /dir/with/httpd.d -s http-requests.d
 *
 * FIELDS: time (s since tracing began), latency (rq_latency_us: us since Apache
 * began reading the request, measured by the module, so it is right even when the
 * request completes on another thread, as under the event MPM or HTTP/2; read from
 * the struct, not from the probe's arg5, which DTrace on macOS loses), status,
 * local address:port, remote address:port, method, URI (with query string).
 *
 * This is mod_usdt's examples/http-requests.d, without its thread-local
 * self->start, and with httpd_conninfo/httpd_rqinfo for args[0]/args[1].
 *
 * Example output: in the source tree, examples/README.md ("http-requests") shows
 * the real output of the bpftrace twin, http-requests.bt, which prints the same
 * lines in the same format.
 */

#pragma D option quiet
#pragma D option switchrate=10hz

BEGIN
{
	printf("Tracing Apache requests... Hit Ctrl-C to end.\n");
	printf("%6s %10s  %3s %16s%6s %16s%6s  %6s %s\n", "time", "latency",
	    "sta", "local", "", "remote", "", "method", "uri");
	script_start = timestamp;
}

httpd*:::request-done
{
	this->t = timestamp - script_start;
	printf("%2d.%03d %8dus  %3d %16s:%-5d %16s:%-5d  %-6s %s\n",
	    this->t / 1000000000, (this->t / 1000000) % 1000,
	    httpd_rqinfo->rq_latency_us, httpd_rqinfo->rq_status,
	    httpd_conninfo->ci_local, httpd_rqinfo->rq_lport,
	    httpd_conninfo->ci_remote, httpd_rqinfo->rq_rport,
	    httpd_rqinfo->rq_method, httpd_rqinfo->rq_uri);
}
