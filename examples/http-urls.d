#!/usr/sbin/dtrace -s
/*
 * http-urls.d		Apache requests by URL path (the URI without its query
 *			string) and status, printed and reset every 5 seconds.
 *			For DTrace (illumos, FreeBSD, macOS) with mod_dtprovider.
 *
 * USAGE: dtrace -s http-urls.d
 *
 * Each interval prints the time and then @urls[path, status]: count, least
 * frequent first. The counts of the last, partial interval are printed on Ctrl-C.
 * The path is rq_path at request-done: the URI's path without the query string, as
 * Apache decoded and normalized it (/a%62c and /x/../abc both count as /abc).
 *
 * Example output (the format; this output was printed by the bpftrace twin,
 * http-urls.bt, on Linux):
 *
 * # dtrace -s http-urls.d
 * Tracing Apache requests by URL path and status... Hit Ctrl-C to end.
 * 2026 Nov 26 13:03:54
 * @urls[/old-page, 301]: 1
 * @urls[/missing.css, 404]: 1
 * @urls[/nope, 404]: 1
 * @urls[/docs/index.html, 200]: 1
 * @urls[/missing.html, 404]: 1
 * @urls[/docs/, 200]: 1
 * @urls[/slow.cgi, 200]: 2
 * @urls[/big.txt, 200]: 2
 * @urls[/, 200]: 2
 * @urls[/about.html, 200]: 4
 * ^C
 * 2026 Nov 26 13:03:56
 */

#pragma D option quiet

BEGIN
{
	printf("Tracing Apache requests by URL path and status... Hit Ctrl-C to end.\n");
}

httpd*:::request-done
{
	@urls[httpd_rqinfo->rq_path, httpd_rqinfo->rq_status] = count();
}

tick-5s
{
	printf("%Y\n", walltimestamp);
	printa("@urls[%s, %d]: %@d\n", @urls);
	trunc(@urls);
}

END
{
	printf("\n");
	printf("%Y\n", walltimestamp);
	printa("@urls[%s, %d]: %@d\n", @urls);
}
