#!/usr/sbin/dtrace -s
/*
 * http-requests-bylatency.d	Power-of-two histogram of Apache request latency
 *				in microseconds, printed on Ctrl-C.
 *				For DTrace (illumos, FreeBSD, macOS) with mod_dtprovider.
 *
 * USAGE: dtrace -s http-requests-bylatency.d
 *
 * Latency is httpd_rqinfo->rq_latency_us (httpd.d): the whole time from Apache
 * beginning to read the request to logging it (what %D logs), measured by the
 * module, so no start/done correlation is needed. It is read from the struct, not
 * from the probe's arg5, which DTrace on macOS loses. Every completed request
 * counts, rejected ones included.
 *
 * Example output: in the source tree, examples/README.md
 * ("http-requests-bylatency") shows the real output of the bpftrace twin,
 * http-requests-bylatency.bt, which prints the same title line, and bpftrace's
 * hist() where this script prints DTrace's quantize().
 */

#pragma D option quiet

BEGIN
{
	printf("Tracing Apache request latency... Hit Ctrl-C to end.\n");
}

httpd*:::request-done
{
	@latency_us = quantize(httpd_rqinfo->rq_latency_us);
}

END
{
	/* quantize() output starts with a newline, which ends this title line. */
	printf("\n@latency_us: ");
	printa(@latency_us);
}
