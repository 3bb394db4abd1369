#!/usr/sbin/dtrace -s
/*
 * http-clients.d	Apache requests and body bytes sent per client address,
 *			printed on Ctrl-C.
 *			For DTrace (illumos, FreeBSD, macOS) with mod_dtprovider.
 *
 * USAGE: dtrace -s http-clients.d
 *
 * The client address is r->useragent_ip: the TCP peer, or the address
 * mod_remoteip took from X-Forwarded-For. Bytes are response body bytes, as %B
 * logs them. Each list is sorted by its value, smallest first.
 *
 * Example output: in the source tree, examples/README.md ("http-clients") shows
 * the real output of the bpftrace twin, http-clients.bt, which prints the same
 * lines in the same format.
 */

#pragma D option quiet

BEGIN
{
	printf("Tracing Apache requests by client... Hit Ctrl-C to end.\n");
}

httpd*:::request-done
{
	@requests[httpd_rqinfo->rq_client] = count();
	@bytes[httpd_rqinfo->rq_client] = sum(httpd_rqinfo->rq_bytes_sent);
}

END
{
	printf("\n");
	printa("@requests[%s]: %@d\n", @requests);
	printa("@bytes[%s]: %@d\n", @bytes);
}
