//! The harness's integration tests: the process driver against fake adapters, the runner with
//! a scripted engine, the reporters (snapshots, the JSON schema), and end to end with the
//! reference adapter.
mod e2e;
mod matrix;
mod process;
mod report;
mod runner;
mod support;
