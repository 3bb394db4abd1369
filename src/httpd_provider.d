/*
 * The httpd provider of mod_dtprovider: the probe interface, a public contract.
 * See docs/probes.md for the meaning of every argument, and httpd.d
 * for the D library that translates arg0 into conninfo_t / httpd_rqinfo_t.
 *
 *   arg0  uintptr_t  address of this request's dthttpd_t (valid while the probe fires)
 *   arg1  uintptr_t  method (Apache's NUL-terminated string; never NULL)
 *   arg2  uintptr_t  URI as the client sent it, query string included
 *   arg3  uintptr_t  remote (peer) IP address as text
 *   arg4  int32_t    HTTP status: 0 at request-start, the final status at request-done
 *   arg5  uint64_t   microseconds since Apache began reading the request
 */
provider httpd {
	probe request__start(uintptr_t, uintptr_t, uintptr_t, uintptr_t, int32_t, uint64_t);
	probe request__done(uintptr_t, uintptr_t, uintptr_t, uintptr_t, int32_t, uint64_t);
};
