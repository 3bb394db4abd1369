//! mod_dtprovider's test harness, for the project's developers: the one implementation of
//! what the module's integration tests (tests/), the benchmark (bench/), the packaging tests
//! (packaging/tests/) and the demo's configuration (demo/run.sh) need.
//!
//! * [`policy`]: when a test skips (loudly, only while `CI` is unset) or fails;
//! * [`process`]: polling until a deadline, free ports, scratch directories, signals by pid;
//! * [`site`]: a private Apache from the template `testkit/httpd.conf.in`;
//! * [`apache`]: the integration tests' Apache (CGI, error page, access log, the module);
//! * [`module`]: the module build under test, its variants and probe backends;
//! * [`tracer`]: bpftrace in the background; [`events`]: what `scripts/trace-all.bt` prints;
//! * [`http`]: raw, keep-alive and HTTP/2 clients.
//!
//! Every Apache listens on 127.0.0.1 (and ::1) only, with its own ServerRoot, config and pid
//! file, and is stopped by its pid. Functions a benchmark calls return `Result`; the ones
//! only tests call panic, which fails the test.

pub mod apache;
pub mod events;
pub mod http;
pub mod module;
pub mod policy;
pub mod process;
pub mod site;
pub mod tracer;

pub use apache::*;
pub use events::*;
pub use http::*;
pub use module::*;
pub use policy::*;
pub use process::*;
pub use site::*;
pub use tracer::*;

/// The bpftrace script that counts request ids per probe (`S <id>`, `D <id> <status>`).
pub const COUNT_IDS: &str = include_str!("../scripts/count-ids.bt");
