//! Test-only (feature `panic-test`, never shipped): a hook panics when the request's URI
//! contains `/__dtprovider_panic__`, so that the tests can prove no panic reaches Apache.

use crate::apache::Request;

/// Panics when the URI asks for it.
pub(crate) fn maybe_panic(req: Request<'_>, hook: &str) {
    let uri = req.original().unparsed_uri().as_cstr().to_bytes();
    let marker: &[u8] = b"/__dtprovider_panic__";
    if uri.windows(marker.len()).any(|w| w == marker) {
        panic!("panic-test: deliberate panic in the {hook} hook");
    }
}
