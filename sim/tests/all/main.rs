//! Integration tests: the real HTTPS server driven with reqwest, trusting only the simulator's
//! own certificate. One binary, one module per concern.

mod agent;
mod auth;
mod backups;
mod cloudflare;
mod console;
mod control;
mod faults;
mod fixture;
mod rrd;
mod snapshots;
mod tasks;
mod validation;
