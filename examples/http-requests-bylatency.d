#!/usr/sbin/dtrace -s
/*
 * http-requests-bylatency.d	Power-of-two histogram of Apache request latency
 *				in microseconds, printed on Ctrl-C.
 *				For DTrace (illumos, FreeBSD, macOS) with mod_dtprovider.
 *
 * USAGE: dtrace -s http-requests-bylatency.d
 *
 * Latency is request-done's arg5: the whole time from Apache beginning to read the
 * request to logging it (what %D logs), measured by the module, so no start/done
 * correlation is needed. Every completed request counts, rejected ones included.
 * This script needs no translator, but runs the same with httpd.d installed.
 *
 * Example output (the format; the histogram rows are DTrace's quantize()):
 *
 * Tracing Apache request latency... Hit Ctrl-C to end.
 * ^C
 *
 * @latency_us:
 *
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
	@latency_us = quantize(arg5);
}

END
{
	printf("\n@latency_us:\n");
	printa(@latency_us);
}
