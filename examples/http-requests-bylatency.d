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
 * Example output (the format; below the title line the histogram is DTrace's
 * quantize(), where the bpftrace twin prints bpftrace's hist()):
 *
 * # dtrace -s http-requests-bylatency.d
 * Tracing Apache request latency... Hit Ctrl-C to end.
 * ^C
 * @latency_us:
 *            value  ------------- Distribution ------------- count
 *               16 |                                         0
 *               32 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@          34
 *               64 |@@@@@@@                                  8
 *              128 |@                                        1
 *              256 |                                         0
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
