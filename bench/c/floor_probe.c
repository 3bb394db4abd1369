/*
 * The physical floor of a traced request (BENCHMARKS.md, "Traced cost"): two hooks with the
 * module's signature that each check a USDT semaphore and fire a bare, empty SystemTap probe
 * (no arguments, no payload). Built by the benchmark as a shared library the harness loads
 * next to mod_dtprovider, so both are attached the same way (by path).
 */
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

__extension__ unsigned short dtfloor_start_semaphore __attribute__((unused, section(".probes")));
__extension__ unsigned short dtfloor_done_semaphore __attribute__((unused, section(".probes")));

int floor_post_read_request(void *r)
{
    (void)r;
    if (__builtin_expect(dtfloor_start_semaphore, 0))
        STAP_PROBE(dtfloor, start);
    return -1; /* DECLINED */
}

int floor_log_transaction(void *r)
{
    (void)r;
    if (__builtin_expect(dtfloor_done_semaphore, 0))
        STAP_PROBE(dtfloor, done);
    return -1; /* DECLINED */
}
