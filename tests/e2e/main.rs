//! End-to-end tests: the real `imc-server` and `imc-agent` executables on
//! loopback, with temp dirs, driven over HTTP and through watched folders.
//! One test binary; `harness` starts and stops the processes, `scan` makes
//! scanner-like images.

// A test that cannot set itself up should fail loudly, right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;
mod harness;
mod proxy;
mod raw_uplink;
mod scan;

mod api_errors;
mod archive;
mod attachments;
mod backup;
mod capture;
mod capture_formats;
mod cluster;
mod console;
mod cover_signatures;
mod delivery;
mod desk;
mod doctor;
mod hardening;
mod hostile;
mod inspect;
mod installer;
mod invoices;
mod loadgen;
mod metrics;
mod migrate_store;
mod operations;
mod retention;
mod scale;
mod scan_order;
mod security;
mod sessions;
mod spine;
mod webhooks;
mod workflow;
