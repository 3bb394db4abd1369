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
 * Example output: in the source tree, examples/README.md ("http-urls") shows the
 * real output of the bpftrace twin, http-urls.bt, which prints the same lines in
 * the same format.
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
