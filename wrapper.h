/* The Apache and APR declarations mod_dtprovider binds to (see build.rs). */
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
