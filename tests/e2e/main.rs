//! End-to-end tests: the real `imc-server` and `imc-agent` executables on
//! loopback, with temp dirs, driven over HTTP and through watched folders.
//! One test binary; `harness` starts and stops the processes, `scan` makes
//! scanner-like images.

// A test that cannot set itself up should fail loudly, right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;
mod proxy;
mod scan;

mod api_errors;
mod capture;
mod capture_formats;
mod delivery;
mod hardening;
mod inspect;
mod invoices;
mod security;
mod spine;
mod webhooks;
mod workflow;
