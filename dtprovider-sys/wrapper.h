/* The Apache and APR declarations mod_dtprovider binds to; bindgen reads this file with the
 * allowlist in build.rs (this directory). */
#include <httpd.h>
#include <http_config.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_log.h>
#include <http_ssl.h>
#include <ap_mmn.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <apr_network_io.h>
