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
 * Example output (the format; this output was printed by the bpftrace twin,
 * http-requests.bt, on Linux):
 *
 * # dtrace -s http-requests.d
 * Tracing Apache requests... Hit Ctrl-C to end.
 *   time    latency  sta            local                 remote        method uri
 *  0.108      135us  200        127.0.0.1:21489        127.0.0.1:38216  GET    /
 *  0.108       46us  200        127.0.0.1:21489        127.0.0.1:38216  GET    /about.html
 *  0.108       55us  200        127.0.0.1:21489        127.0.0.1:38216  GET    /docs/
 *  0.109       46us  200        127.0.0.1:21489        127.0.0.1:38216  GET    /big.txt
 *  0.329      160us  404        127.0.0.1:21489        127.0.0.1:38224  GET    /missing.html?from=demo
 *  0.339       66us  301        127.0.0.1:21489        127.0.0.1:38228  GET    /old-page
 *  0.353      105us  200        127.0.0.1:21489        127.0.0.1:38244  GET    /about.html?lang=en&ref=demo
 *  0.423    55082us  200        127.0.0.1:21489        127.0.0.1:38256  POST   /slow.cgi?50
 *  0.855   418863us  200        127.0.0.1:21489        127.0.0.1:38264  GET    /slow.cgi?400
 *  1.063      205us  200        127.0.0.1:21489        127.0.0.1:38278  GET    /
 *  1.076      174us  200        127.0.0.1:21489        127.0.0.1:38288  GET    /about.html?h2=1
 *  1.091      143us  200        127.0.0.1:21489        127.0.0.1:38298  GET    /docs/index.html
 *  1.091       74us  404        127.0.0.1:21489        127.0.0.1:38298  GET    /nope
 *  1.091       50us  200        127.0.0.1:21489        127.0.0.1:38298  GET    /big.txt
 *  1.097      108us  404        127.0.0.1:21489        127.0.0.1:38304  GET    /missing.css
 *  1.107       87us  200              ::1:21489              ::1:37796  GET    /about.html
 * ^C
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
