//! Integration tests: the real HTTPS server driven with reqwest, trusting only the simulator's
//! own certificate. One binary, one module per concern.

mod auth;
mod cloudflare;
mod console;
mod control;
mod faults;
mod fixture;
mod tasks;
mod validation;
