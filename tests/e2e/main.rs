//! End-to-end tests: the real `imc-server` and `imc-agent` executables on
//! loopback, with temp dirs, driven over HTTP and through watched folders.
//! One test binary; `harness` starts and stops the processes, `scan` makes
//! scanner-like images.

mod harness;
mod scan;

mod api_errors;
mod capture;
mod spine;
