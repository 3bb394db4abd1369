/*
 * Drives mod_dtprovider's hooks directly, without Apache (BENCHMARKS.md, "Traced cost" and
 * "Allocations"). Built by the benchmark with `cc -rdynamic ... -lapr-1 -ldl`.
 *
 * It provides the Apache symbols the module imports (capturing the hook function pointers
 * the module registers), builds a realistic request_rec/conn_rec from Apache's own headers
 * with a real APR pool and tables, and times, in alternating rounds, the module's two hooks
 * against a floor library whose two hooks fire a bare empty USDT probe each. malloc and
 * friends are interposed to count every allocation made while the hooks run.
 *
 *   harness MODULE.so FLOOR.so ROUNDS ITERS_PER_ROUND [RAISE]
 *   harness --count module|floor MODULE.so FLOOR.so ITERS RAISE
 *
 * With RAISE (the module's two semaphore offsets from its load address, in hex, comma
 * separated), the harness sets the module's and the floor's semaphores to 1 itself before
 * the rounds: both take their enabled paths, build their arguments and reach the probe
 * site, but no tracer is attached, so the probe instruction is the NOP it was compiled as.
 * That times each side's own work without the kernel's uprobe trap.
 *
 * With --count (for callgrind: BENCHMARKS.md, "Instructions per traced request on the
 * enabled path"), the semaphores are raised as with RAISE, one side's hooks are warmed up
 * (lazy binding, the first block of request ids), and then called ITERS times inside
 * `counted()`, a function of its own so that `callgrind --toggle-collect=counted` counts
 * exactly those requests: both hooks and everything they call, plus the loop's own few
 * instructions. No timing. Output: `raised ...`, `interposer ...`, `counted SIDE N`, `logged N`.
 *
 * Output, one fact per line:
 *   round I module_ns X floor_ns Y   (ns per request: both hooks, one request)
 *   calls module N floor N           (requests driven through each)
 *   allocs module N floor N          (malloc/calloc/realloc/memalign calls during the rounds)
 *   allocs register_hooks N          (the module's allocations while registering)
 *   interposer ok                    (self-check: the module's malloc is the counting one)
 *   logged N                         (lines the module wrote to the "error log")
 *   clock_ns X                       (one apr_time_now(), the clock the module reads twice per
 *                                     traced request for the latency arguments)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>

#include "httpd.h"
#include "http_config.h"
#include "http_protocol.h"
#include "http_request.h"
#include "http_log.h"
#include "http_ssl.h"
#include "apr_pools.h"
#include "apr_tables.h"
#include "apr_network_io.h"
#include "apr_time.h"
#include "apr_strings.h"

/* ---- allocation counting (interposes the C allocator for the whole process) ---------- */

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static volatile int counting;
static volatile long allocs;

void *malloc(size_t n) { if (counting) allocs++; return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { if (counting) allocs++; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { if (counting) allocs++; return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *memalign(size_t a, size_t n) { if (counting) allocs++; return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { if (counting) allocs++; return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n)
{
    if (counting) allocs++;
    void *p = __libc_memalign(a, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

/* ---- the Apache API the module imports ------------------------------------------------ */

typedef int (*req_hook)(request_rec *);
static req_hook hook_prr, hook_lt;
static void (*hook_ci)(apr_pool_t *, server_rec *);
static long logged;

AP_DECLARE(void) ap_hook_post_read_request(ap_HOOK_post_read_request_t *pf,
                                           const char *const *pre, const char *const *succ,
                                           int order)
{
    (void)pre; (void)succ; (void)order;
    hook_prr = pf;
}

AP_DECLARE(void) ap_hook_log_transaction(ap_HOOK_log_transaction_t *pf,
                                         const char *const *pre, const char *const *succ,
                                         int order)
{
    (void)pre; (void)succ; (void)order;
    hook_lt = pf;
}

AP_DECLARE(void) ap_hook_child_init(ap_HOOK_child_init_t *pf,
                                    const char *const *pre, const char *const *succ, int order)
{
    (void)pre; (void)succ; (void)order;
    hook_ci = pf;
}

AP_DECLARE(void) ap_log_error_(const char *file, int line, int module_index, int level,
                               apr_status_t status, const server_rec *s, const char *fmt, ...)
{
    (void)file; (void)line; (void)module_index; (void)level; (void)status; (void)s;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "harness: module logged: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    logged++;
}

AP_DECLARE(int) ap_ssl_conn_is_ssl(conn_rec *c)
{
    (void)c;
    return 0;
}

/* ---- a realistic request -------------------------------------------------------------- */

#define MODULE_INDEX 41
#define NUM_MODULES 64

static request_rec *make_request(apr_pool_t *p)
{
    server_rec *s = apr_pcalloc(p, sizeof *s);
    s->server_hostname = "localhost";
    s->port = 8080;

    conn_rec *c = apr_pcalloc(p, sizeof *c);
    c->pool = p;
    c->base_server = s;
    c->id = 4711;
    c->local_ip = apr_pstrdup(p, "127.0.0.1");
    c->client_ip = apr_pstrdup(p, "127.0.0.1");
    c->keepalive = AP_CONN_KEEPALIVE;
    c->notes = apr_table_make(p, 4);
    if (apr_sockaddr_info_get(&c->local_addr, "127.0.0.1", APR_INET, 8080, 0, p) != APR_SUCCESS ||
        apr_sockaddr_info_get(&c->client_addr, "127.0.0.1", APR_INET, 54321, 0, p) != APR_SUCCESS) {
        fprintf(stderr, "harness: apr_sockaddr_info_get failed\n");
        exit(2);
    }

    request_rec *r = apr_pcalloc(p, sizeof *r);
    r->pool = p;
    r->connection = c;
    r->server = s;
    r->the_request = apr_pstrdup(p, "GET /index.html?q=1 HTTP/1.1");
    r->method = apr_pstrdup(p, "GET");
    r->method_number = M_GET;
    r->protocol = apr_pstrdup(p, "HTTP/1.1");
    r->proto_num = HTTP_VERSION(1, 1);
    r->hostname = apr_pstrdup(p, "localhost");
    r->unparsed_uri = apr_pstrdup(p, "/index.html?q=1");
    r->uri = apr_pstrdup(p, "/index.html");
    r->args = apr_pstrdup(p, "q=1");
    /* What Apache's ap_parse_uri leaves for the module's dt_path: the path, query apart. */
    r->parsed_uri.path = apr_pstrdup(p, "/index.html");
    r->parsed_uri.query = r->args;
    r->filename = apr_pstrdup(p, "/srv/htdocs/index.html");
    r->useragent_ip = c->client_ip;
    r->useragent_addr = c->client_addr;
    r->request_time = apr_time_now();
    r->status = 200;
    r->status_line = "200 OK";
    r->bytes_sent = 45;
    r->sent_bodyct = 1;
    r->headers_in = apr_table_make(p, 16);
    apr_table_setn(r->headers_in, "Host", "localhost:8080");
    apr_table_setn(r->headers_in, "Accept", "*/*");
    apr_table_setn(r->headers_in, "Accept-Encoding", "gzip, deflate, br");
    apr_table_setn(r->headers_in, "Accept-Language", "en-US,en;q=0.9");
    apr_table_setn(r->headers_in, "Connection", "keep-alive");
    apr_table_setn(r->headers_in, "User-Agent", "Mozilla/5.0 (X11; Linux x86_64) bench/1.0");
    r->headers_out = apr_table_make(p, 8);
    apr_table_setn(r->headers_out, "Content-Type", "text/html");
    r->subprocess_env = apr_table_make(p, 8);
    apr_table_setn(r->subprocess_env, "HTTPS", "off");
    r->notes = apr_table_make(p, 4);
    r->request_config = apr_pcalloc(p, sizeof(void *) * NUM_MODULES);
    r->per_dir_config = apr_pcalloc(p, sizeof(void *) * NUM_MODULES);
    return r;
}

/* ---- timing ----------------------------------------------------------------------------- */

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* One request through a hook pair; a new request starts with an empty config vector. */
static long run(req_hook start, req_hook done, request_rec *r, long iters, long *allocs_out)
{
    void **slot = (void **)r->request_config + MODULE_INDEX;
    long before = allocs;
    counting = 1;
    for (long i = 0; i < iters; i++) {
        start(r);
        done(r);
        *(void *volatile *)slot = NULL;
    }
    counting = 0;
    *allocs_out += allocs - before;
    return iters;
}

/* The requests callgrind counts (--count): kept out of line, under its own name. */
__attribute__((noinline)) long counted(req_hook start, req_hook done, request_rec *r, long iters)
{
    long unused = 0;
    return run(start, done, r, iters, &unused);
}

int main(int argc, char **argv)
{
    /* --count SIDE: shift the arguments into the timed form's places (ROUNDS unused). */
    const char *count_side = NULL;
    if (argc == 7 && strcmp(argv[1], "--count") == 0) {
        count_side = argv[2];
        if (strcmp(count_side, "module") != 0 && strcmp(count_side, "floor") != 0) {
            fprintf(stderr, "harness: --count takes module or floor, not %s\n", count_side);
            return 2;
        }
        static char *shifted[7];
        shifted[0] = argv[0];
        shifted[1] = argv[3];
        shifted[2] = argv[4];
        shifted[3] = "0";
        shifted[4] = argv[5];
        shifted[5] = argv[6];
        argv = shifted;
        argc = 6;
    } else if (argc != 5 && argc != 6) {
        fprintf(stderr,
                "usage: %s MODULE.so FLOOR.so ROUNDS ITERS [RAISE]\n"
                "       %s --count module|floor MODULE.so FLOOR.so ITERS RAISE\n",
                argv[0], argv[0]);
        return 2;
    }
    long rounds = atol(argv[3]), iters = atol(argv[4]);

    apr_initialize();
    apr_pool_t *pool;
    apr_pool_create(&pool, NULL);

    void *mh = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!mh) { fprintf(stderr, "harness: %s\n", dlerror()); return 2; }
    module *m = dlsym(mh, "dtprovider_module");
    if (!m || !m->register_hooks) { fprintf(stderr, "harness: no dtprovider_module\n"); return 2; }
    void *fh = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
    if (!fh) { fprintf(stderr, "harness: %s\n", dlerror()); return 2; }
    req_hook floor_prr = (req_hook)dlsym(fh, "floor_post_read_request");
    req_hook floor_lt = (req_hook)dlsym(fh, "floor_log_transaction");
    if (!floor_prr || !floor_lt) { fprintf(stderr, "harness: floor symbols missing\n"); return 2; }

    m->module_index = MODULE_INDEX;
    /* Allocations while the module registers (informational). */
    long before = allocs;
    counting = 1;
    m->register_hooks(pool);
    counting = 0;
    long allocs_reg = allocs - before;
    if (!hook_prr || !hook_lt || !hook_ci) {
        fprintf(stderr, "harness: the module did not register its hooks\n");
        return 2;
    }
    if (argc == 6) {
        struct link_map *lm = NULL;
        unsigned short *fs = dlsym(fh, "dtfloor_start_semaphore");
        unsigned short *fd = dlsym(fh, "dtfloor_done_semaphore");
        if (dlinfo(mh, RTLD_DI_LINKMAP, &lm) != 0 || !lm || !fs || !fd) {
            fprintf(stderr, "harness: cannot find the semaphores to raise\n");
            return 2;
        }
        const char *p = argv[5];
        int raised = 0;
        while (*p) {
            char *end;
            unsigned long off = strtoul(p, &end, 16);
            if (end == p || off == 0) { fprintf(stderr, "harness: bad RAISE %s\n", argv[5]); return 2; }
            *(volatile unsigned short *)(lm->l_addr + off) = 1;
            raised++;
            p = *end == ',' ? end + 1 : end;
        }
        *(volatile unsigned short *)fs = 1;
        *(volatile unsigned short *)fd = 1;
        printf("raised module %d floor 2\n", raised);
    }
    request_rec *r = make_request(pool);
    hook_ci(pool, r->server);

    /* Self-check of the counter: malloc as the module resolves it (the global scope, where
     * this executable's exported malloc comes first) must be ours, and must count. */
    void *(*global_malloc)(size_t) = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "malloc");
    long before_check = allocs;
    counting = 1;
    void *probe = global_malloc ? global_malloc(16) : NULL;
    counting = 0;
    free(probe);
    if (global_malloc == malloc && allocs - before_check == 1)
        printf("interposer ok\n");
    else
        printf("interposer broken (global malloc %p, ours %p, counted %ld)\n",
               (void *)global_malloc, (void *)malloc, allocs - before_check);

    if (count_side) {
        int mod = strcmp(count_side, "module") == 0;
        req_hook start = mod ? hook_prr : floor_prr, done = mod ? hook_lt : floor_lt;
        long warm = 0;
        run(start, done, r, iters / 10 + 1, &warm);
        printf("counted %s %ld\n", count_side, counted(start, done, r, iters));
        printf("logged %ld\n", logged);
        return 0;
    }

    long calls_m = 0, calls_f = 0, allocs_m = 0, allocs_f = 0;
    /* Warm up caches and lazy binding (counted as calls: a tracer sees them). */
    calls_m += run(hook_prr, hook_lt, r, iters / 10 + 1, &allocs_m);
    calls_f += run(floor_prr, floor_lt, r, iters / 10 + 1, &allocs_f);
    for (long i = 0; i < rounds; i++) {
        double tm, tf, t0;
        /* Alternate the order (ABBA) so drift on a shared machine does not favour one. */
        if (i % 2 == 0) {
            t0 = now_ns(); calls_m += run(hook_prr, hook_lt, r, iters, &allocs_m); tm = now_ns() - t0;
            t0 = now_ns(); calls_f += run(floor_prr, floor_lt, r, iters, &allocs_f); tf = now_ns() - t0;
        } else {
            t0 = now_ns(); calls_f += run(floor_prr, floor_lt, r, iters, &allocs_f); tf = now_ns() - t0;
            t0 = now_ns(); calls_m += run(hook_prr, hook_lt, r, iters, &allocs_m); tm = now_ns() - t0;
        }
        printf("round %ld module_ns %.3f floor_ns %.3f\n", i, tm / iters, tf / iters);
    }
    printf("calls module %ld floor %ld\n", calls_m, calls_f);
    printf("allocs module %ld floor %ld\n", allocs_m, allocs_f);
    printf("allocs register_hooks %ld\n", allocs_reg);
    printf("logged %ld\n", logged);
    {
        /* What one clock read costs on this machine (virtualized TSCs can be slow). */
        volatile apr_time_t sink = 0;
        long n = iters > 100000 ? iters : 100000;
        double t0 = now_ns();
        for (long i = 0; i < n; i++)
            sink += apr_time_now();
        printf("clock_ns %.3f\n", (now_ns() - t0) / n);
        (void)sink;
    }
    return 0;
}
