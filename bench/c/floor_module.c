/*
 * The physical floor of an idle Apache hook pair (BENCHMARKS.md, "Idle cost").
 *
 * Registers the same two hooks as mod_dtprovider, at the same positions, and returns at once
 * after reading a 16-bit flag, as a disabled USDT probe's semaphore check does. Built by the
 * benchmark with `apxs -c`; never installed.
 */
#include "httpd.h"
#include "http_config.h"
#include "http_protocol.h"
#include "http_request.h"

/* Stands in for a USDT semaphore: a 16-bit counter nobody raises here. */
volatile unsigned short dtfloor_flag;

static int dtfloor_post_read_request(request_rec *r)
{
    if (dtfloor_flag)
        r->notes = r->notes; /* never taken */
    return DECLINED;
}

static int dtfloor_log_transaction(request_rec *r)
{
    if (dtfloor_flag)
        r->notes = r->notes; /* never taken */
    return DECLINED;
}

static void dtfloor_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_post_read_request(dtfloor_post_read_request, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_log_transaction(dtfloor_log_transaction, NULL, NULL, APR_HOOK_LAST);
}

AP_DECLARE_MODULE(floor_hook) = {
    STANDARD20_MODULE_STUFF,
    NULL, NULL, NULL, NULL, NULL,
    dtfloor_register_hooks,
    0
};
