#!/usr/sbin/dtrace -s
/*
 * http-errors.d	Apache 4xx and 5xx responses by status and URL, printed on
 *			Ctrl-C.
 *			For DTrace (illumos, FreeBSD, macOS) with mod_dtprovider.
 *
 * USAGE: dtrace -s http-errors.d
 *
 * The URL is the URI as the client sent it, query string included. Requests
 * Apache rejected while reading them (400, 408, 414, ...) count too, usually with
 * an empty URL. Least frequent first.
 *
 * Example output: in the source tree, examples/README.md ("http-errors") shows the
 * real output of the bpftrace twin, http-errors.bt, which prints the same lines in
 * the same format.
 */

#pragma D option quiet

BEGIN
{
	printf("Tracing Apache 4xx and 5xx responses... Hit Ctrl-C to end.\n");
}

httpd*:::request-done
/arg4 >= 400/
{
	@errors[arg4, httpd_rqinfo->rq_uri] = count();
}

END
{
	printf("\n");
	printa("@errors[%d, %s]: %@d\n", @errors);
}
