//! Integration tests: one binary (faster to build), one module per area.
//!
//! Tests that need the shared corpus find it through `KUBESNAP_CORPUS` (set by `.ci/run`);
//! without it they print why and return, while the synthetic tests still run.

mod backend;
mod cli;
mod common;
mod corpus;
mod damage;
mod deploy;
mod engine;
mod live;
mod names;
mod operator;
mod restore_apply;
mod retention;
mod storage;
mod vectors;
