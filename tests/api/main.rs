//! One integration binary: every module shares `helpers` and links once.

mod cli;
mod crash;
mod executors;
mod helpers;
mod journal;
mod operations;
mod processing;
mod webhook;
