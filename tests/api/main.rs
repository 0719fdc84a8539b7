//! One integration binary: every module shares `helpers` and links once.

mod admin;
mod cli;
mod cluster;
mod crash;
mod dnb_checkpoint;
mod dnb_client;
mod dnb_pull;
mod executors;
mod fake_dnb;
mod fake_hubspot;
mod fake_hubspot_checks;
mod files;
mod helpers;
mod hubspot;
mod journal;
mod lifecycle;
mod migrate;
mod openapi;
mod operations;
mod postgres;
mod processing;
mod replicas;
mod samples;
mod secrets;
mod sftp;
mod webhook;
